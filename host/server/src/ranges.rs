//! Resumable downloads: `Range: bytes=...` (RFC 9110) over a body whose exact size is known
//! before it is produced, cut from the stream that produces all of it.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The bytes `[start, end]` of an output, cut from the stream that produces all of it.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    start: u64,
    end: u64,
    at: u64,
    partial: bool,
}

impl Window {
    /// Every byte of an output whose size is not known beforehand: a window that never stops
    /// a stream early and answers no range.
    pub fn everything() -> Window {
        Window {
            start: 0,
            end: u64::MAX - 1,
            at: 0,
            partial: false,
        }
    }

    /// The window the request's `Range` header asks of an output of `total` bytes: all of it
    /// without the header.
    pub fn requested(headers: &HeaderMap, total: u64) -> Result<Window, Unsatisfiable> {
        let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
            return Ok(Window {
                start: 0,
                end: total.saturating_sub(1),
                at: 0,
                partial: false,
            });
        };
        match parse_range(value, total) {
            Some((start, end)) => Ok(Window {
                start,
                end,
                at: 0,
                partial: true,
            }),
            None => Err(Unsatisfiable { total }),
        }
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

    /// The response carrying `body`, the window's bytes of an output of `total` bytes:
    /// `200` with the whole, `206` with `Content-Range` for a part.
    pub fn respond(&self, body: Body, content_type: &'static str, total: u64) -> Response {
        let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        let length = if total == 0 {
            0
        } else {
            self.end + 1 - self.start
        };
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        if self.partial {
            if let Ok(v) =
                HeaderValue::from_str(&format!("bytes {}-{}/{total}", self.start, self.end))
            {
                headers.insert(header::CONTENT_RANGE, v);
            }
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        }
        response
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

/// Parses a single `bytes=start-end`, `bytes=start-` or `bytes=-suffix` range of `total`.
fn parse_range(value: &str, total: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || total == 0 {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (start, end) = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            (total.saturating_sub(n), total - 1)
        }
        (start, "") => (start.parse().ok()?, total - 1),
        (start, end) => (start.parse().ok()?, end.parse::<u64>().ok()?.min(total - 1)),
    };
    (start <= end && start < total).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=95-200", 100), Some((95, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
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
