//! Export results compressed once, when they are stored: beside its records, each chunk keeps
//! one raw deflate piece per download layout, so a gzip download streams stored bytes and
//! never compresses again.
//!
//! A piece comes from a reset compressor and ends in a sync flush: it refers to nothing before
//! it and ends on a byte boundary, in a block that is not the last. Pieces laid end to end,
//! after a gzip header and before an empty final block, are therefore one valid deflate stream
//! (pigz lays out its output the same way), and each piece's CRC-32 and length combine into
//! the trailer without reading its plain bytes again. The body is one gzip member, never
//! several concatenated: browsers, curl and Python's HTTP clients read only the first.

use flate2::{Compress, Compression, FlushCompress};

use crate::{Error, Result};

/// The deflate level of stored pieces, chosen by measurement on 1,000,000 JSON records of
/// about 208 bytes in chunks of 1,000 (zlib-rs): level 1 made 68.5 MB at 418 MB/s, level 2
/// 47.4 MB at 262 MB/s, level 4 37.1 MB at 166 MB/s, against `gzip -1`'s 50.4 MB of the
/// whole. Level 2 is the fastest within a tenth of `gzip -1`, and every record passes through
/// it twice (once per layout) on the worker that generates the data set.
const LEVEL: u32 = 2;

/// How a data set's records are laid out in a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One JSON list, `[r1,r2,...]`: Winfra XXL's form.
    List,
    /// JSON lines, `r1\nr2\n...`.
    Lines,
}

impl Layout {
    /// Every layout, in the order stored pieces are kept.
    pub const ALL: [Layout; 2] = [Layout::List, Layout::Lines];

    /// The bytes before the first record.
    pub fn open(self) -> &'static [u8] {
        match self {
            Layout::List => b"[",
            Layout::Lines => b"",
        }
    }

    /// The bytes between two records.
    pub fn separator(self) -> &'static [u8] {
        match self {
            Layout::List => b",",
            Layout::Lines => b"",
        }
    }

    /// The bytes after each record.
    pub fn terminator(self) -> &'static [u8] {
        match self {
            Layout::List => b"",
            Layout::Lines => b"\n",
        }
    }

    /// The bytes after the last record.
    pub fn close(self) -> &'static [u8] {
        match self {
            Layout::List => b"]",
            Layout::Lines => b"",
        }
    }

    /// The exact size of `records` records totalling `bytes` bytes in this layout.
    pub fn size(self, records: u64, bytes: u64) -> u64 {
        let len = |b: &[u8]| b.len() as u64;
        len(self.open())
            + bytes
            + records * len(self.terminator())
            + records.saturating_sub(1) * len(self.separator())
            + len(self.close())
    }

    /// Appends `records` as one stretch of this layout: each followed by the terminator, the
    /// separator between two of them, nothing before the first or after the last.
    pub fn join<'r>(self, records: impl IntoIterator<Item = &'r str>, out: &mut Vec<u8>) {
        for (i, record) in records.into_iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(self.separator());
            }
            out.extend_from_slice(record.as_bytes());
            out.extend_from_slice(self.terminator());
        }
    }
}

/// Plain bytes as one raw deflate piece, with what the gzip trailer needs of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// How many records it holds.
    pub records: u32,
    /// The length of its plain bytes.
    pub plain_len: u32,
    /// The CRC-32 of its plain bytes.
    pub crc: u32,
    /// The raw deflate bytes: no final block, ending on a byte boundary.
    pub deflate: Vec<u8>,
}

thread_local! {
    /// A compressor per thread, reset for each piece: a fresh one allocates and clears some
    /// 300 KiB of tables, a thousand times per million records.
    static COMPRESSOR: std::cell::RefCell<Compress> =
        std::cell::RefCell::new(Compress::new(Compression::new(LEVEL), false));
}

/// The bytes of a stored piece's header: records, plain length, CRC-32.
const HEADER_BYTES: usize = 12;

impl Piece {
    /// `plain`, which holds `records` records, compressed.
    pub fn compress(plain: &[u8], records: u32) -> Piece {
        let mut deflate = Vec::with_capacity(plain.len() / 3 + 64);
        COMPRESSOR.with_borrow_mut(|compressor| {
            compressor.reset();
            loop {
                let consumed = compressor.total_in() as usize;
                compressor
                    .compress_vec(&plain[consumed..], &mut deflate, FlushCompress::Sync)
                    .expect("deflate of memory into memory cannot fail");
                // Done once all is in and the flush found room to end: zlib's contract.
                if compressor.total_in() as usize == plain.len()
                    && deflate.len() < deflate.capacity()
                {
                    break;
                }
                deflate.reserve(deflate.capacity().max(64));
            }
        });
        Piece {
            records,
            plain_len: plain.len() as u32,
            crc: crc32fast::hash(plain),
            deflate,
        }
    }

