//! Mail through the operator's SMTP relay: how a batch's webhook `email` hears that the batch
//! has finished. Without a relay in the configuration no mail is sent.

use std::time::Duration;

use anyhow::Context;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// How long handing one message to the relay may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection recipe for the relay and the sender address.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer for the configured relay; a relay URL or sender that cannot work stops the
    /// start rather than every mail later.
    pub fn new(relay: &str, from: &str) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(relay)
            .context("mail.relay must be an smtp:// or smtps:// URL")?
            .timeout(Some(SEND_TIMEOUT))
            .build();
        let from = from
            .parse()
            .with_context(|| format!("mail.from `{from}` is not a mail address"))?;
        Ok(Mailer { transport, from })
    }

    /// Sends a plain-text message to `to`.
    pub async fn send(&self, to: &str, subject: &str, text: String) -> Result<(), String> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| format!("`{to}` is not a mail address: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .body(text)
            .map_err(|e| e.to_string())?;
        self.transport
            .send(message)
            .await
            .map(drop)
            .map_err(|e| format!("the relay refused the mail: {e}"))
    }
}
