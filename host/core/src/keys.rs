//! Order-preserving byte encoding of composite keys.
//!
//! Every redb table of the core is keyed by bytes built here, so that byte order equals the
//! logical order of (tenant, collection, value, id) tuples. Strings are self-delimiting
//! (`0x00` escaped as `0x00 0xFF`, terminated by `0x00 0x01`), so a prefix of encoded parts
//! never matches a longer string, and numbers sort numerically.

use serde_json::Value;

/// A key under construction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Key(Vec<u8>);

const NULL: u8 = 0x10;
const FALSE: u8 = 0x20;
const TRUE: u8 = 0x21;
const NUMBER: u8 = 0x30;
const STRING: u8 = 0x40;
const OTHER: u8 = 0x50;

impl Key {
    pub(crate) fn new() -> Self {
        Key(Vec::with_capacity(48))
    }

    pub(crate) fn str(mut self, s: &str) -> Self {
        push_str(&mut self.0, s);
        self
    }

    pub(crate) fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }

    /// Appends a JSON value so that values of one field sort as a user expects: null first,
    /// then booleans, numbers numerically (numeric strings included, for decimals), then
    /// strings.
    pub(crate) fn value(mut self, v: &Value) -> Self {
        match v {
            Value::Null => self.0.push(NULL),
            Value::Bool(false) => self.0.push(FALSE),
            Value::Bool(true) => self.0.push(TRUE),
            Value::Number(n) => push_f64(&mut self.0, n.as_f64().unwrap_or(0.0)),
            Value::String(s) => match decimal_string(s) {
                Some(f) => push_f64(&mut self.0, f),
                None => {
                    self.0.push(STRING);
                    push_str(&mut self.0, s);
                }
            },
            other => {
                self.0.push(OTHER);
                push_str(&mut self.0, &other.to_string());
            }
        }
        self
    }

    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.0
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

/// Strings that are plain decimals (`"2.0000"`, `"-3"`) sort as numbers: schemas store decimal
/// fields as strings to keep their scale.
fn decimal_string(s: &str) -> Option<f64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let plain = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|b| *b == b'.').count() <= 1
        && digits.as_bytes()[0] != b'.';
    if plain { s.parse().ok() } else { None }
}

fn push_f64(out: &mut Vec<u8>, f: f64) {
    let bits = f.to_bits();
    let ordered = if f.is_sign_negative() {
        !bits
    } else {
        bits ^ (1 << 63)
    };
    out.push(NUMBER);
    out.extend_from_slice(&ordered.to_be_bytes());
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 1]);
}

/// The smallest key greater than every key that starts with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xFF; prefix.len() + 1]
}

/// Reads the big-endian id that ends every index key.
pub(crate) fn trailing_u64(key: &[u8]) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&key[key.len() - 8..]);
    u64::from_be_bytes(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_sort_like_their_meaning() {
        let ordered = [
            json!(null),
            json!(false),
            json!(true),
            json!(-10.5),
            json!("-2"),
            json!(0),
            json!("2.0000"),
            json!(10),
            json!("a"),
            json!("ab"),
            json!("b"),
        ];
        let keys: Vec<_> = ordered
            .iter()
            .map(|v| Key::new().value(v).into_vec())
            .collect();
        for pair in keys.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?}");
        }
    }

    #[test]
    fn string_parts_do_not_bleed_into_each_other() {
        let a = Key::new().str("ab").str("c").into_vec();
        let b = Key::new().str("a").str("bc").into_vec();
        assert_ne!(a, b);
        let with_nul = Key::new().str("a\0").into_vec();
        let plain = Key::new().str("a").into_vec();
        assert!(plain < with_nul);
        assert!(!with_nul.starts_with(&plain));
    }

    #[test]
    fn prefix_end_bounds_every_extension() {
        let p = Key::new().str("t").into_vec();
        let inside = Key::new().str("t").u64(u64::MAX).into_vec();
        assert!(inside < prefix_end(&p));
        assert!(Key::new().str("u").into_vec() >= prefix_end(&p));
    }
}
