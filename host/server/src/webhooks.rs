//! Delivering what the outbox owes: the final `EstadoGenerarXXL` of an export request, posted
//! to the URL the request named; a finished batch's status, posted to its `callbackUrl` with
//! `?uid=<uuid>`, and mailed to its `email` when the operator configured a relay. Webhook
//! calls are signed per the Standard Webhooks spec (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`), retried with doubling
//! delays, and never sent to loopback, private, link-local or other non-public addresses
//! unless the operator allows it. The address is checked after resolution (which has a
//! deadline of its own) and the connection pinned to the checked address, so a DNS answer
//! cannot swap it afterwards; no proxy is taken from the environment.
//!
//! Deliveries run side by side, a few per tenant at most, so one tenant's slow or dead
//! receiver only ever delays that tenant's own notices; mails are also rate limited per
//! tenant, and one over the limit waits without counting as a failed attempt.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bulkhost_core::{Delivery, Notice};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::Semaphore;

use crate::bulk_export::wire::EstadoGenerarXxl;
use crate::mail::Mailer;
use crate::state::{AppState, Ticks, blocking};
use crate::throttle::Throttle;

/// How long one delivery attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How often the outbox is read.
const POLL: Duration = Duration::from_millis(250);
/// The file in the data directory where an earlier build kept the generated secret.
const SECRET_FILE: &str = "webhook-secret";
/// The shared setting the webhook signing secret is kept under.
const SECRET_SETTING: &str = "webhook-secret";

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

    /// The configured secret, or the deployment's, kept in the database so that every host
    /// signs alike: created by the first host that starts, from the file an earlier build kept
    /// in `data` if there is one.
    pub fn load_or_create(
        configured: Option<&str>,
        store: &bulkhost_core::Store,
        data: &Path,
    ) -> anyhow::Result<Self> {
        if let Some(secret) = configured {
            return Self::from_secret(secret);
        }
        let path = data.join(SECRET_FILE);
        let secret = store
            .shared_setting(SECRET_SETTING, || {
                std::fs::read_to_string(&path).unwrap_or_else(|_| {
                    tracing::info!("generated the webhook signing secret");
                    format!("whsec_{}", STANDARD.encode(rand::random::<[u8; 32]>()))
                })
            })
            .context("reading the webhook signing secret")?;
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

/// Whether an address is one a webhook may reach without the operator's leave: not loopback,
/// private, link-local, shared, reserved, documentation or multicast space, and not an IPv6
/// form that embeds or reaches an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                !(v6.is_multicast()
                    || s[..6] == [0; 6]
                    || (s[0] == 0x64 && s[1] == 0xff9b)
                    || s[0] == 0x2002
                    || (s[0] == 0x2001 && s[1] == 0)
                    || (s[0] & 0xfe00) == 0xfc00
                    || (s[0] & 0xffc0) == 0xfe80
                    || (s[0] & 0xffc0) == 0xfec0
                    || (s[0] == 0x2001 && s[1] == 0x0db8))
            }
        },
    }
}

/// The address to connect to for `url`, refused when it is not public (unless allowed) or
/// when resolving its name takes longer than `dns_timeout`.
async fn target(
    url: &reqwest::Url,
    allow_private: bool,
    dns_timeout: Duration,
) -> Result<SocketAddr, String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("unsupported scheme `{}`", url.scheme()));
    }
    let host = url.host_str().ok_or("the URL names no host")?;
    let port = url.port_or_known_default().ok_or("the URL names no port")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> =
        tokio::time::timeout(dns_timeout, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| format!("resolving {host} took longer than {dns_timeout:?}"))?
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

/// What delivers the outbox's mails, when the operator configured a relay: the mailer with its
/// per-tenant rate.
#[derive(Debug)]
pub struct Notifier {
    /// Sends batch mails; `None` without a relay.
    pub mailer: Option<Mailer>,
    /// Mails sent per tenant.
    pub mails: Throttle<String>,
}

