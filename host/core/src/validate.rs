//! Field validation with Django REST Framework's rules and messages.
//!
//! Datawiz clients parse DRF-shaped errors: a map from field name to a list of messages, nested
//! maps for nested objects, lists of maps for lists, and `non_field_errors` for the whole object.
//! Validation also normalizes: strings are trimmed, decimals keep their scale, datetimes are
//! written one way, and undeclared or read-only input fields are dropped.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::{Map, Value};

use crate::schema::{Field, FieldType};

/// Errors of one object: field name → messages (or nested errors).
pub type FieldErrors = Map<String, Value>;

/// The errors of a write request, item by item.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationErrors {
    /// One entry per submitted object, in request order; empty maps for valid objects.
    pub items: Vec<FieldErrors>,
    /// Whether the request was a list (errors are then reported as a list).
    pub many: bool,
}

impl ValidationErrors {
    /// The errors as DRF renders them: a list for list requests, one object otherwise.
    pub fn to_json(&self) -> Value {
        if self.many {
            Value::Array(self.items.iter().cloned().map(Value::Object).collect())
        } else {
            Value::Object(self.items.first().cloned().unwrap_or_default())
        }
    }

    /// Whether any item carries an error.
    pub fn any(&self) -> bool {
        self.items.iter().any(|m| !m.is_empty())
    }
}

/// The reserved property that carries a document's external ids (ABRA's `ext:` ids), on input
/// and in ABRA listings.
pub const EXTERNAL_IDS: &str = "external-ids";

/// Reads the optional external ids of a submitted object: `ext:SYSTEM:VALUE`, the `ext:`
/// prefix optional on input, duplicates dropped.
pub(crate) fn external_ids(input: &Value) -> Result<Option<Value>, Value> {
    let Some(given) = input.as_object().and_then(|o| o.get(EXTERNAL_IDS)) else {
        return Ok(None);
    };
    let invalid = || message("Expected a list of external ids such as \"ext:SYSTEM:VALUE\".");
    let mut out: Vec<Value> = Vec::new();
    for item in given.as_array().ok_or_else(invalid)? {
        let text = item.as_str().ok_or_else(invalid)?.trim();
        if let Some(why) = unservable(text) {
            return Err(message(why));
        }
        let text = text.strip_prefix("ext:").unwrap_or(text);
        match text.split_once(':') {
            Some((system, value)) if !system.is_empty() && !value.is_empty() => {}
            _ => return Err(invalid()),
        }
        let full = Value::String(format!("ext:{text}"));
        if !out.contains(&full) {
            out.push(full);
        }
    }
    Ok(Some(Value::Array(out)))
}

/// The key DRF uses for errors about a whole object.
pub const NON_FIELD_ERRORS: &str = "non_field_errors";

fn message(text: impl Into<String>) -> Value {
    Value::Array(vec![Value::String(text.into())])
}

/// DRF's name for a JSON value's type in "Expected a dictionary, but got X." messages.
fn python_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Validates one submitted object against `fields`, answering the normalized object.
pub fn validate_object(fields: &[Field], input: &Value) -> Result<Map<String, Value>, FieldErrors> {
    let Value::Object(input) = input else {
        let mut errors = Map::new();
        errors.insert(
            NON_FIELD_ERRORS.into(),
            message(format!(
                "Invalid data. Expected a dictionary, but got {}.",
                python_type(input)
            )),
        );
        return Err(errors);
    };
    let mut out = Map::new();
    let mut errors = Map::new();
    for field in fields.iter().filter(|f| !f.read_only) {
        match input.get(&field.name) {
            None if field.required => {
                errors.insert(field.name.clone(), message("This field is required."));
            }
            None => {}
            Some(Value::Null) if field.accepts_null() => {
                out.insert(field.name.clone(), Value::Null);
            }
            Some(Value::Null) => {
                errors.insert(field.name.clone(), message("This field may not be null."));
            }
            Some(v) => match validate_value(field, v) {
                Ok(v) => {
                    out.insert(field.name.clone(), v);
                }
                Err(e) => {
                    errors.insert(field.name.clone(), e);
                }
            },
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn validate_value(field: &Field, v: &Value) -> Result<Value, Value> {
    match field.kind {
        FieldType::String => string(field, v),
        FieldType::Integer => integer(v),
        FieldType::Decimal => decimal(field, v),
        FieldType::Datetime => datetime(v),
        FieldType::Bool => boolean(v),
        FieldType::Object => validate_object(&field.children, v)
            .map(Value::Object)
            .map_err(Value::Object),
        FieldType::List => list(field, v),
    }
}

/// Whether XML 1.0 cannot carry `c`: the C0 controls but tab, newline and return, and U+FFFE
/// and U+FFFF. Writes refuse text that holds one; ABRA Flexi's XML replaces one met elsewhere.
pub fn xml_cannot_carry(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}')
}

/// Why text cannot be stored, if it holds a character XML 1.0 cannot carry (ABRA listings
/// are XML, so such text could never be served whole): DRF's message for NUL, one naming the
/// character otherwise.
fn unservable(text: &str) -> Option<String> {
    let bad = text.chars().find(|&c| xml_cannot_carry(c))?;
    Some(if bad == '\0' {
        "Null characters are not allowed.".to_string()
    } else {
        format!("The character U+{:04X} is not allowed.", u32::from(bad))
    })
}

fn string(field: &Field, v: &Value) -> Result<Value, Value> {
    let text = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return Err(message("Not a valid string.")),
    };
    if text.is_empty() {
        return Err(message("This field may not be blank."));
    }
    if let Some(why) = unservable(&text) {
        return Err(message(why));
    }
    if let Some(max) = field.max_length
        && text.chars().count() > max
    {
        return Err(message(format!(
            "Ensure this field has no more than {max} characters."
        )));
    }
    Ok(Value::String(text))
}

fn integer(v: &Value) -> Result<Value, Value> {
    let invalid = || message("A valid integer is required.");
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .map(Value::from)
            .ok_or_else(invalid),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

fn decimal(field: &Field, v: &Value) -> Result<Value, Value> {
    let invalid = || message("A valid number is required.");
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return Err(invalid()),
    };
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(&text)),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty() || !all_digits(int_part) || !all_digits(frac_part) {
        return Err(invalid());
    }
    let mut frac = frac_part.to_string();
    if let Some(places) = field.decimal_places {
        let places = places as usize;
        let significant = frac.trim_end_matches('0').len();
        if significant > places {
            return Err(message(format!(
                "Ensure that there are no more than {places} decimal places."
            )));
        }
        frac.truncate(significant);
        while frac.len() < places {
            frac.push('0');
        }
    }
    let int_part = int_part.trim_start_matches('0');
    let int_part = if int_part.is_empty() { "0" } else { int_part };
    let sign = if negative { "-" } else { "" };
    Ok(Value::String(if frac.is_empty() {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{frac}")
    }))
}

