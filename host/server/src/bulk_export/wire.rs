//! The bodies Winfra XXL's clients send and receive, as types: what the handlers parse and
//! render, and what the OpenAPI document describes.

use std::collections::BTreeMap;

use bulkhost_core::{ExportRequest, RunState};
use bulkhost_runtime::{DatasetInfo, FieldKind, ParamKind};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One item of `POST /api_v1/generar_xxl`: a data set, an optional webhook and the data set's
/// parameters beside them.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PeticionGenerarXxl {
    /// The data set to generate; required.
    pub dataset: Option<String>,
    /// An `http://` or `https://` URL to post the final state to.
    pub webhook: Option<String>,
    /// The data set's parameters; null for a parameter's default.
    #[serde(flatten)]
    #[schema(value_type = BTreeMap<String, ParamValue>)]
    pub params: BTreeMap<String, Option<ParamValue>>,
}

/// A parameter's value: Winfra's clients send strings, numbers and booleans.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(
    untagged,
    expecting = "a parameter must be a string, number or boolean"
)]
pub enum ParamValue {
    /// Text.
    Text(String),
    /// `true` or `false`.
    Flag(bool),
    /// A number, kept as written.
    #[schema(value_type = f64)]
    Number(serde_json::Number),
}

impl ParamValue {
    /// The value as the plugin receives it.
    pub fn text(&self) -> String {
        match self {
            ParamValue::Text(s) => s.clone(),
            ParamValue::Flag(b) => b.to_string(),
            ParamValue::Number(n) => n.to_string(),
        }
    }
}

/// Where a request or one of its data sets is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Estado {
    /// Queued or generating.
    Pending,
    /// Ready to download.
    Ok,
    /// Failed or cancelled.
    Error,
}

impl From<RunState> for Estado {
    fn from(state: RunState) -> Self {
        match state {
            RunState::Queued | RunState::Running => Estado::Pending,
            RunState::Done => Estado::Ok,
            RunState::Failed | RunState::Cancelled => Estado::Error,
        }
    }
}

fn moment(t: Option<NaiveDateTime>) -> Option<String> {
    t.map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
}

/// A request in Winfra XXL's `EstadoGenerarXXL` shape.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EstadoGenerarXXL)]
pub struct EstadoGenerarXxl {
    /// The request's id.
    pub peticion_id: String,
    /// When it was made.
    pub fecha_peticion: Option<String>,
    /// Why data sets failed, `dataset: message` joined by `; `.
    pub error_message: String,
    /// `PENDING` while any data set is, then `ERROR` if any failed, else `OK`.
    pub estado: Estado,
    /// Each data set's state.
    pub datasets: Vec<EstadoDataset>,
}

/// One data set of a request.
#[derive(Debug, Serialize, ToSchema)]
pub struct EstadoDataset {
    /// Its name.
    pub dataset: String,
    /// Where it is.
    pub estado: Estado,
    /// When it started generating.
    pub fecha_generacion_inicio: Option<String>,
    /// When it finished.
    pub fecha_generacion_fin: Option<String>,
    /// Records generated so far.
    pub numero_registros: u64,
    /// Why it failed; empty otherwise.
    pub error_message: String,
    /// Beyond Winfra XXL, once the data set is `OK`: the global version of the tenant's change
    /// feed (ABRA Flexi's `globalVersion`) that its records reflect. Continue from it with the
    /// change feed (`start` one above it) or with an export of changes (`desde_version`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_global: Option<u64>,
}