/// How a delivery went.
enum Outcome {
    /// Delivered, or nothing is owed any more.
    Done,
    /// It failed; it is tried again later, or given up.
    Failed(String),
    /// It was not tried: its tenant must wait this long.
    Deferred(Duration),
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

async fn attempt(state: &AppState, notifier: &Notifier, delivery: &Delivery) -> Outcome {
    let store = state.store.clone();
    let (tenant, id) = (delivery.tenant.clone(), delivery.id.clone());
    let message_id = format!("msg_{}_{}", delivery.id, delivery.seq);
    let done = match delivery.notice {
        Notice::Export => {
            let request = match found(blocking(move || store.exports().export(&tenant, &id)).await)
            {
                Ok(Some(request)) => request,
                Ok(None) => return Outcome::Done,
                Err(why) => return Outcome::Failed(why),
            };
            let body = serde_json::to_string(&EstadoGenerarXxl::from(&request))
                .unwrap_or_else(|e| unreachable!("a request state serializes: {e}"));
            match reqwest::Url::parse(&delivery.url) {
                Ok(url) => post_signed(state, url, &message_id, body).await,
                Err(e) => Err(e.to_string()),
            }
        }
        Notice::BatchCallback => {
            let (batch, results) =
                match found(blocking(move || store.batches().batch(&tenant, &id)).await) {
                    Ok(Some(found)) => found,
                    Ok(None) => return Outcome::Done,
                    Err(why) => return Outcome::Failed(why),
                };
            let mut url = match reqwest::Url::parse(&delivery.url) {
                Ok(url) => url,
                Err(e) => return Outcome::Failed(e.to_string()),
            };
            url.query_pairs_mut().append_pair("uid", &batch.uuid);
            let body =
                serde_json::to_string(&crate::batch::wire::BatchState::new(&batch, &results))
                    .unwrap_or_else(|e| unreachable!("a batch state serializes: {e}"));
            post_signed(state, url, &message_id, body).await
        }
        Notice::BatchMail => {
            let Some(mailer) = &notifier.mailer else {
                tracing::warn!(batch = %delivery.id, "no mail relay is configured; the batch's email is not sent");
                return Outcome::Done;
            };
            if let Some(wait) = notifier.mails.wait(&delivery.tenant) {
                return Outcome::Deferred(wait);
            }
            let (batch, results) =
                match found(blocking(move || store.batches().batch(&tenant, &id)).await) {
                    Ok(Some(found)) => found,
                    Ok(None) => return Outcome::Done,
                    Err(why) => return Outcome::Failed(why),
                };
            notifier.mails.charge(&delivery.tenant);
            let (subject, text) =
                crate::batch::finished_mail(&batch, &results, state.config.public_url.as_deref());
            mailer.send(&delivery.url, &subject, text).await
        }
    };
    match done {
        Ok(()) => Outcome::Done,
        Err(why) => Outcome::Failed(why),
    }
}

/// Posts a JSON `body` to `url`, signed, to the address checked against the operator's rules.
async fn post_signed(
    state: &AppState,
    url: reqwest::Url,
    message_id: &str,
    body: String,
) -> Result<(), String> {
    let message = Message {
        id: message_id,
        content_type: "application/json",
        headers: &[],
        body,
    };
    post(state, url, message).await
}

/// A signed call's content.
pub struct Message<'a> {
    /// Its `webhook-id`.
    pub id: &'a str,
    /// The body's media type.
    pub content_type: &'a str,
    /// Headers beyond the signature's.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub body: String,
}

