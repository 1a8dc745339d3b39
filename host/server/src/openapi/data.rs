//! The parts of the document that are data, not code: each collection's documents as its
//! schema declares them, and each data set's request with the parameters its plugin declares.

use bulkhost_core::{EXTERNAL_IDS, Field, FieldType, Schema as Collection};
use bulkhost_runtime::{DatasetInfo, ParamKind};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, SchemaType, Type};
use utoipa::openapi::{KnownFormat, RefOr, Schema, SchemaFormat};

/// A JSON type, or null.
fn nullable(kind: Type) -> SchemaType {
    SchemaType::Array(vec![kind, Type::Null])
}

fn typed(kind: SchemaType) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(kind)
}

/// A document as responses show it: `url`, then every field (null when absent), each
/// reference followed by the URL of the document it names.
pub fn document(collection: &Collection) -> Schema {
    let mut object = ObjectBuilder::new()
        .description(Some(collection.description.clone()))
        .property("url", typed(Type::String.into()).format(uri()))
        .required("url");
    object = shown_fields(object, &collection.fields);
    object.into()
}

fn uri() -> Option<SchemaFormat> {
    Some(SchemaFormat::Custom("uri".into()))
}

fn shown_fields(mut object: ObjectBuilder, fields: &[Field]) -> ObjectBuilder {
    for f in fields {
        object = object.property(&f.name, shown(f));
        if let Some(url_field) = f.references.as_ref().and_then(|r| r.url_field.as_ref()) {
            object = object.property(url_field, typed(nullable(Type::String)));
        }
    }
    object
}

fn shown(f: &Field) -> Schema {
    let described = |o: ObjectBuilder| o.description(Some(f.label()));
    match f.kind {
        FieldType::String | FieldType::Decimal | FieldType::Datetime => {
            described(typed(nullable(Type::String))).into()
        }
        FieldType::Integer => described(typed(nullable(Type::Integer))).into(),
        FieldType::Bool => described(typed(nullable(Type::Boolean))).into(),
        FieldType::Object => {
            described(shown_fields(typed(nullable(Type::Object)), &f.children)).into()
        }
        FieldType::List => ArrayBuilder::new()
            .schema_type(nullable(Type::Array))
            .items(shown_fields(ObjectBuilder::new(), &f.children))
            .description(Some(f.label()))
            .into(),
    }
}

/// A document as an upsert takes it: the writable fields, the required ones required, and the
/// optional external ids.
pub fn input(collection: &Collection) -> Schema {
    written_fields(ObjectBuilder::new(), &collection.fields)
        .property(
            EXTERNAL_IDS,
            ArrayBuilder::new()
                .items(typed(Type::String.into()).examples(["ext:SYSTEM:VALUE"]))
                .description(Some("External ids, `ext:SYSTEM:VALUE`.")),
        )
        .into()
}

fn written_fields(mut object: ObjectBuilder, fields: &[Field]) -> ObjectBuilder {
    for f in fields.iter().filter(|f| !f.read_only) {
        object = object.property(&f.name, written(f));
        if f.required {
            object = object.required(&f.name);
        }
    }
    object
}

fn written(f: &Field) -> Schema {
    let kind = |t: Type| {
        if f.accepts_null() {
            nullable(t)
        } else {
            SchemaType::Type(t)
        }
    };
    let described = |o: ObjectBuilder| o.description(Some(f.label()));
    match f.kind {
        FieldType::String => described(typed(kind(Type::String)).max_length(f.max_length)).into(),
        FieldType::Integer => described(typed(kind(Type::Integer))).into(),
        FieldType::Decimal => described(
            typed(kind(Type::String))
                .pattern(Some(r"^-?[0-9]+(\.[0-9]+)?$"))
                .examples(["12.50"]),
        )
        .into(),
        FieldType::Datetime => described(
            typed(kind(Type::String))
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .into(),
        FieldType::Bool => described(typed(kind(Type::Boolean))).into(),
        FieldType::Object => {
            described(written_fields(typed(kind(Type::Object)), &f.children)).into()
        }
        FieldType::List => ArrayBuilder::new()
            .schema_type(kind(Type::Array))
            .items(written_fields(ObjectBuilder::new(), &f.children))
            .description(Some(f.label()))
            .into(),
    }
}

/// One page: `{count, next, previous, results}`, and `globalVersion` when asked for.
pub fn page(document: RefOr<Schema>) -> Schema {
    ObjectBuilder::new()
        .property("count", typed(Type::Integer.into()).minimum(Some(0)))
        .property("next", typed(nullable(Type::String)).format(uri()))
        .property("previous", typed(nullable(Type::String)).format(uri()))
        .property("results", ArrayBuilder::new().items(document))
        .property(
            "globalVersion",
            typed(Type::Integer.into()).minimum(Some(0)),
        )
        .required("count")
        .required("next")
        .required("previous")
        .required("results")
        .into()
}

/// A collection as ABRA Flexi lists it: `{"winstrom": {"@version", "@globalVersion"?,
/// "<collection>": [records]}}`, each record its stored fields with its `id`.
pub fn listing(collection: &Collection) -> Schema {
    let mut record = ObjectBuilder::new()
        .property("id", typed(Type::String.into()))
        .required("id");
    for f in &collection.fields {
        record = record.property(&f.name, shown(f));
    }
    let body = ObjectBuilder::new()
        .property("@version", typed(Type::String.into()))
        .property("@globalVersion", typed(Type::String.into()))
        .property(&collection.collection, ArrayBuilder::new().items(record))
        .required("@version")
        .required(&collection.collection);
    ObjectBuilder::new()
        .property("winstrom", body)
        .required("winstrom")
        .into()
}

/// A data set request: its name, an optional webhook and the parameters its plugin declares,
/// as Winfra's clients write them.
pub fn export_request(info: &DatasetInfo) -> Schema {
    let mut object = ObjectBuilder::new()
        .title(Some(format!("{} request", info.name)))
        .description(Some(info.description.clone()))
        .property(
            "dataset",
            typed(Type::String.into()).enum_values(Some([info.name.clone()])),
        )
        .required("dataset")
        .property(
            "webhook",
            typed(nullable(Type::String))
                .format(uri())
                .description(Some(
                    "An http:// or https:// URL to post the final state to.",
                )),
        );
    for p in &info.params {
        let kind = match p.kind {
            ParamKind::Integer => Type::Integer,
            ParamKind::Decimal => Type::Number,
            ParamKind::Boolean => Type::Boolean,
            ParamKind::String | ParamKind::Datetime => Type::String,
        };
        let param = if p.allowed_values.is_empty() {
            typed(nullable(kind))
        } else {
            typed(Type::String.into()).enum_values(Some(p.allowed_values.clone()))
        };
        object = object.property(&p.name, param.description(Some(p.description.clone())));
        if p.required {
            object = object.required(&p.name);
        }
    }
    object.into()
}

/// The body of `generar_xxl`: a list of requests, each for one of `datasets`.
pub fn export_requests<'a>(datasets: impl Iterator<Item = &'a DatasetInfo>) -> Schema {
    let one = datasets.fold(OneOfBuilder::new(), |one, info| {
        one.item(export_request(info))
    });
    ArrayBuilder::new().items(one).min_items(Some(1)).into()
}
