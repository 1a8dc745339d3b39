//! A bulkhost data set plugin: `tiendas`, every shop of the tenant's `shops` collection,
//! optionally only those in one city. Replace it with your own data sets.

use bulkhost_plugin_sdk::{
    DatasetInfo, FieldKind, FieldSpec, GenerateError, Output, ParamError, ParamKind, ParamSpec,
    Params, Plugin, documents, serde_json,
};

struct Shops;

impl Plugin for Shops {
    fn datasets() -> Vec<DatasetInfo> {
        vec![DatasetInfo {
            name: "tiendas".into(),
            description: "Every shop, optionally only those in one city.".into(),
            params: vec![ParamSpec {
                name: "ciudad".into(),
                description: "Only shops whose address mentions this city.".into(),
                kind: ParamKind::String,
                required: false,
                default_value: None,
                allowed_values: vec![],
            }],
            fields: vec![FieldSpec {
                name: "shop_id".into(),
                kind: FieldKind::String,
                description: "The shop's key.".into(),
            }],
        }]
    }

    fn check(_dataset: &str, params: &Params) -> Vec<ParamError> {
        match params.get("ciudad") {
            Some(c) if c.len() > 100 => vec![ParamError {
                name: "ciudad".into(),
                message: "at most 100 characters".into(),
            }],
            _ => vec![],
        }
    }

    fn generate(_dataset: &str, params: &Params, out: &mut Output) -> Result<(), GenerateError> {
        for doc in documents::all("shops") {
            let doc = doc.map_err(|e| GenerateError::Failed(format!("{e:?}")))?;
            let shop: serde_json::Value = serde_json::from_str(&doc.body)
                .map_err(|e| GenerateError::Failed(e.to_string()))?;
            let address = shop["address"].as_str().unwrap_or_default();
            if params.get("ciudad").is_none_or(|c| address.contains(c)) {
                out.push(&shop)?;
            }
        }
        Ok(())
    }
}

bulkhost_plugin_sdk::export_plugin!(Shops);
