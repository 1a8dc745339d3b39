//! Ordered sequences that can seek to a position without walking the rows before it.
//!
//! A sequence is every key of one table (`Docs` or `Index`) that starts with one prefix: a
//! collection's documents in id order, or its index by one field. Beside the keys, `Tbl::Ranks`
//! partitions each sequence into contiguous chunks of at most [`MAX_CHUNK`] keys and stores each
//! chunk's count under its first key. Finding the key at position `p` sums the chunk counts
//! (about `n / 700` small entries) and then steps inside one chunk, so page `n` of a collection
//! costs about what page 1 does, whatever `n` is.
//!
//! Writers keep the chunk lists in a [`RankCache`] that outlives transactions, so maintaining
//! the counts costs no tree walks per key: only the changed counts are written at commit.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use super::{Reader, Tbl, Visitor, Writer, decode_u64};
use crate::Result;
use crate::keys::prefix_end;

/// A chunk splits in two when it grows past this many keys.
const MAX_CHUNK: u64 = 1024;
/// A chunk smaller than this merges into its predecessor when that stays within `MAX_CHUNK`.
const MIN_CHUNK: u64 = 256;

/// A sequence: the table its keys live in and the prefix they share.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seq<'a> {
    pub(crate) tbl: Tbl,
    pub(crate) prefix: &'a [u8],
}

impl Seq<'_> {
    /// Where the sequence's chunks live in `Tbl::Ranks`: tagged by table, because a documents
    /// prefix is itself a prefix of the index prefixes of the same collection.
    fn ranks_prefix(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + 1);
        key.push(self.tbl as u8);
        key.extend_from_slice(self.prefix);
        key
    }

    fn chunk_key(&self, start: &[u8]) -> Vec<u8> {
        let mut key = vec![self.tbl as u8];
        key.extend_from_slice(start);
        key
    }
}

/// The prefix under which a sequence's chunk counts live in `Tbl::Ranks`.
pub(crate) fn chunks_prefix(seq: Seq<'_>) -> Vec<u8> {
    seq.ranks_prefix()
}

#[derive(Debug, Clone)]
struct Chunk {
    /// The sequence key the chunk starts at (the sequence prefix itself for the first chunk).
    start: Vec<u8>,
    count: u64,
}

fn load_chunks(r: &impl Reader, seq: Seq<'_>) -> Result<Vec<Chunk>> {
    let prefix = seq.ranks_prefix();
    let end = prefix_end(&prefix);
    let mut out = Vec::new();
    r.scan(
        Tbl::Ranks,
        Bound::Included(&prefix),
        Bound::Excluded(&end),
        false,
        &mut |k, v| {
            out.push(Chunk {
                start: k[1..].to_vec(),
                count: decode_u64(v),
            });
            Ok(true)
        },
    )?;
    Ok(out)
}

/// The chunk lists of the sequences writers touched, kept between transactions. It must only
/// be used inside write transactions (which are serialized), and cleared when one fails.
#[derive(Debug, Default)]
pub(crate) struct RankCache {
    seqs: HashMap<(Tbl, Vec<u8>), Vec<Chunk>>,
}

impl RankCache {
    /// Forgets everything, after a failed transaction left the lists ahead of the database.
    pub(crate) fn clear(&mut self) {
        self.seqs.clear();
    }

    /// Bookkeeping for one write transaction.
    pub(crate) fn begin(&mut self) -> RankWriter<'_> {
        RankWriter {
            cache: self,
            dirty: BTreeSet::new(),
            dropped: Vec::new(),
        }
    }
}

/// Adds and removes sequence keys within one write transaction; [`RankWriter::flush`] writes
/// the changed counts before commit.
pub(crate) struct RankWriter<'c> {
    cache: &'c mut RankCache,
    dirty: BTreeSet<(Tbl, Vec<u8>, Vec<u8>)>,
    dropped: Vec<Vec<u8>>,
}

