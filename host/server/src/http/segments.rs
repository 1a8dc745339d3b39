//! Request paths split into segments before percent-decoding, so an encoded `/` inside a
//! `code:` (composite keys are joined by `/`, as ABRA codes such as `VF1-0001/2012` are) stays
//! part of its segment.

use axum::http::Uri;
use percent_encoding::percent_decode_str;

/// The non-empty, decoded segments of `uri`'s path after `prefix`.
pub fn segments(uri: &Uri, prefix: &str) -> Vec<String> {
    uri.path()
        .strip_prefix(prefix)
        .unwrap_or_default()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_slashes_stay_inside_their_segment() {
        let uri: Uri = "/c/acme/docs/code:VF1%2F2012.json".parse().unwrap();
        assert_eq!(
            segments(&uri, "/c/"),
            ["acme", "docs", "code:VF1/2012.json"]
        );
    }
}
