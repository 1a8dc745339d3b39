//! `erp-datasets`: the 19 data sets of Winfra XXL, each read from the calling tenant's
//! collection of the same name (schemas in `schemas/`), with Winfra XXL's filters and rules:
//! date ranges that run from 0:00 of the first day to 24:00 of the last, the one-year limit on
//! `ventas`, `deudas`' kinds and its 12-month limit when `incluir_liquidado`, `interlocutores`'
//! `tipo`, `modificado_desde` served from the change log, and `incluir_ficheros_adjuntos`,
//! which embeds the files attached to each document (base64) in `ficheros_adjuntos`.

mod dates;

use bulkhost_plugin_sdk::{
    DatasetInfo, FieldKind, FieldSpec, GenerateError, Output, ParamError, ParamKind, ParamSpec,
    Params, Plugin, documents, serde_json,
};
use dates::Day;
use serde_json::Value;

/// The field that holds attached files when they are asked for.
const ATTACHMENTS: &str = "ficheros_adjuntos";

/// How a data set picks records.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Every record.
    All,
    /// Records whose attachments are embedded only on request.
    WithAttachments,
    /// Records whose `field` falls within `fecha_desde`..`fecha_hasta`, whole days; the range
    /// may span at most `max_months` months.
    Dates {
        field: &'static str,
        max_months: Option<u32>,
    },
    /// Discounts valid today or within the next 7 days.
    Discounts,
    /// Debts and bills (`deudas`).
    Debts,
    /// Business partners, by `tipo`.
    Partners,
    /// Sales: dates (one year at most), document kinds and states.
    Sales,
}

struct Dataset {
    name: &'static str,
    description: &'static str,
    rule: Rule,
}

const DATASETS: [Dataset; 19] = [
    Dataset {
        name: "articulos",
        description: "Devuelve la lista de artículos.",
        rule: Rule::WithAttachments,
    },
    Dataset {
        name: "articulos_lotes",
        description: "Devuelve la lista de artículos lotes.",
        rule: Rule::WithAttachments,
    },
    Dataset {
        name: "centros_coste",
        description: "Devuelve la lista centros de coste.",
        rule: Rule::All,
    },
    Dataset {
        name: "cliente_tipos",
        description: "Devuelve la lista de tipos de clientes.",
        rule: Rule::All,
    },
    Dataset {
        name: "compras",
        description: "Obtener el histórico de compras entre fechas indicadas (de 0:00 hasta 24:00).",
        rule: Rule::Dates {
            field: "fecha",
            max_months: None,
        },
    },
    Dataset {
        name: "descuentos",
        description: "Obtener la lista de descuentos de precios de los artículos para hoy y los próximos 7 días.",
        rule: Rule::Discounts,
    },
    Dataset {
        name: "deudas",
        description: "Devuelve la lista de deudas activas de los clientes.",
        rule: Rule::Debts,
    },
    Dataset {
        name: "diario",
        description: "Devuelve la lista de asientos. Tiene que indicar las fechas.",
        rule: Rule::Dates {
            field: "fecha",
            max_months: None,
        },
    },
    Dataset {
        name: "empleados",
        description: "Devuelve la lista de empleados.",
        rule: Rule::All,
    },
    Dataset {
        name: "facturas_contables",
        description: "Devuelve todas las facturas contables entre dos fechas indicadas.",
        rule: Rule::Dates {
            field: "fecha_registro",
            max_months: None,
        },
    },
    Dataset {
        name: "formas_pago",
        description: "Devuelve la lista de formas de pago.",
        rule: Rule::All,
    },
    Dataset {
        name: "interlocutores",
        description: "Devuelve los interlocutores, todos o filtrados por tipo.",
        rule: Rule::Partners,
    },
    Dataset {
        name: "movimientos",
        description: "Devuelve todos los movimientos de almacén entre dos fechas indicadas.",
        rule: Rule::Dates {
            field: "fecha",
            max_months: None,
        },
    },
    Dataset {
        name: "stocks",
        description: "Devuelve todos los formatos con el stock calculado.",
        rule: Rule::All,
    },
    Dataset {
        name: "subcuentas",
        description: "Devuelve la lista de subcuentas contables.",
        rule: Rule::All,
    },
    Dataset {
        name: "tarifas",
        description: "Obtener la lista de tarifas de precios de los artículos.",
        rule: Rule::All,
    },
    Dataset {
        name: "vehiculos",
        description: "Devuelve la lista de vehículos.",
        rule: Rule::All,
    },
    Dataset {
        name: "ventas",
        description: "Obtener el histórico de ventas entre las fechas indicadas. El intervalo esta limitado a un año.",
        rule: Rule::Sales,
    },
    Dataset {
        name: "ventas_facturas",
        description: "Devuelve todas las facturas de ventas entre dos fechas indicadas.",
        rule: Rule::Dates {
            field: "fecha",
            max_months: None,
        },
    },
];