    /// `records` laid out as one stretch of `layout`, compressed.
    pub fn of_records(records: &[String], layout: Layout) -> Piece {
        let mut plain = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum());
        layout.join(records.iter().map(String::as_str), &mut plain);
        Piece::compress(&plain, records.len() as u32)
    }

    /// Its stored form: a header, then the deflate bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES + self.deflate.len());
        for n in [self.records, self.plain_len, self.crc] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out.extend_from_slice(&self.deflate);
        out
    }

    /// A piece from its stored form.
    pub(crate) fn decode(mut raw: Vec<u8>) -> Result<Piece> {
        let header = raw
            .get(..HEADER_BYTES)
            .ok_or_else(|| Error::Corrupt("stored deflate piece is truncated".into()))?;
        let n =
            |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let (records, plain_len, crc) = (n(0), n(4), n(8));
        raw.drain(..HEADER_BYTES);
        Ok(Piece {
            records,
            plain_len,
            crc,
            deflate: raw,
        })
    }
}

/// One gzip member assembled from pieces, in order: the header before the first, the final
/// block and trailer at the end.
#[derive(Debug, Default)]
pub struct GzipMember {
    crc: crc32fast::Hasher,
    plain_len: u64,
    started: bool,
}

/// A gzip header without a name or a time, so that every request gets the same bytes.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// An empty fixed-Huffman block marked final: the end of the deflate stream.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

impl GzipMember {
    /// The bytes a member adds to its pieces: header, final block, trailer.
    pub const FRAME_BYTES: u64 = (GZIP_HEADER.len() + FINAL_BLOCK.len() + 8) as u64;

    /// Appends `piece` (after the header, for the first).
    pub fn push(&mut self, piece: &Piece, out: &mut Vec<u8>) {
        self.start(out);
        out.extend_from_slice(&piece.deflate);
        self.crc.combine(&crc32fast::Hasher::new_with_initial_len(
            piece.crc,
            u64::from(piece.plain_len),
        ));
        self.plain_len += u64::from(piece.plain_len);
    }

    /// Appends the end of the member: the final block, the CRC-32 and the length.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        self.start(out);
        out.extend_from_slice(&FINAL_BLOCK);
        out.extend_from_slice(&self.crc.finalize().to_le_bytes());
        out.extend_from_slice(&(self.plain_len as u32).to_le_bytes());
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if !std::mem::replace(&mut self.started, true) {
            out.extend_from_slice(&GZIP_HEADER);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn records(range: std::ops::Range<u32>) -> Vec<String> {
        range
            .map(|i| format!("{{\"id\":{i},\"note\":\"stock count shelf {}\"}}", i % 7))
            .collect()
    }

    fn gunzip(body: &[u8]) -> Vec<u8> {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut plain)
            .expect("a valid gzip member");
        plain
    }

    #[test]
    fn pieces_laid_end_to_end_are_one_gzip_member_of_the_layout() {
        let (a, b) = (records(0..1000), records(1000..1500));
        for layout in Layout::ALL {
            let mut body = Vec::new();
            let mut member = GzipMember::default();
            member.push(&Piece::compress(layout.open(), 0), &mut body);
            member.push(&Piece::of_records(&a, layout), &mut body);
            member.push(&Piece::compress(layout.separator(), 0), &mut body);
            member.push(&Piece::of_records(&b, layout), &mut body);
            member.push(&Piece::compress(layout.close(), 0), &mut body);
            member.finish(&mut body);

            let all: Vec<&str> = a.iter().chain(&b).map(String::as_str).collect();
            let mut expected = layout.open().to_vec();
            layout.join(all, &mut expected);
            expected.extend_from_slice(layout.close());
            let plain = gunzip(&body);
            assert!(
                plain == expected,
                "{layout:?}: the same bytes as laid out plainly"
            );
            assert_eq!(
                layout.size(1500, a.iter().chain(&b).map(|r| r.len() as u64).sum()),
                expected.len() as u64
            );
        }
    }

    #[test]
    fn an_empty_member_is_valid() {
        let mut body = Vec::new();
        GzipMember::default().finish(&mut body);
        assert_eq!(body.len() as u64, GzipMember::FRAME_BYTES);
        assert!(gunzip(&body).is_empty());
    }

    #[test]
    fn a_piece_survives_being_stored() {
        let piece = Piece::of_records(&records(0..10), Layout::Lines);
        assert_eq!(Piece::decode(piece.encode()).unwrap(), piece);
        assert!(Piece::decode(vec![0; 5]).is_err());
    }
}
