//! Ordered index sequences that can seek to a position without walking the rows before it.
//!
//! A sequence is every `Tbl::Index` key that starts with one prefix (one collection's order by
//! one field). Beside the keys, `Tbl::Ranks` partitions each sequence into contiguous chunks of
//! at most [`MAX_CHUNK`] keys and stores each chunk's count under its first key. Finding the key
//! at position `p` sums the chunk counts (about `n / 700` small entries) and then steps inside
//! one chunk, so page `n` of a collection costs about what page 1 does, whatever `n` is.

use std::ops::Bound;

use crate::Result;
use crate::keys::prefix_end;
use crate::storage::{Reader, Tbl, Writer, decode_u64};

/// A chunk splits in two when it grows past this many keys.
const MAX_CHUNK: u64 = 1024;
/// A chunk smaller than this merges into its predecessor when that stays within `MAX_CHUNK`.
const MIN_CHUNK: u64 = 256;

fn chunk_containing(r: &impl Reader, seq: &[u8], key: &[u8]) -> Result<Option<(Vec<u8>, u64)>> {
    Ok(r.last_at_or_before(Tbl::Ranks, seq, key)?
        .map(|(k, v)| (k, decode_u64(&v))))
}

/// Adds `key` (which starts with `seq`) to the sequence; a key already present is left alone.
pub(crate) fn insert(w: &mut impl Writer, seq: &[u8], key: &[u8]) -> Result<()> {
    if w.get(Tbl::Index, key)?.is_some() {
        return Ok(());
    }
    w.put(Tbl::Index, key, &[])?;
    let (start, count) = chunk_containing(w, seq, key)?.unwrap_or_else(|| (seq.to_vec(), 0));
    let count = count + 1;
    if count <= MAX_CHUNK {
        return w.put(Tbl::Ranks, &start, &count.to_be_bytes());
    }
    let half = count / 2;
    let mut middle = None;
    let mut seen = 0;
    let end = prefix_end(seq);
    w.scan(
        Tbl::Index,
        Bound::Included(&start),
        Bound::Excluded(&end),
        false,
        &mut |k, _| {
            if seen == half {
                middle = Some(k.to_vec());
                return Ok(false);
            }
            seen += 1;
            Ok(true)
        },
    )?;
    let middle = middle.ok_or_else(|| crate::Error::Corrupt("rank chunk overcounted".into()))?;
    w.put(Tbl::Ranks, &start, &half.to_be_bytes())?;
    w.put(Tbl::Ranks, &middle, &(count - half).to_be_bytes())
}

/// Removes `key` from the sequence; an absent key is left alone.
pub(crate) fn remove(w: &mut impl Writer, seq: &[u8], key: &[u8]) -> Result<()> {
    if w.remove(Tbl::Index, key)?.is_none() {
        return Ok(());
    }
    let Some((start, count)) = chunk_containing(w, seq, key)? else {
        return Err(crate::Error::Corrupt(
            "index key outside any rank chunk".into(),
        ));
    };
    let count = count.saturating_sub(1);
    if start.as_slice() != seq && count < MIN_CHUNK {
        let mut previous = None;
        w.scan(
            Tbl::Ranks,
            Bound::Included(seq),
            Bound::Excluded(&start),
            true,
            &mut |k, v| {
                previous = Some((k.to_vec(), decode_u64(v)));
                Ok(false)
            },
        )?;
        if let Some((prev, prev_count)) = previous
            && prev_count + count <= MAX_CHUNK
        {
            w.remove(Tbl::Ranks, &start)?;
            return w.put(Tbl::Ranks, &prev, &(prev_count + count).to_be_bytes());
        }
    }
    w.put(Tbl::Ranks, &start, &count.to_be_bytes())
}

/// The chunk starts and counts of a sequence, in key order.
fn chunks(r: &impl Reader, seq: &[u8]) -> Result<Vec<(Vec<u8>, u64)>> {
    let mut out = Vec::new();
    let end = prefix_end(seq);
    r.scan(
        Tbl::Ranks,
        Bound::Included(seq),
        Bound::Excluded(&end),
        false,
        &mut |k, v| {
            out.push((k.to_vec(), decode_u64(v)));
            Ok(true)
        },
    )?;
    Ok(out)
}

/// How many keys the sequence holds.
pub(crate) fn len(r: &impl Reader, seq: &[u8]) -> Result<u64> {
    Ok(chunks(r, seq)?.iter().map(|(_, n)| n).sum())
}

