//! The gzip form of a produced body, made so that every request gets the same bytes: a fixed
//! header (no time, no name), one compression level, and input fed in the producer's own
//! pieces. A download resumed with `Range` therefore continues exactly the bytes it stopped in,
//! and one `ETag` names them.

use std::io::Write;

use axum::http::{HeaderMap, header};
use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};

use crate::stream::{PIECE_BYTES, Producer};

/// The compression level: deflate's fastest, since these bodies are large and made on demand.
const LEVEL: u32 = 1;

/// Whether the request's `Accept-Encoding` takes gzip (RFC 9110: `gzip`, `x-gzip` or `*`,
/// unless with `q=0`).
pub fn accepted(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default().to_ascii_lowercase();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            matches!(name.as_str(), "gzip" | "x-gzip" | "*") && !refused
        })
}

/// `inner`'s bytes, gzip-compressed.
pub struct Gzip<P> {
    inner: P,
    encoder: Option<GzEncoder<Vec<u8>>>,
}

impl<P: Producer> Gzip<P> {
    /// Compresses what `inner` produces.
    pub fn new(inner: P) -> Self {
        Gzip {
            inner,
            encoder: Some(
                GzBuilder::new()
                    .mtime(0)
                    .write(Vec::new(), Compression::new(LEVEL)),
            ),
        }
    }
}

impl<P: Producer> Producer for Gzip<P> {
    fn produce(&mut self, out: &mut Vec<u8>) -> std::io::Result<bool> {
        let Some(encoder) = self.encoder.as_mut() else {
            return Ok(false);
        };
        let mut plain = Vec::with_capacity(PIECE_BYTES);
        loop {
            plain.clear();
            let more = self.inner.produce(&mut plain)?;
            encoder.write_all(&plain)?;
            out.append(encoder.get_mut());
            if !more {
                if let Some(encoder) = self.encoder.take() {
                    out.extend(encoder.finish()?);
                }
                return Ok(false);
            }
            if !out.is_empty() {
                return Ok(true);
            }
        }
    }

    fn park(&mut self) {
        self.inner.park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, value.parse().unwrap());
        h
    }

    #[test]
    fn gzip_is_taken_unless_refused() {
        assert!(accepted(&headers("gzip, deflate")));
        assert!(accepted(&headers("br;q=1.0, GZIP;q=0.5")));
        assert!(accepted(&headers("*")));
        assert!(!accepted(&headers("gzip;q=0")));
        assert!(!accepted(&headers("identity")));
        assert!(!accepted(&HeaderMap::new()));
    }
}