fn param(name: &str, kind: ParamKind, required: bool, description: &str) -> ParamSpec {
    ParamSpec {
        name: name.into(),
        description: description.into(),
        kind,
        required,
        default_value: None,
        allowed_values: Vec::new(),
    }
}

fn flag(name: &str, description: &str) -> ParamSpec {
    ParamSpec {
        default_value: Some("false".into()),
        ..param(name, ParamKind::Boolean, false, description)
    }
}

fn range(required: bool) -> Vec<ParamSpec> {
    vec![
        param(
            "fecha_desde",
            ParamKind::Datetime,
            required,
            "Desde este día (0:00).",
        ),
        param(
            "fecha_hasta",
            ParamKind::Datetime,
            required,
            "Hasta este día (24:00).",
        ),
    ]
}

fn modified_since() -> ParamSpec {
    param(
        "modificado_desde",
        ParamKind::Datetime,
        false,
        "Solo los registros modificados desde este momento.",
    )
}

/// What every data set takes: only the records changed after a global version, so a client
/// chains a full export (whose state carries `version_global`) with smaller ones.
fn changed_after() -> ParamSpec {
    param(
        "desde_version",
        ParamKind::Integer,
        false,
        "Solo los registros creados o cambiados después de esta versión global (la version_global de una exportación anterior, o del registro de cambios). Las bajas no aparecen: se leen en el registro de cambios.",
    )
}

fn params(rule: Rule) -> Vec<ParamSpec> {
    let mut specs = rule_params(rule);
    specs.push(changed_after());
    specs
}

fn rule_params(rule: Rule) -> Vec<ParamSpec> {
    match rule {
        Rule::All | Rule::Discounts => Vec::new(),
        Rule::WithAttachments => vec![flag(
            "incluir_ficheros_adjuntos",
            "True si quiere incluir los ficheros adjuntos.",
        )],
        Rule::Dates { .. } => range(true),
        Rule::Debts => vec![
            param(
                "fecha_hasta",
                ParamKind::Datetime,
                false,
                "Hasta este día (24:00).",
            ),
            param(
                "incluir_deudas",
                ParamKind::Boolean,
                false,
                "True si quiere incluir deudas.",
            ),
            param(
                "incluir_efectos",
                ParamKind::Boolean,
                false,
                "True si quiere incluir efectos.",
            ),
            flag("incluir_liquidado", "True si quiere incluir liquidados."),
            param(
                "fecha_desde",
                ParamKind::Datetime,
                false,
                "Desde este día; solo con incluir_liquidado. El periodo máximo es de 12 meses.",
            ),
        ],
        Rule::Partners => vec![
            ParamSpec {
                allowed_values: vec!["cliente".into(), "proveedor".into(), "acreedor".into()],
                ..param(
                    "tipo",
                    ParamKind::String,
                    false,
                    "cliente, proveedor o acreedor.",
                )
            },
            modified_since(),
        ],
        Rule::Sales => {
            let mut p = range(true);
            p.push(flag("incluir_pedidos", "True si hay que incluir pedidos."));
            p.push(flag(
                "todos_estados",
                "True si hay que incluir documentos en todos los estados.",
            ));
            p.push(modified_since());
            p
        }
    }
}

fn dataset(name: &str) -> Option<&'static Dataset> {
    DATASETS.iter().find(|d| d.name == name)
}

fn refuse(name: &str, message: impl Into<String>) -> ParamError {
    ParamError {
        name: name.into(),
        message: message.into(),
    }
}

fn day_param(params: &Params, name: &str) -> Option<Day> {
    params.get(name).and_then(Day::parse)
}

fn check_range(params: &Params, max_months: Option<u32>, what: &str) -> Vec<ParamError> {
    let (Some(from), Some(to)) = (
        day_param(params, "fecha_desde"),
        day_param(params, "fecha_hasta"),
    ) else {
        return Vec::new();
    };
    if from > to {
        return vec![refuse("fecha_hasta", "must not be before fecha_desde")];
    }
    match max_months {
        Some(months) if to > from.plus_months(months) => {
            vec![refuse(
                "fecha_hasta",
                format!("{what} spans at most {months} months"),
            )]
        }
        _ => Vec::new(),
    }
}

struct Erp;

impl Plugin for Erp {
    fn datasets() -> Vec<DatasetInfo> {
        DATASETS
            .iter()
            .map(|d| DatasetInfo {
                name: d.name.into(),
                description: d.description.into(),
                params: params(d.rule),
                fields: vec![FieldSpec {
                    name: "codigo".into(),
                    kind: FieldKind::String,
                    description: "El código del registro; los demás campos son los de la colección del mismo nombre.".into(),
                }],
            })
            .collect()
    }