/// Posts `message` to `url`, signed per the Standard Webhooks spec, to the address checked
/// against the operator's rules; succeeds on a 2xx answer.
pub async fn post(state: &AppState, url: reqwest::Url, message: Message<'_>) -> Result<(), String> {
    let webhooks = &state.config.webhooks;
    let addr = target(&url, webhooks.allow_private, webhooks.dns_timeout()).await?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .resolve(url.host_str().unwrap_or_default(), addr)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(ATTEMPT_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let timestamp = chrono::Utc::now().timestamp();
    let mut request = client
        .post(url)
        .header("content-type", message.content_type)
        .header("webhook-id", message.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            state.signer.sign(message.id, timestamp, &message.body),
        );
    for (name, value) in message.headers {
        request = request.header(*name, *value);
    }
    let response = request
        .body(message.body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered {}", response.status()))
    }
}

/// Deliveries being tried, by number (an outbox position, a hook id) and by tenant.
#[derive(Debug, Default)]
struct InFlight {
    seqs: HashSet<u64>,
    tenants: HashMap<String, usize>,
}

impl InFlight {
    /// Marks delivery `seq` of `tenant` in flight, unless it already is or the tenant has
    /// `per_tenant` in flight.
    fn admit(&mut self, tenant: &str, seq: u64, per_tenant: usize) -> bool {
        let of_tenant = self.tenants.entry(tenant.to_string()).or_default();
        if *of_tenant >= per_tenant || self.seqs.contains(&seq) {
            return false;
        }
        *of_tenant += 1;
        self.seqs.insert(seq);
        true
    }

    /// Delivery `seq` of `tenant` is no longer in flight.
    fn release(&mut self, tenant: &str, seq: u64) {
        self.seqs.remove(&seq);
        if let Some(n) = self.tenants.get_mut(tenant) {
            *n -= 1;
            if *n == 0 {
                self.tenants.remove(tenant);
            }
        }
    }
}

/// A delivery under way: its slot and its place in flight, given back when it ends however it
/// ends (done, failed, panicked or aborted).
struct Running {
    in_flight: Arc<Mutex<InFlight>>,
    tenant: String,
    seq: u64,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .release(&self.tenant, self.seq);
    }
}

/// Runs deliveries side by side within `[webhooks]`' limits: at most `concurrency` at once,
/// at most `per_tenant` of one tenant, each delivery once. The webhook outbox and the change
/// hooks each run one, so a dead receiver holds only its own tenant's share.
pub struct Dispatcher {
    in_flight: Arc<Mutex<InFlight>>,
    slots: Arc<Semaphore>,
    tasks: tokio::task::JoinSet<()>,
    per_tenant: usize,
}

impl Dispatcher {
    /// A dispatcher under the configuration's limits.
    pub fn new(state: &AppState) -> Self {
        let webhooks = &state.config.webhooks;
        Dispatcher {
            in_flight: Arc::default(),
            slots: Arc::new(Semaphore::new(webhooks.concurrency)),
            tasks: tokio::task::JoinSet::new(),
            per_tenant: webhooks.per_tenant,
        }
    }

    /// How many deliveries may start now.
    pub fn free(&mut self) -> usize {
        while self.tasks.try_join_next().is_some() {}
        self.slots.available_permits()
    }

    /// Starts `work`, delivery `seq` of `tenant`, if a slot is free, the tenant is within its
    /// share and the delivery is not already running; answers whether it started.
    pub fn start(
        &mut self,
        tenant: &str,
        seq: u64,
        work: impl Future<Output = ()> + Send + 'static,
    ) -> bool {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            return false;
        };
        let admitted = self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(tenant, seq, self.per_tenant);
        if !admitted {
            return false;
        }
        let running = Running {
            in_flight: self.in_flight.clone(),
            tenant: tenant.to_string(),
            seq,
            _slot: slot,
        };
        self.tasks.spawn(async move {
            let _running = running;
            work.await;
        });
        true
    }

    /// Stops: the deliveries running are aborted, and their claims lapse for a later try.
    pub async fn shutdown(mut self) {
        self.tasks.shutdown().await;
    }
}

/// How long to wait before trying again after `failures` failed attempts in a row: the
/// operator's first wait, doubled for each further failure, at most an hour.
pub fn backoff(state: &AppState, failures: u32) -> Duration {
    state
        .config
        .webhooks
        .retry_base()
        .saturating_mul(1 << failures.min(20))
        .min(MAX_BACKOFF)
}

