//! The effective configuration as TOML with its secrets hidden, for `bulkhost config check`:
//! what an operator may paste into a ticket.

use super::Config;

/// What a hidden value reads as.
const HIDDEN: &str = "[redacted]";

/// `config` as TOML, with the webhook secret, the users' passwords and password hashes, and
/// the passwords in the database and mail relay URLs replaced by `[redacted]`.
pub fn redacted(config: &Config) -> String {
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
        .unwrap_or_else(|e| unreachable!("a configuration renders as TOML: {e}"))
}

/// A URL with the password of its user info hidden: `scheme://user:[redacted]@host/…`; a
/// libpq key/value string with its `password=` hidden.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url
            .split_whitespace()
            .map(|pair| match pair.split_once('=') {
                Some(("password", _)) => format!("password={HIDDEN}"),
                _ => pair.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:{HIDDEN}{}", &rest[at..]),
        None => url.to_string(),
    }
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
            without_password("host=db password=s3cr3t user=app"),
            "host=db password=[redacted] user=app"
        );
    }
}