/// The one way datetimes are stored and shown.
pub const DATETIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// Parses the ISO 8601 forms DRF accepts; an offset converts the time to UTC.
pub fn parse_datetime(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.naive_utc());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, format) {
            return Some(dt);
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z"] {
        if let Ok(dt) = DateTime::parse_from_str(s, format) {
            return Some(dt.naive_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
}

fn datetime(v: &Value) -> Result<Value, Value> {
    v.as_str()
        .and_then(parse_datetime)
        .map(|dt| Value::String(dt.format(DATETIME_FORMAT).to_string()))
        .ok_or_else(|| {
            message(
                "Datetime has wrong format. Use one of these formats instead: \
                 YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].",
            )
        })
}

fn boolean(v: &Value) -> Result<Value, Value> {
    let parsed = match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
            "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
            _ => None,
        },
        _ => None,
    };
    parsed
        .map(Value::Bool)
        .ok_or_else(|| message("Must be a valid boolean."))
}

fn list(field: &Field, v: &Value) -> Result<Value, Value> {
    let Value::Array(items) = v else {
        return Err(message(format!(
            "Expected a list of items but got type \"{}\".",
            python_type(v)
        )));
    };
    if items.is_empty() && field.required {
        return Err(message("This list may not be empty."));
    }
    let mut out = Vec::with_capacity(items.len());
    let mut errors = Vec::with_capacity(items.len());
    let mut failed = false;
    for item in items {
        match validate_object(&field.children, item) {
            Ok(obj) => {
                out.push(Value::Object(obj));
                errors.push(Value::Object(Map::new()));
            }
            Err(e) => {
                failed = true;
                errors.push(Value::Object(e));
            }
        }
    }
    if failed {
        Err(Value::Array(errors))
    } else {
        Ok(Value::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields() -> Vec<Field> {
        serde_json::from_value(json!([
            {"name": "code", "type": "string", "required": true, "max_length": 3},
            {"name": "qty", "type": "decimal", "required": true, "decimal_places": 4},
            {"name": "n", "type": "integer"},
            {"name": "at", "type": "datetime"},
            {"name": "items", "type": "list", "children": [
                {"name": "sku", "type": "string", "required": true}
            ]}
        ]))
        .unwrap()
    }

    #[test]
    fn normalizes_valid_input() {
        let out = validate_object(
            &fields(),
            &json!({"code": " ab ", "qty": 2, "n": "7", "at": "2015-01-01T01:00:00+01:00",
                    "items": [{"sku": 5}], "extra": true}),
        )
        .unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"code": "ab", "qty": "2.0000", "n": 7, "at": "2015-01-01T00:00:00",
                   "items": [{"sku": "5"}]})
        );
    }

    #[test]
    fn reports_drf_messages_per_field() {
        let errors = validate_object(
            &fields(),
            &json!({"code": "abcd", "qty": "x", "n": 1.5, "items": [{"sku": "a"}, {}]}),
        )
        .unwrap_err();
        assert_eq!(
            Value::Object(errors),
            json!({
                "code": ["Ensure this field has no more than 3 characters."],
                "qty": ["A valid number is required."],
                "n": ["A valid integer is required."],
                "items": [{}, {"sku": ["This field is required."]}]
            })
        );
    }

    #[test]
    fn non_objects_are_whole_object_errors() {
        let errors = validate_object(&fields(), &json!("text")).unwrap_err();
        assert_eq!(
            Value::Object(errors),
            json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]})
        );
    }

    #[test]
    fn decimal_places_are_enforced() {
        let errors =
            validate_object(&fields(), &json!({"code": "a", "qty": "1.00001"})).unwrap_err();
        assert_eq!(
            errors["qty"],
            json!(["Ensure that there are no more than 4 decimal places."])
        );
    }
}