impl From<&ExportRequest> for EstadoGenerarXxl {
    fn from(request: &ExportRequest) -> Self {
        let failures: Vec<String> = request
            .datasets
            .iter()
            .filter(|d| Estado::from(d.state) == Estado::Error)
            .map(|d| format!("{}: {}", d.dataset, d.error_message))
            .collect();
        let estado = if !request.finished() {
            Estado::Pending
        } else if failures.is_empty() {
            Estado::Ok
        } else {
            Estado::Error
        };
        EstadoGenerarXxl {
            peticion_id: request.id.clone(),
            fecha_peticion: moment(Some(request.created_at)),
            error_message: failures.join("; "),
            estado,
            datasets: request
                .datasets
                .iter()
                .map(|d| EstadoDataset {
                    dataset: d.dataset.clone(),
                    estado: d.state.into(),
                    fecha_generacion_inicio: moment(d.started_at),
                    fecha_generacion_fin: moment(d.finished_at),
                    numero_registros: d.records,
                    error_message: d.error_message.clone(),
                    version_global: d.version,
                })
                .collect(),
        }
    }
}

/// `POST /api_token/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// The tenant (Winfra's domain) the credentials belong to.
    pub domain: String,
    /// The API the token is for.
    pub api: String,
}

/// The token, for the `WINFRA-API-TOKEN` header.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenAnswer {
    /// The token.
    #[serde(rename = "WINFRA-API-TOKEN")]
    pub token: String,
}

/// A data set as `GET /api_v1/datasets` describes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DatasetDescription {
    /// The name requests use.
    pub dataset: String,
    /// What it holds.
    pub description: String,
    /// The parameters a request may give.
    pub params: Vec<ParamDescription>,
    /// The fields of its records.
    pub fields: Vec<FieldDescription>,
}

/// One parameter of a data set.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParamDescription {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// `string`, `integer`, `decimal`, `boolean` or `datetime`.
    pub kind: &'static str,
    /// Whether a request must give it.
    pub required: bool,
    /// The value used when a request gives none.
    pub default: Option<String>,
    /// When not empty, the only values accepted.
    pub allowed_values: Vec<String>,
}

/// One field of a data set's records.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldDescription {
    /// The JSON property.
    pub name: String,
    /// `string`, `integer`, `decimal`, `boolean`, `datetime`, `object` or `list`.
    pub kind: &'static str,
    /// What it holds.
    pub description: String,
}

/// The name Winfra's descriptions give a parameter kind.
pub fn param_kind(kind: ParamKind) -> &'static str {
    match kind {
        ParamKind::String => "string",
        ParamKind::Integer => "integer",
        ParamKind::Decimal => "decimal",
        ParamKind::Boolean => "boolean",
        ParamKind::Datetime => "datetime",
    }
}

/// The name Winfra's descriptions give a field kind.
pub fn field_kind(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::String => "string",
        FieldKind::Integer => "integer",
        FieldKind::Decimal => "decimal",
        FieldKind::Boolean => "boolean",
        FieldKind::Datetime => "datetime",
        FieldKind::Object => "object",
        FieldKind::List => "list",
    }
}

impl From<&DatasetInfo> for DatasetDescription {
    fn from(info: &DatasetInfo) -> Self {
        DatasetDescription {
            dataset: info.name.clone(),
            description: info.description.clone(),
            params: info
                .params
                .iter()
                .map(|p| ParamDescription {
                    name: p.name.clone(),
                    description: p.description.clone(),
                    kind: param_kind(p.kind),
                    required: p.required,
                    default: p.default_value.clone(),
                    allowed_values: p.allowed_values.clone(),
                })
                .collect(),
            fields: info
                .fields
                .iter()
                .map(|f| FieldDescription {
                    name: f.name.clone(),
                    kind: field_kind(f.kind),
                    description: f.description.clone(),
                })
                .collect(),
        }
    }
}

/// A plugin in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginListing {
    /// Its name.
    pub name: String,
    /// The SHA-256 of its component, hex.
    pub sha256: String,
    /// The data sets it provides.
    pub datasets: Vec<String>,
}

/// A plugin just installed.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstalledPlugin {
    /// Its name.
    pub name: String,
    /// The SHA-256 of its component, hex.
    pub sha256: String,
    /// The data sets it provides.
    pub datasets: Vec<DatasetDescription>,
}

/// An error in Winfra XXL's shape, also the operator API's.
#[derive(Debug, Serialize, ToSchema)]
pub struct WinfraFailure {
    /// What went wrong.
    pub error: String,
}
