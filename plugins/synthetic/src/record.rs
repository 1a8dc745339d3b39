//! The records of the `synthetic` data set: plain Rust, also compiled natively by the
//! benchmark harness.

/// Record `i` of width about `width` bytes, as JSON object text; the same for the same inputs.
pub fn record(i: u64, width: usize) -> String {
    let mut state = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let head = format!(
        "{{\"id\":{i},\"name\":\"record {i}\",\"group\":{},\"payload\":\"",
        i % 97
    );
    let fill = width.saturating_sub(head.len() + 2);
    let mut out = String::with_capacity(head.len() + fill + 2);
    out.push_str(&head);
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz012345";
    for _ in 0..fill {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.push(ALPHABET[(state & 31) as usize] as char);
    }
    out.push_str("\"}");
    out
}
