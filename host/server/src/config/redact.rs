//! The effective configuration as TOML with its secrets hidden, for `bulkhost config check`:
//! what an operator may paste into a ticket.

use super::Config;

/// What a hidden value reads as.
const HIDDEN: &str = "[redacted]";

/// `config` as TOML, with the webhook secret, the users' passwords and password hashes, and
/// the passwords in the database and mail relay URLs replaced by `[redacted]`. Fails only on a
/// path TOML cannot carry (one that is not UTF-8).
pub fn redacted(config: &Config) -> Result<String, toml::ser::Error> {
    let mut config = config.clone();
    if config.webhooks.secret.is_some() {
        config.webhooks.secret = Some(HIDDEN.into());
    }
    for url in [&mut config.database.url, &mut config.mail.relay]
        .into_iter()
        .flatten()
    {
        *url = without_password(url);
    }
    for user in config.tenants.iter_mut().flat_map(|t| t.users.iter_mut()) {
        for secret in [&mut user.password_hash, &mut user.password]
            .into_iter()
            .flatten()
        {
            *secret = HIDDEN.into();
        }
    }
    toml::to_string(&config)
}

/// A connection URL with its passwords hidden: the user info's (`scheme://user:[redacted]@…`)
/// and any query parameter naming a password (`?password=[redacted]`). A libpq key/value
/// string that names a password is hidden whole: its quoting rules are not worth the risk.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return if url.to_ascii_lowercase().contains("password") {
            HIDDEN.to_string()
        } else {
            url.to_string()
        };
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let authority_end = rest.find(['/', '#']).unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{user}:{HIDDEN}{}", &rest[at..]),
            None => rest.to_string(),
        },
        None => rest.to_string(),
    };
    let query = query.map(|query| {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.to_ascii_lowercase().contains("password") => {
                    format!("{key}={HIDDEN}")
                }
                _ => pair.to_string(),
            })
            .collect();
        format!("?{}", pairs.join("&"))
    });
    format!("{scheme}://{rest}{}", query.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_hidden_and_the_rest_kept() {
        assert_eq!(
            without_password("postgres://app:s3cr3t@db:5432/bulk?sslmode=require"),
            "postgres://app:[redacted]@db:5432/bulk?sslmode=require"
        );
        assert_eq!(
            without_password("smtps://mailer:p@ss@relay:465"),
            "smtps://mailer:[redacted]@relay:465"
        );
        assert_eq!(without_password("postgres://db/bulk"), "postgres://db/bulk");
        assert_eq!(
            without_password("postgres://app@db/bulk?sslmode=require&password=s3cr3t"),
            "postgres://app@db/bulk?sslmode=require&password=[redacted]"
        );
        assert_eq!(
            without_password("host=db password = 'a b' user=app"),
            "[redacted]"
        );
        assert_eq!(without_password("host=db user=app"), "host=db user=app");
    }
}
