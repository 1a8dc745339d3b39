//! `ledger`: N deterministic records of about 208 bytes of JSON, shaped like the rows of the
//! PostgreSQL export peer (`row_to_json` of a product code and name, a date, an amount and a
//! note drawn from a small vocabulary; the amount a string, as the contract carries
//! decimals). They compress like business data, where `synthetic`'s filler compresses like
//! noise, so compressed downloads are measured against `gzip -1` on equal terms.

use bulkhost_plugin_sdk::{
    DatasetInfo, FieldKind, FieldSpec, GenerateError, Output, ParamError, ParamKind, ParamSpec,
    Params, Plugin,
};

/// Records a request may ask for.
const MAX_COUNT: i64 = 100_000_000;

/// The words of the notes, as the peer draws them.
const WORDS: [&str; 23] = [
    "stock",
    "count",
    "shelf",
    "warehouse",
    "store",
    "audit",
    "fresh",
    "frozen",
    "dairy",
    "bakery",
    "produce",
    "aisle",
    "front",
    "back",
    "checked",
    "recount",
    "damaged",
    "returned",
    "promo",
    "seasonal",
    "bulk",
    "pallet",
    "box",
];

/// Record `g` (from 1), as JSON object text.
fn record(g: u64) -> String {
    let word = |n: u64| WORDS[(n % 23) as usize];
    let note = [
        g,
        g / 23,
        g / 529,
        g * 7,
        g * 11,
        g * 13,
        g * 17,
        g * 19,
        g * 29,
        g * 31,
        g * 37,
        g * 41,
    ]
    .map(word)
    .join(" ");
    let cents = (g * 7919) % 10_000_000;
    let (y, m, d) = civil_from_days(DAYS_TO_2015 + (g % 3650) as i64);
    format!(
        "{{\"id\":{g},\"code\":\"SKU-{g:010}\",\"name\":\"Item {g} {:012x}\",\
         \"date\":\"{y:04}-{m:02}-{d:02}\",\"amount\":\"{}.{:02}\",\"note\":\"{note} lot {}\"}}",
        mix(g) >> 16,
        cents / 100,
        cents % 100,
        g % 997
    )
}

/// Days from 1970-01-01 to 2015-01-01.
const DAYS_TO_2015: i64 = 16_436;

/// The (year, month, day) of a count of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A well-mixed 64-bit value of `g`, for the hex in the names (splitmix64's finalizer).
fn mix(g: u64) -> u64 {
    let mut z = g.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Ledger;

impl Plugin for Ledger {
    fn datasets() -> Vec<DatasetInfo> {
        let field = |name: &str, kind, description: &str| FieldSpec {
            name: name.into(),
            kind,
            description: description.into(),
        };
        vec![DatasetInfo {
            name: "ledger".into(),
            description: "N deterministic stock records of about 206 bytes each.".into(),
            params: vec![ParamSpec {
                name: "count".into(),
                description: "How many records to produce.".into(),
                kind: ParamKind::Integer,
                required: false,
                default_value: Some("1000".into()),
                allowed_values: Vec::new(),
            }],
            fields: vec![
                field("id", FieldKind::Integer, "1 to count"),
                field("code", FieldKind::String, "`SKU-` and the id in 10 digits"),
                field("name", FieldKind::String, "`Item {id}` and 12 hex digits"),
                field("date", FieldKind::String, "a day of 2015 to 2024"),
                field("amount", FieldKind::Decimal, "with 2 decimals"),
                field("note", FieldKind::String, "words of a stock count"),
            ],
        }]
    }

    fn check(_dataset: &str, params: &Params) -> Vec<ParamError> {
        let count = params.integer("count").unwrap_or(0);
        if (0..=MAX_COUNT).contains(&count) {
            return Vec::new();
        }
        vec![ParamError {
            name: "count".into(),
            message: format!("must be between 0 and {MAX_COUNT}"),
        }]
    }

    fn generate(_dataset: &str, params: &Params, out: &mut Output) -> Result<(), GenerateError> {
        let count = params.integer("count").unwrap_or(0).max(0) as u64;
        for g in 1..=count {
            out.push_raw(record(g))?;
        }
        Ok(())
    }
}

bulkhost_plugin_sdk::export_plugin!(Ledger);
