//! Delivering what the outbox owes: the final `EstadoGenerarXXL` of an export request, posted
//! to the URL the request named; a finished batch's status, posted to its `callbackUrl` with
//! `?uid=<uuid>`, and mailed to its `email` when the operator configured a relay. Webhook
//! calls are signed per the Standard Webhooks spec (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`), retried with doubling
//! delays, and never sent to loopback, private, link-local or other non-public addresses
//! unless the operator allows it. The address is checked after resolution and the connection
//! pinned to the checked address, so a DNS answer cannot swap it afterwards.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bulkhost_core::{Delivery, Notice};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::bulk_export::estado_generar_xxl;
use crate::mail::Mailer;
use crate::state::{AppState, Ticks, blocking};

/// How long one delivery attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How often the outbox is read.
const POLL: Duration = Duration::from_millis(250);
/// The file that keeps a generated secret in the data directory.
const SECRET_FILE: &str = "webhook-secret";

/// Signs webhook payloads with the operator's secret.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer { .. }")
    }
}

impl Signer {
    /// A signer for a `whsec_<base64>` secret.
    pub fn from_secret(secret: &str) -> anyhow::Result<Self> {
        let encoded = secret
            .trim()
            .strip_prefix("whsec_")
            .unwrap_or(secret.trim());
        let key = STANDARD
            .decode(encoded)
            .context("the webhook secret must be `whsec_` followed by base64")?;
        anyhow::ensure!(
            key.len() >= 24,
            "the webhook secret must hold at least 24 bytes"
        );
        Ok(Signer { key })
    }

    /// The configured secret, or the one kept in `data`, created on first start.
    pub fn load_or_create(configured: Option<&str>, data: &Path) -> anyhow::Result<Self> {
        if let Some(secret) = configured {
            return Self::from_secret(secret);
        }
        let path = data.join(SECRET_FILE);
        if let Ok(secret) = std::fs::read_to_string(&path) {
            return Self::from_secret(&secret);
        }
        let secret = format!("whsec_{}", STANDARD.encode(rand::random::<[u8; 32]>()));
        std::fs::write(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
        tracing::info!(path = %path.display(), "generated the webhook signing secret");
        Self::from_secret(&secret)
    }

    /// The `webhook-signature` header value for a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
            .unwrap_or_else(|e| unreachable!("HMAC takes keys of any length: {e}"));
        mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// Whether an address is one a webhook may reach without the operator's leave.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
                    || first == 0x2001 && v6.segments()[1] == 0x0db8)
            }
        },
    }
}

/// The address to connect to for `url`, refused when it is not public (unless allowed).
async fn target(url: &reqwest::Url, allow_private: bool) -> Result<SocketAddr, String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("unsupported scheme `{}`", url.scheme()));
    }
    let host = url.host_str().ok_or("the URL names no host")?;
    let port = url.port_or_known_default().ok_or("the URL names no port")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    addrs
        .iter()
        .copied()
        .find(|a| allow_private || is_public(a.ip()))
        .ok_or_else(|| {
            format!("{host} resolves only to non-public addresses, which webhooks may not reach")
        })
}

/// What delivers the outbox: the webhook signer and, when the operator configured a relay,
/// the mailer.
#[derive(Debug)]
pub struct Notifier {
    /// Signs webhook calls.
    pub signer: Signer,
    /// Sends batch mails; `None` without a relay.
    pub mailer: Option<Mailer>,
}

/// What a store read found: `None` when the request or batch is gone (expired), in which
/// case nothing is owed any more.
fn found<T>(read: Result<T, bulkhost_core::Error>) -> Result<Option<T>, String> {
    match read {
        Ok(value) => Ok(Some(value)),
        Err(bulkhost_core::Error::NotFound) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

async fn attempt(state: &AppState, notifier: &Notifier, delivery: &Delivery) -> Result<(), String> {
    let store = state.store.clone();
    let (tenant, id) = (delivery.tenant.clone(), delivery.id.clone());
    let message_id = format!("msg_{}_{}", delivery.id, delivery.seq);
    match delivery.notice {
        Notice::Export => {
            let Some(request) = found(blocking(move || store.export(&tenant, &id)).await)? else {
                return Ok(());
            };
            let body = estado_generar_xxl(&request).to_string();
            let url = reqwest::Url::parse(&delivery.url).map_err(|e| e.to_string())?;
            post_signed(state, &notifier.signer, url, &message_id, body).await
        }
        Notice::BatchCallback => {
            let Some((batch, results)) = found(blocking(move || store.batch(&tenant, &id)).await)?
            else {
                return Ok(());
            };
            let mut url = reqwest::Url::parse(&delivery.url).map_err(|e| e.to_string())?;
            url.query_pairs_mut().append_pair("uid", &batch.uuid);
            let body = crate::batch::status_json(&batch, &results).to_string();
            post_signed(state, &notifier.signer, url, &message_id, body).await
        }
        Notice::BatchMail => {
            let Some(mailer) = &notifier.mailer else {
                tracing::warn!(batch = %delivery.id, "no mail relay is configured; the batch's email is not sent");
                return Ok(());
            };
            let Some((batch, results)) = found(blocking(move || store.batch(&tenant, &id)).await)?
            else {
                return Ok(());
            };
            let (subject, text) =
                crate::batch::finished_mail(&batch, &results, state.settings.public_url.as_deref());
            mailer.send(&delivery.url, &subject, text).await
        }
    }
}

/// Posts `body` to `url`, signed, to the address checked against the operator's rules.
async fn post_signed(
    state: &AppState,
    signer: &Signer,
    url: reqwest::Url,
    message_id: &str,
    body: String,
) -> Result<(), String> {
    let addr = target(&url, state.settings.webhook_allow_private).await?;
    let client = reqwest::Client::builder()
        .resolve(url.host_str().unwrap_or_default(), addr)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(ATTEMPT_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let timestamp = chrono::Utc::now().timestamp();
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            signer.sign(message_id, timestamp, &body),
        )
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered {}", response.status()))
    }
}

/// Delivers what the outbox owes until shutdown.
pub async fn deliver(state: AppState, notifier: Arc<Notifier>) {
    let mut ticks = Ticks::new(&state, POLL);
    while ticks.next().await {
        let store = state.store.clone();
        let due = match blocking(move || store.due_deliveries(chrono::Utc::now().naive_utc(), 32))
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "reading the webhook outbox failed");
                continue;
            }
        };
        for delivery in due {
            let outcome = attempt(&state, &notifier, &delivery).await;
            let retry_at = match &outcome {
                Ok(()) => None,
                Err(why) if delivery.attempts + 1 >= state.settings.webhook_max_attempts => {
                    tracing::error!(to = %delivery.url, id = %delivery.id, error = %why, "notice given up");
                    None
                }
                Err(why) => {
                    let wait = state
                        .settings
                        .webhook_retry_base
                        .saturating_mul(1 << delivery.attempts.min(20))
                        .min(MAX_BACKOFF);
                    tracing::warn!(to = %delivery.url, id = %delivery.id, error = %why, retry_in = ?wait, "notice failed");
                    chrono::Duration::from_std(wait)
                        .ok()
                        .and_then(|w| chrono::Utc::now().naive_utc().checked_add_signed(w))
                }
            };
            let store = state.store.clone();
            if let Err(e) = blocking(move || store.settle_delivery(&delivery, retry_at)).await {
                tracing::error!(error = %e, "recording a webhook outcome failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        let signer = Signer::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            signer.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn only_public_addresses_are_reachable_by_default() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
