//! Resumable downloads (RFC 9110): a strong `ETag` names each representation (identity or
//! gzip, list or lines), `Range: bytes=...` asks for one part of it, and `If-Range` makes the
//! part conditional on the representation being the one the client started with. A `Range`
//! the server does not serve as a part — another unit, several ranges, a malformed one, or an
//! `If-Range` that does not match — is ignored, and the whole representation is sent; a range
//! wholly past the end is 416.
//!
//! The window of bytes asked for is cut from the stream that produces all of them.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::stream::{PIECE_BYTES, Producer};

/// One representation of a resource, as responses describe it.
#[derive(Debug, Clone)]
pub struct Representation {
    /// Its media type.
    pub content_type: &'static str,
    /// A strong entity tag, quoted.
    pub etag: String,
    /// Whether it is the gzip form.
    pub gzip: bool,
}

impl Representation {
    /// A representation whose tag is derived from what identifies its bytes: the content
    /// never changes once produced, so the same parts always make the same bytes.
    pub fn new(content_type: &'static str, gzip: bool, identity: &[&str]) -> Self {
        use sha2::{Digest, Sha256};
        let mut digest = Sha256::new();
        for part in identity
            .iter()
            .chain([&content_type, &if gzip { "gzip" } else { "" }])
        {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part.as_bytes());
        }
        Representation {
            content_type,
            etag: format!("\"{}\"", hex::encode(&digest.finalize()[..16])),
            gzip,
        }
    }

    /// The single byte range the request asks of this representation, if it is to be
    /// served as a part: `None` without a `Range`, or when RFC 9110 has the `Range`
    /// ignored.
    pub fn asked_range<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        let range = headers.get(header::RANGE)?.to_str().ok()?;
        let same = match headers.get(header::IF_RANGE) {
            None => true,
            // Only a strong tag matches, byte for byte; a date never does (there is no
            // Last-Modified to compare it with).
            Some(tag) => tag.as_bytes() == self.etag.as_bytes(),
        };
        same.then_some(range)
    }
}

/// The bytes `[start, end]` of an output, cut from the stream that produces all of it.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    start: u64,
    end: u64,
    at: u64,
    partial: bool,
}

/// What a `Range` asks of an output of known size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// Not a range this server serves: the whole output.
    Whole,
    /// The bytes `[start, end]`.
    Part(u64, u64),
    /// Nothing the output has.
    Unsatisfiable,
}

impl Window {
    /// Every byte of an output.
    pub fn everything() -> Window {
        Window {
            start: 0,
            end: u64::MAX - 1,
            at: 0,
            partial: false,
        }
    }

    /// The window a `Range` value (from [`Representation::asked_range`]) asks of an output
    /// of `total` bytes; all of it for `None`.
    pub fn requested(range: Option<&str>, total: u64) -> Result<Window, Unsatisfiable> {
        match range.map_or(Asked::Whole, |r| parse_range(r, total)) {
            Asked::Whole => Ok(Window {
                end: total.saturating_sub(1),
                ..Window::everything()
            }),
            Asked::Part(start, end) => Ok(Window {
                start,
                end,
                at: 0,
                partial: true,
            }),
            Asked::Unsatisfiable => Err(Unsatisfiable { total }),
        }
    }

    /// Whether the window is every byte, whatever the output: nothing to cut.
    fn covers_all(&self) -> bool {
        self.start == 0 && self.end == u64::MAX - 1
    }

    /// Appends the part of `piece` that falls in the window; answers whether more is wanted.
    pub fn take(&mut self, buf: &mut Vec<u8>, piece: &[u8]) -> bool {
        let from = self.at;
        let to = from + piece.len() as u64;
        self.at = to;
        if to > self.start && from <= self.end {
            let lo = self.start.saturating_sub(from) as usize;
            let hi = (self.end + 1).min(to).saturating_sub(from) as usize;
            buf.extend_from_slice(&piece[lo..hi]);
        }
        self.at <= self.end
    }