impl RankWriter<'_> {
    fn chunks(&mut self, w: &impl Reader, seq: Seq<'_>) -> Result<&mut Vec<Chunk>> {
        let key = (seq.tbl, seq.prefix.to_vec());
        if !self.cache.seqs.contains_key(&key) {
            let chunks = load_chunks(w, seq)?;
            self.cache.seqs.insert(key.clone(), chunks);
        }
        Ok(self
            .cache
            .seqs
            .get_mut(&key)
            .unwrap_or_else(|| unreachable!("inserted above")))
    }

    /// Writes `key` → `value` into the sequence, answering the value it replaced; only a new
    /// key changes the counts.
    pub(crate) fn put(
        &mut self,
        w: &mut impl Writer,
        seq: Seq<'_>,
        key: &[u8],
        value: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        let old = w.replace(seq.tbl, key, value)?;
        if old.is_some() {
            return Ok(old);
        }
        let chunks = self.chunks(w, seq)?;
        if chunks.is_empty() {
            chunks.push(Chunk {
                start: seq.prefix.to_vec(),
                count: 0,
            });
        }
        let i = chunks
            .partition_point(|c| c.start.as_slice() <= key)
            .saturating_sub(1);
        chunks[i].count += 1;
        let (start, count) = (chunks[i].start.clone(), chunks[i].count);
        if count <= MAX_CHUNK {
            self.dirty.insert((seq.tbl, seq.prefix.to_vec(), start));
            return Ok(None);
        }
        let half = count / 2;
        let mut middle = None;
        let mut seen = 0;
        let end = prefix_end(seq.prefix);
        w.scan(
            seq.tbl,
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
        let middle =
            middle.ok_or_else(|| crate::Error::Corrupt("rank chunk overcounted".into()))?;
        let chunks = self.chunks(w, seq)?;
        chunks[i].count = half;
        chunks.insert(
            i + 1,
            Chunk {
                start: middle.clone(),
                count: count - half,
            },
        );
        self.dirty.insert((seq.tbl, seq.prefix.to_vec(), start));
        self.dirty.insert((seq.tbl, seq.prefix.to_vec(), middle));
        Ok(None)
    }

    /// Removes `key` from the sequence, answering its value if it was there.
    pub(crate) fn remove(
        &mut self,
        w: &mut impl Writer,
        seq: Seq<'_>,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        let Some(old) = w.remove(seq.tbl, key)? else {
            return Ok(None);
        };
        let chunks = self.chunks(w, seq)?;
        let i = chunks
            .partition_point(|c| c.start.as_slice() <= key)
            .checked_sub(1)
            .ok_or_else(|| crate::Error::Corrupt("sequence key outside any rank chunk".into()))?;
        chunks[i].count = chunks[i].count.saturating_sub(1);
        let merge = i > 0
            && chunks[i].count < MIN_CHUNK
            && chunks[i - 1].count + chunks[i].count <= MAX_CHUNK;
        if merge {
            let gone = chunks.remove(i);
            chunks[i - 1].count += gone.count;
            let previous = chunks[i - 1].start.clone();
            self.dirty
                .remove(&(seq.tbl, seq.prefix.to_vec(), gone.start.clone()));
            self.dropped.push(seq.chunk_key(&gone.start));
            self.dirty.insert((seq.tbl, seq.prefix.to_vec(), previous));
        } else {
            let start = chunks[i].start.clone();
            self.dirty.insert((seq.tbl, seq.prefix.to_vec(), start));
        }
        Ok(Some(old))
    }

    /// Writes the counts this transaction changed.
    pub(crate) fn flush(self, w: &mut impl Writer) -> Result<()> {
        for key in &self.dropped {
            w.remove(Tbl::Ranks, key)?;
        }
        for (tbl, prefix, start) in &self.dirty {
            let seq = Seq { tbl: *tbl, prefix };
            let count = self
                .cache
                .seqs
                .get(&(*tbl, prefix.clone()))
                .and_then(|chunks| {
                    chunks
                        .binary_search_by(|c| c.start.as_slice().cmp(start))
                        .ok()
                        .map(|i| chunks[i].count)
                })
                .ok_or_else(|| crate::Error::Corrupt("dirty rank chunk vanished".into()))?;
            w.put(Tbl::Ranks, &seq.chunk_key(start), &count.to_be_bytes())?;
        }
        Ok(())
    }
}

/// How many keys the sequence holds.
pub(crate) fn len(r: &impl Reader, seq: Seq<'_>) -> Result<u64> {
    Ok(load_chunks(r, seq)?.iter().map(|c| c.count).sum())
}