/// Delivers what the outbox owes until shutdown: every poll claims the due deliveries, starts
/// those that fit — at most `webhooks.concurrency` at once and `webhooks.per_tenant` of one
/// tenant, each in a task of its own — and gives the others back, so that whichever host
/// claims a delivery is the one that makes it.
pub async fn deliver(state: AppState, notifier: Arc<Notifier>) {
    let mut dispatcher = Dispatcher::new(&state);
    let mut ticks = Ticks::new(&state, POLL);
    while ticks.next().await {
        if dispatcher.free() == 0 {
            continue;
        }
        let store = state.store.clone();
        let webhooks = &state.config.webhooks;
        let (per_tenant, most) = (webhooks.per_tenant, 4 * webhooks.concurrency);
        let due = match blocking(move || {
            store
                .outbox()
                .due_deliveries(chrono::Utc::now().naive_utc(), per_tenant, most)
        })
        .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "reading the webhook outbox failed");
                continue;
            }
        };
        let mut unstarted = Vec::new();
        for delivery in due {
            let (state, notifier, started) = (state.clone(), notifier.clone(), delivery.clone());
            let work = async move { deliver_one(&state, &notifier, &started).await };
            if !dispatcher.start(&delivery.tenant, delivery.seq, work) {
                unstarted.push(delivery);
            }
        }
        if !unstarted.is_empty() {
            let store = state.store.clone();
            if let Err(e) = blocking(move || store.outbox().release_deliveries(&unstarted)).await {
                tracing::error!(error = %e, "giving back unstarted webhook deliveries failed");
            }
        }
        notifier.mails.forget_idle();
    }
    dispatcher.shutdown().await;
}

/// Tries one delivery and records how it went.
async fn deliver_one(state: &AppState, notifier: &Notifier, delivery: &Delivery) {
    let now = chrono::Utc::now().naive_utc();
    let later = |wait: Duration| {
        chrono::Duration::from_std(wait)
            .ok()
            .and_then(|w| now.checked_add_signed(w))
    };
    let store = state.store.clone();
    let delivery = delivery.clone();
    let kind = match delivery.notice {
        Notice::BatchMail => "mail",
        Notice::Export | Notice::BatchCallback => "webhook",
    };
    let outcome = attempt(state, notifier, &delivery).await;
    let given_up = delivery.attempts + 1 >= state.config.webhooks.max_attempts;
    state.metrics.delivery(
        kind,
        match &outcome {
            Outcome::Done => "delivered",
            Outcome::Deferred(_) => "deferred",
            Outcome::Failed(_) if given_up => "given_up",
            Outcome::Failed(_) => "retried",
        },
    );
    let settled = match outcome {
        Outcome::Done => blocking(move || store.outbox().settle_delivery(&delivery, None)).await,
        Outcome::Deferred(wait) => {
            let until = later(wait).unwrap_or(now);
            blocking(move || store.outbox().postpone_delivery(&delivery, until)).await
        }
        Outcome::Failed(why) if given_up => {
            tracing::error!(to = %delivery.url, id = %delivery.id, error = %why, "notice given up");
            blocking(move || store.outbox().settle_delivery(&delivery, None)).await
        }
        Outcome::Failed(why) => {
            let wait = backoff(state, delivery.attempts);
            tracing::warn!(to = %delivery.url, id = %delivery.id, error = %why, retry_in = ?wait, "notice failed");
            let retry_at = later(wait);
            blocking(move || store.outbox().settle_delivery(&delivery, retry_at)).await
        }
    };
    if let Err(e) = settled {
        tracing::error!(error = %e, "recording a webhook outcome failed");
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
            "::",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::1",
            "2001:0:4136:e378::1",
            "fec0::1",
            "100.100.0.1",
            "192.0.0.8",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