    /// The response carrying `body`, the window's bytes of `representation`: `200` with the
    /// whole, `206` with `Content-Range` for a part; `total` is the whole's size when known.
    pub fn respond(
        &self,
        body: Body,
        representation: &Representation,
        total: Option<u64>,
    ) -> Response {
        let mut response =
            ([(header::CONTENT_TYPE, representation.content_type)], body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Ok(tag) = HeaderValue::from_str(&representation.etag) {
            headers.insert(header::ETAG, tag);
        }
        if representation.gzip {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        if let Some(total) = total {
            let length = if total == 0 {
                0
            } else {
                self.end.min(total - 1) + 1 - self.start
            };
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            if self.partial
                && let Ok(v) =
                    HeaderValue::from_str(&format!("bytes {}-{}/{total}", self.start, self.end))
            {
                headers.insert(header::CONTENT_RANGE, v);
                *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            }
        }
        response
    }
}

/// A producer cut to a window of its output. It keeps no buffer between pieces, so a stalled
/// download holds no more than the pieces in flight.
pub struct Windowed<P> {
    inner: P,
    window: Window,
}

impl<P: Producer> Windowed<P> {
    /// The bytes of `window` of what `inner` produces.
    pub fn new(inner: P, window: Window) -> Self {
        Windowed { inner, window }
    }
}

impl<P: Producer> Producer for Windowed<P> {
    fn produce(&mut self, out: &mut Vec<u8>) -> std::io::Result<bool> {
        if self.window.covers_all() {
            return self.inner.produce(out);
        }
        let mut piece = Vec::with_capacity(PIECE_BYTES);
        loop {
            piece.clear();
            let more = self.inner.produce(&mut piece)?;
            if !self.window.take(out, &piece) || !more {
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

/// A `Range` that cannot be served from an output of `total` bytes: `416` with
/// `Content-Range: bytes */total`, as RFC 9110 asks.
#[derive(Debug, Clone, Copy)]
pub struct Unsatisfiable {
    total: u64,
}

impl IntoResponse for Unsatisfiable {
    fn into_response(self) -> Response {
        let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", self.total)) {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        response
    }
}

/// Reads `bytes=start-end`, `bytes=start-` or `bytes=-suffix` of an output of `total` bytes.
/// Another unit, several ranges or a malformed range ask for the whole (RFC 9110 lets a
/// server ignore what it does not serve; it must ignore units it does not know).
fn parse_range(value: &str, total: u64) -> Asked {
    let value = value.trim();
    let Some(spec) = value
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case("bytes="))
        .map(|_| &value[6..])
    else {
        return Asked::Whole;
    };
    if spec.contains(',') {
        return Asked::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Asked::Whole;
    };
    let number = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            Some(0) => Asked::Unsatisfiable,
            Some(_) if total == 0 => Asked::Unsatisfiable,
            Some(n) => Asked::Part(total - n.min(total), total - 1),
            None => Asked::Whole,
        },
        (start, "") => match number(start) {
            Some(start) if start >= total => Asked::Unsatisfiable,
            Some(start) => Asked::Part(start, total - 1),
            None => Asked::Whole,
        },
        (start, end) => match (number(start), number(end)) {
            (Some(start), Some(end)) if end < start => Asked::Whole,
            (Some(start), Some(_)) if start >= total => Asked::Unsatisfiable,
            (Some(start), Some(end)) => Asked::Part(start, end.min(total - 1)),
            _ => Asked::Whole,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100), Asked::Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Asked::Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Asked::Part(90, 99));
        assert_eq!(parse_range("Bytes=95-200", 100), Asked::Part(95, 99));
        assert_eq!(parse_range("bytes=100-", 100), Asked::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Asked::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 100), Asked::Whole);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Asked::Whole);
        assert_eq!(parse_range("items=0-1", 100), Asked::Whole);
        assert_eq!(parse_range("bytes=x-1", 100), Asked::Whole);
    }

    #[test]
    fn a_window_cuts_exactly_its_bytes() {
        let mut w = Window {
            start: 3,
            end: 7,
            at: 0,
            partial: true,
        };
        let mut buf = Vec::new();
        assert!(w.take(&mut buf, b"ab"));
        assert!(w.take(&mut buf, b"cdef"));
        assert!(!w.take(&mut buf, b"ghij"));
        assert_eq!(buf, b"defgh");
    }
}