/// Visits the sequence's keys from `position` on (counted from the end when `rev`), until
/// `visit` answers `false`. Also answers the sequence's length, which the seek computes anyway.
pub(crate) fn seek(
    r: &impl Reader,
    seq: &[u8],
    position: u64,
    rev: bool,
    visit: &mut dyn FnMut(&[u8]) -> Result<bool>,
) -> Result<u64> {
    let chunks = chunks(r, seq)?;
    let total = chunks.iter().map(|(_, n)| n).sum();
    if position >= total {
        return Ok(total);
    }
    let end = prefix_end(seq);
    let mut before = 0;
    let order: Vec<usize> = if rev {
        (0..chunks.len()).rev().collect()
    } else {
        (0..chunks.len()).collect()
    };
    for i in order {
        let (start, count) = &chunks[i];
        if before + count <= position {
            before += count;
            continue;
        }
        let mut skip = position - before;
        let mut step = |k: &[u8], _: &[u8]| {
            if skip > 0 {
                skip -= 1;
                return Ok(true);
            }
            visit(k)
        };
        if rev {
            let upper = chunks
                .get(i + 1)
                .map_or(end.as_slice(), |(s, _)| s.as_slice());
            r.scan(
                Tbl::Index,
                Bound::Included(seq),
                Bound::Excluded(upper),
                true,
                &mut step,
            )?;
        } else {
            r.scan(
                Tbl::Index,
                Bound::Included(start),
                Bound::Excluded(&end),
                false,
                &mut step,
            )?;
        }
        break;
    }
    Ok(total)
}

/// How many keys of the sequence sort before `key`.
pub(crate) fn rank(r: &impl Reader, seq: &[u8], key: &[u8]) -> Result<u64> {
    let mut before = 0;
    let mut start: &[u8] = seq;
    let chunks = chunks(r, seq)?;
    for (s, n) in chunks.iter().take_while(|(s, _)| s.as_slice() <= key) {
        before += n;
        start = s;
    }
    if let Some((_, n)) = chunks
        .iter()
        .take_while(|(s, _)| s.as_slice() <= key)
        .last()
    {
        before -= n;
    }
    let mut inside = 0;
    r.scan(
        Tbl::Index,
        Bound::Included(start),
        Bound::Excluded(key),
        false,
        &mut |_, _| {
            inside += 1;
            Ok(true)
        },
    )?;
    Ok(before + inside)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Key;
    use crate::storage::Storage;
    use proptest::prelude::*;

    fn key(seq: &[u8], n: u64) -> Vec<u8> {
        Key::new().bytes(seq).u64(n).into_vec()
    }

    fn collect(s: &Storage, seq: &[u8], position: u64, rev: bool, n: usize) -> Vec<u64> {
        let mut out = Vec::new();
        seek(&s.read().unwrap(), seq, position, rev, &mut |k| {
            out.push(crate::keys::trailing_u64(k));
            Ok(out.len() < n)
        })
        .unwrap();
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        #[test]
        fn seek_matches_a_sorted_vector(
            inserts in proptest::collection::vec(0u64..6000, 1..4000),
            removes in proptest::collection::vec(0u64..6000, 0..3000),
            position in 0u64..4000,
            rev: bool,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let s = Storage::open(dir.path()).unwrap();
            let seq = Key::new().str("t").str("c").str("").into_vec();
            let other = Key::new().str("t").str("c").str("x").into_vec();
            s.write(|w| {
                for n in &inserts {
                    insert(w, &seq, &key(&seq, *n))?;
                    insert(w, &other, &key(&other, *n))?;
                }
                for n in &removes {
                    remove(w, &seq, &key(&seq, *n))?;
                }
                Ok(())
            }).unwrap();
            let mut expected: Vec<u64> = inserts.clone();
            expected.sort_unstable();
            expected.dedup();
            expected.retain(|n| !removes.contains(n));
            if rev { expected.reverse(); }
            let r = s.read().unwrap();
            prop_assert_eq!(len(&r, &seq).unwrap(), expected.len() as u64);
            let got = collect(&s, &seq, position, rev, 50);
            let want: Vec<u64> = expected.iter().skip(position as usize).take(50).copied().collect();
            prop_assert_eq!(got, want);
            if let (Some(probe), false) = (expected.get(position as usize), rev) {
                prop_assert_eq!(rank(&r, &seq, &key(&seq, *probe)).unwrap(), position);
            }
        }
    }
}
