//! Path templates as the route table and plugins write them: `/api/v1/{collection}/{id}/`,
//! `/c/{firma}/{collection}.json`. A `{name}` segment matches any one segment, and one with a
//! literal after it (`{collection}.json`) any segment that ends so, the rest being the value.

use percent_encoding::percent_decode_str;

/// The name of a `{name}` segment of a template and the literal after it.
fn param_of(segment: &str) -> Option<(&str, &str)> {
    segment.strip_prefix('{')?.split_once('}')
}

/// The names of a template's `{name}` segments, in order.
pub fn template_params(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('/')
        .filter_map(|segment| Some(param_of(segment)?.0))
}

/// Walks `path` (no query string) against `template` segment for segment, empty segments (a
/// trailing `/`) ignored on both sides, telling `fill` each parameter's name and raw value;
/// answers whether the path matches.
fn walk<'a>(template: &'a str, path: &'a str, mut fill: impl FnMut(&'a str, &'a str)) -> bool {
    let segments = |s: &'a str| s.split('/').filter(|s| !s.is_empty());
    if segments(template).count() != segments(path).count() {
        return false;
    }
    segments(template)
        .zip(segments(path))
        .all(|(wanted, given)| match param_of(wanted) {
            Some((name, literal)) => match given.strip_suffix(literal) {
                Some(value) if !value.is_empty() => {
                    fill(name, value);
                    true
                }
                _ => false,
            },
            None => wanted == given,
        })
}

/// The `{name}` values of `path`, percent-decoded, when it matches `template`.
pub fn match_template(template: &str, path: &str) -> Option<Vec<(String, String)>> {
    let mut params = Vec::new();
    let matched = walk(template, path, |name, value| {
        let value = percent_decode_str(value).decode_utf8_lossy().into_owned();
        params.push((name.to_string(), value));
    });
    matched.then_some(params)
}

/// How many `{name}` segments of `template` `path` fills, when it matches: what
/// [`match_template`] answers without decoding the values, for a lookup on every request.
pub fn template_fit(template: &str, path: &str) -> Option<usize> {
    let mut filled = 0;
    walk(template, path, |_, _| filled += 1).then_some(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_segment_for_segment() {
        assert_eq!(
            match_template("/v1/products/{id}", "/v1/products/P%2F1"),
            Some(vec![("id".into(), "P/1".into())])
        );
        assert_eq!(
            match_template("/api/v1/{collection}/", "/api/v1/shops"),
            Some(vec![("collection".into(), "shops".into())])
        );
        assert_eq!(match_template("/v1/products/{id}", "/v1/products"), None);
        assert_eq!(match_template("/v1/products", "/v1/orders"), None);
        assert_eq!(
            template_fit("/api/v1/{collection}/{id}/", "/api/v1/shops/7/"),
            Some(2)
        );
        assert_eq!(
            template_fit("/api/v1/{collection}/", "/api/v1/shops/7/"),
            None
        );
    }

    #[test]
    fn a_parameter_may_end_in_a_literal() {
        assert_eq!(
            match_template("/c/{firma}/{collection}.json", "/c/acme/shops.json"),
            Some(vec![
                ("firma".into(), "acme".into()),
                ("collection".into(), "shops".into())
            ])
        );
        assert_eq!(
            template_fit("/c/{firma}/{collection}.json", "/c/acme/shops.xml"),
            None
        );
        assert_eq!(
            template_fit("/c/{firma}/{collection}.json", "/c/acme/.json"),
            None
        );
        assert_eq!(
            template_params("/c/{firma}/{collection}/{id}.json").collect::<Vec<_>>(),
            ["firma", "collection", "id"]
        );
    }
}