/// Visits the sequence's (key, value) pairs from `position` on (counted from the end when
/// `rev`), until `visit` answers `false`. Answers the sequence's length, which the seek
/// computes anyway.
///
/// Inside the chunk that holds `position`, the first key is found by stepping from whichever
/// end of the chunk is nearer, so a seek walks at most half a chunk.
pub(crate) fn seek(
    r: &impl Reader,
    seq: Seq<'_>,
    position: u64,
    rev: bool,
    visit: &mut Visitor<'_>,
) -> Result<u64> {
    let chunks = load_chunks(r, seq)?;
    let total = chunks.iter().map(|c| c.count).sum();
    if position >= total {
        return Ok(total);
    }
    let forward_position = if rev { total - 1 - position } else { position };
    let mut before = 0;
    let mut i = 0;
    while before + chunks[i].count <= forward_position {
        before += chunks[i].count;
        i += 1;
    }
    let end = prefix_end(seq.prefix);
    let lower = chunks[i].start.as_slice();
    let upper = chunks
        .get(i + 1)
        .map_or(end.as_slice(), |c| c.start.as_slice());
    let offset = forward_position - before;
    let from_upper = offset > chunks[i].count / 2;
    let mut steps = if from_upper {
        chunks[i].count - 1 - offset
    } else {
        offset
    };
    let mut first = None;
    r.scan(
        seq.tbl,
        Bound::Included(lower),
        Bound::Excluded(upper),
        from_upper,
        &mut |k, _| {
            if steps == 0 {
                first = Some(k.to_vec());
                return Ok(false);
            }
            steps -= 1;
            Ok(true)
        },
    )?;
    let first = first.ok_or_else(|| crate::Error::Corrupt("rank chunk overcounted".into()))?;
    if rev {
        r.scan(
            seq.tbl,
            Bound::Included(seq.prefix),
            Bound::Included(&first),
            true,
            visit,
        )?;
    } else {
        r.scan(
            seq.tbl,
            Bound::Included(&first),
            Bound::Excluded(&end),
            false,
            visit,
        )?;
    }
    Ok(total)
}

/// How many keys of the sequence sort before `key`.
pub(crate) fn rank(r: &impl Reader, seq: Seq<'_>, key: &[u8]) -> Result<u64> {
    let chunks = load_chunks(r, seq)?;
    let containing = chunks
        .partition_point(|c| c.start.as_slice() <= key)
        .saturating_sub(1);
    let before: u64 = chunks[..containing].iter().map(|c| c.count).sum();
    let start = chunks
        .get(containing)
        .map_or(seq.prefix, |c| c.start.as_slice());
    let mut inside = 0;
    r.scan(
        seq.tbl,
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
    use crate::engine::Durability;
    use crate::keys::Key;
    use crate::redb_engine::RedbEngine;
    use proptest::prelude::*;

    fn key(seq: &[u8], n: u64) -> Vec<u8> {
        Key::new().bytes(seq).u64(n).into_vec()
    }

    fn collect(s: &RedbEngine, seq: Seq<'_>, position: u64, rev: bool, n: usize) -> Vec<u64> {
        let mut out = Vec::new();
        seek(
            &s.read_tables().unwrap(),
            seq,
            position,
            rev,
            &mut |k, _| {
                out.push(crate::keys::trailing_u64(k));
                Ok(out.len() < n)
            },
        )
        .unwrap();
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        #[test]
        fn seek_matches_a_sorted_vector(
            inserts in proptest::collection::vec(0u64..6000, 1..4000),
            removes in proptest::collection::vec(0u64..6000, 0..3000),
            commits in 1usize..4,
            position in 0u64..4000,
            rev: bool,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let s = RedbEngine::open(dir.path(), &crate::Schemas::default()).unwrap();
            let prefix = Key::new().str("t").str("c").into_vec();
            let other = Key::new().str("t").str("c").str("x").into_vec();
            let seq = Seq { tbl: Tbl::Docs, prefix: &prefix };
            let index = Seq { tbl: Tbl::Index, prefix: &other };
            for part in 0..commits {
                s.write_tables(Durability::Immediate, |txn| {
                    for n in inserts.iter().skip(part).step_by(commits) {
                        txn.write.ranks.put(&mut txn.tables, seq, &key(&prefix, *n), b"doc")?;
                        txn.write.ranks.put(&mut txn.tables, index, &key(&other, *n), b"")?;
                    }
                    Ok(())
                }).unwrap();
            }
            s.write_tables(Durability::Immediate, |txn| {
                for n in &removes {
                    txn.write.ranks.remove(&mut txn.tables, seq, &key(&prefix, *n))?;
                }
                Ok(())
            }).unwrap();
            let mut expected: Vec<u64> = inserts.clone();
            expected.sort_unstable();
            expected.dedup();
            expected.retain(|n| !removes.contains(n));
            if rev { expected.reverse(); }
            let r = s.read_tables().unwrap();
            prop_assert_eq!(len(&r, seq).unwrap(), expected.len() as u64);
            let got = collect(&s, seq, position, rev, 50);
            let want: Vec<u64> = expected.iter().skip(position as usize).take(50).copied().collect();
            prop_assert_eq!(got, want);
            if let (Some(probe), false) = (expected.get(position as usize), rev) {
                prop_assert_eq!(rank(&r, seq, &key(&prefix, *probe)).unwrap(), position);
            }
        }
    }
}
