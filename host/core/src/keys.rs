//! Order-preserving byte encoding of composite keys.
//!
//! Every redb table of the core is keyed by bytes built here, so that byte order equals the
//! logical order of (tenant, collection, value, id) tuples; every engine orders documents by
//! key, and by their ordering fields, in the order of these bytes. Strings are self-delimiting
//! (`0x00` escaped as `0x00 0xFF`, terminated by `0x00 0x01`), so a prefix of encoded parts
//! never matches a longer string, and numbers sort by their exact decimal value: a sign, an
//! exponent and the significant digits, so `9007199254740993` sorts after `9007199254740992`
//! (which an `f64` cannot tell apart) and a decimal string compares with integers and floats
//! as the number it spells.

use serde_json::Value;

/// The position of a document in key order: its key values, encoded. Cursors of scans in key
/// order are these bytes, whichever engine answers them.
pub fn key_position(values: &[String]) -> Vec<u8> {
    values.iter().fold(Key::new(), |k, v| k.str(v)).into_vec()
}

/// The position of a value in the order of an ordering field: a document with this value in
/// the field comes at this encoding followed by its id ([`id_position`]).
pub fn value_position(value: &Value) -> Vec<u8> {
    Key::new().value(value).into_vec()
}

/// The position of an id in id order, and after a value's position in a field's order.
pub fn id_position(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// A key under construction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Key(Vec<u8>);

const NULL: u8 = 0x10;
const FALSE: u8 = 0x20;
const TRUE: u8 = 0x21;
const NEGATIVE: u8 = 0x30;
const ZERO: u8 = 0x31;
const POSITIVE: u8 = 0x32;
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
    /// then booleans, numbers by their exact value (numeric strings included, for decimals),
    /// then strings.
    pub(crate) fn value(mut self, v: &Value) -> Self {
        match v {
            Value::Null => self.0.push(NULL),
            Value::Bool(false) => self.0.push(FALSE),
            Value::Bool(true) => self.0.push(TRUE),
            Value::Number(n) => {
                let text = n.to_string();
                if !push_number(&mut self.0, &text) {
                    self.0.push(OTHER);
                    push_str(&mut self.0, &text);
                }
            }
            Value::String(s) if is_decimal_string(s) && push_number(&mut self.0, s) => {}
            Value::String(s) => {
                self.0.push(STRING);
                push_str(&mut self.0, s);
            }
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
fn is_decimal_string(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|b| *b == b'.').count() <= 1
        && digits.as_bytes()[0] != b'.'
}

/// Appends the number spelled by `text` (`-12.50`, `3e-7`, as JSON writes numbers) so that byte
/// order is numeric order, exactly: a sign tag, then for a non-zero value `0.DIGITS × 10^E`
/// the exponent `E` and the significant digits, both inverted for negative numbers so that
/// larger magnitudes sort first there. Answers `false`, writing nothing, for text that is not
/// a number.
fn push_number(out: &mut Vec<u8>, text: &str) -> bool {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.split_once(['e', 'E']) {
        Some((m, e)) => match e.strip_prefix('+').unwrap_or(e).parse::<i64>() {
            Ok(e) => (m, e),
            Err(_) => return false,
        },
        None => (rest, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() || !(whole.bytes().chain(fraction.bytes())).all(|b| b.is_ascii_digit()) {
        return false;
    }
    let digits: Vec<u8> = whole.bytes().chain(fraction.bytes()).collect();
    let Some(first) = digits.iter().position(|d| *d != b'0') else {
        out.push(ZERO);
        return true;
    };
    let last = digits.iter().rposition(|d| *d != b'0').unwrap_or(first);
    let magnitude = (whole.len() as i64 - first as i64).saturating_add(exponent);
    let biased = (magnitude.clamp(i32::MIN as i64, i32::MAX as i64) as i32 as u32) ^ (1 << 31);
    let flip = |b: u8| if negative { !b } else { b };
    out.push(if negative { NEGATIVE } else { POSITIVE });
    out.extend(biased.to_be_bytes().map(flip));
    // Digits as 1..=10 and a 0 terminator, so a shorter digit string sorts before a longer
    // one that extends it (0.12 < 0.123); flipped for negative numbers.
    out.extend(digits[first..=last].iter().map(|d| flip(d - b'0' + 1)));
    out.push(flip(0));
    true
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

/// The first string part of a key and the bytes after it; `None` when the key does not start
/// with a whole string part.
pub(crate) fn split_str(key: &[u8]) -> Option<(String, &[u8])> {
    let mut text = Vec::new();
    let mut i = 0;
    loop {
        match (key.get(i)?, key.get(i + 1)) {
            (0, Some(0xFF)) => text.push(0),
            (0, Some(1)) => {
                return String::from_utf8(text).ok().map(|t| (t, &key[i + 2..]));
            }
            (0, _) => return None,
            (b, _) => {
                text.push(*b);
                i += 1;
                continue;
            }
        }
        i += 2;
    }
}

/// The smallest key greater than every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
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
            json!(-9007199254740993i64),
            json!(-9007199254740992i64),
            json!(-10.5),
            json!("-2"),
            json!(-1.25),
            json!(-1.2),
            json!(-0.5),
            json!(0),
            json!(1e-7),
            json!(0.12),
            json!("0.123"),
            json!(1.2),
            json!("2.0000"),
            json!(2.5),
            json!(10),
            json!("12"),
            json!(9007199254740992u64),
            json!("9007199254740993"),
            json!(9007199254740994u64),
            json!(u64::MAX),
            json!(1e21),
            json!("a"),
            json!("ab"),
            json!("b"),
        ];
        let keys: Vec<_> = ordered
            .iter()
            .map(|v| Key::new().value(v).into_vec())
            .collect();
        for (pair, values) in keys.windows(2).zip(ordered.windows(2)) {
            assert!(pair[0] < pair[1], "{values:?}");
        }
        let same = |a: Value, b: Value| Key::new().value(&a) == Key::new().value(&b);
        assert!(same(json!(0), json!("-0.000")));
        assert!(same(json!(2.5), json!("2.50")));
        assert!(same(json!(100), json!(1e2)));
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
    fn string_parts_read_back() {
        let key = Key::new().str("a\0b").str("c").u64(7).into_vec();
        let (first, rest) = split_str(&key).unwrap();
        assert_eq!(first, "a\0b");
        assert_eq!(split_str(rest).unwrap().0, "c");
        assert_eq!(split_str(b"no end"), None);
    }

    #[test]
    fn prefix_end_bounds_every_extension() {
        let p = Key::new().str("t").into_vec();
        let inside = Key::new().str("t").u64(u64::MAX).into_vec();
        assert!(inside < prefix_end(&p));
        assert!(Key::new().str("u").into_vec() >= prefix_end(&p));
    }
}