    fn check(name: &str, params: &Params) -> Vec<ParamError> {
        if params.integer("desde_version").is_some_and(|v| v < 0) {
            return vec![refuse("desde_version", "must not be negative")];
        }
        match dataset(name).map(|d| d.rule) {
            Some(Rule::Dates { max_months, .. }) => check_range(params, max_months, "the range"),
            Some(Rule::Sales) => check_range(params, Some(12), "the range of ventas"),
            Some(Rule::Debts) => {
                if params.get("fecha_desde").is_some() && !params.flag("incluir_liquidado") {
                    vec![refuse("fecha_desde", "only with incluir_liquidado")]
                } else {
                    check_range(params, Some(12), "the period")
                }
            }
            _ => Vec::new(),
        }
    }

    fn generate(name: &str, params: &Params, out: &mut Output) -> Result<(), GenerateError> {
        let rule = dataset(name)
            .ok_or_else(|| GenerateError::Failed(format!("unknown data set {name}")))?
            .rule;
        let keep_attachments = params.flag("incluir_ficheros_adjuntos");
        let after = params
            .integer("desde_version")
            .and_then(|v| u64::try_from(v).ok());
        let today = Day::today();
        let source: Box<dyn Iterator<Item = Result<documents::Document, documents::Error>>> =
            match params.get("modificado_desde") {
                Some(since) => Box::new(documents::changed_since(name, since)),
                None => Box::new(documents::all(name)),
            };
        for doc in source {
            let doc = doc.map_err(|e| GenerateError::Failed(format!("reading {name}: {e:?}")))?;
            if after.is_some_and(|after| doc.version <= after) {
                continue;
            }
            let mut record: Value = serde_json::from_str(&doc.body)
                .map_err(|e| GenerateError::Failed(e.to_string()))?;
            if !selected(rule, params, &record, today) {
                continue;
            }
            if keep_attachments && let Some(fields) = record.as_object_mut() {
                fields.insert(ATTACHMENTS.into(), attached_files(name, doc.id)?);
            }
            out.push(&record)?;
        }
        Ok(())
    }
}

/// The files attached to a document as Winfra XXL's clients receive them: name, media type and
/// the content in base64, read one file at a time.
fn attached_files(collection: &str, id: u64) -> Result<Value, GenerateError> {
    use base64::Engine as _;
    let failed = |e: documents::Error| {
        GenerateError::Failed(format!("reading attachments of {collection}: {e:?}"))
    };
    let mut files = Vec::new();
    for file in documents::attachments(collection, id).map_err(failed)? {
        let Some(content) =
            documents::read_attachment(collection, id, &file.name).map_err(failed)?
        else {
            continue;
        };
        files.push(serde_json::json!({
            "nombre": file.name,
            "tipo": file.content_type,
            "contenido": base64::engine::general_purpose::STANDARD.encode(&content),
        }));
    }
    Ok(Value::Array(files))
}

fn text<'a>(record: &'a Value, field: &str) -> &'a str {
    record[field].as_str().unwrap_or_default()
}

fn in_range(params: &Params, value: &str) -> bool {
    let Some(day) = Day::parse(value) else {
        return false;
    };
    day_param(params, "fecha_desde").is_none_or(|from| day >= from)
        && day_param(params, "fecha_hasta").is_none_or(|to| day <= to)
}

fn selected(rule: Rule, params: &Params, record: &Value, today: Day) -> bool {
    match rule {
        Rule::All | Rule::WithAttachments => true,
        Rule::Dates { field, .. } => in_range(params, text(record, field)),
        Rule::Discounts => {
            let horizon = today.plus_days(7);
            Day::parse(text(record, "fecha_desde")).is_some_and(|from| from <= horizon)
                && Day::parse(text(record, "fecha_hasta")).is_some_and(|to| to >= today)
        }
        Rule::Debts => {
            let (debts, bills) = (params.get("incluir_deudas"), params.get("incluir_efectos"));
            let both = debts.is_none() && bills.is_none();
            let kind_wanted = match text(record, "clase") {
                "deuda" => both || params.flag("incluir_deudas"),
                "efecto" => both || params.flag("incluir_efectos"),
                _ => false,
            };
            let settled = record["liquidado"].as_bool().unwrap_or(false);
            kind_wanted
                && (!settled || params.flag("incluir_liquidado"))
                && in_range(params, text(record, "fecha"))
        }
        Rule::Partners => params.get("tipo").is_none_or(|t| text(record, "tipo") == t),
        Rule::Sales => {
            let kind_ok =
                params.flag("incluir_pedidos") || text(record, "tipo_documento") != "pedido";
            let state = text(record, "estado").to_lowercase();
            let state_ok = params.flag("todos_estados")
                || ["bloqueado", "facturado", "rectificado"].contains(&state.as_str());
            kind_ok && state_ok && in_range(params, text(record, "fecha"))
        }
    }
}

bulkhost_plugin_sdk::export_plugin!(Erp);
