//! What a test runs to receive bulkhost's notices: a webhook receiver and a mail relay, both on
//! loopback, keeping what they were sent.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, Uri};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The signing secret test servers are configured with.
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One call a webhook receiver got.
#[derive(Debug, Clone)]
pub struct Call {
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: String,
}

impl Call {
    fn header(&self, name: &str) -> String {
        self.headers[name].to_str().unwrap().to_string()
    }

    /// Checks the Standard Webhooks signature against [`SECRET`].
    pub fn assert_signed(&self) {
        self.assert_signed_with(SECRET);
    }

    /// Checks the Standard Webhooks signature against `secret`.
    pub fn assert_signed_with(&self, secret: &str) {
        let key = STANDARD
            .decode(secret.trim_start_matches("whsec_"))
            .unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(
            format!(
                "{}.{}.{}",
                self.header("webhook-id"),
                self.header("webhook-timestamp"),
                self.body
            )
            .as_bytes(),
        );
        let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        assert_eq!(self.header("webhook-signature"), expected);
    }

    /// The `webhook-id` header.
    pub fn id(&self) -> String {
        self.header("webhook-id")
    }
}

/// A webhook receiver on loopback that answers the scripted statuses in turn (then 200) and
/// keeps what it received.
pub struct Receiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Call>>>,
}

impl Receiver {
    /// Waits until `n` calls have arrived, at most 15 s; answers them.
    pub async fn wait_for(&self, n: usize) -> Vec<Call> {
        let started = Instant::now();
        while self.received.lock().unwrap().len() < n {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{n} calls expected"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.received.lock().unwrap().clone()
    }
}

pub async fn receiver(statuses: Vec<u16>) -> Receiver {
    slow_receiver(statuses, Duration::ZERO).await
}

/// A [`receiver`] that takes `delay` to answer each call.
pub async fn slow_receiver(statuses: Vec<u16>, delay: Duration) -> Receiver {
    let received: Arc<Mutex<Vec<Call>>> = Arc::default();
    let script = Arc::new(Mutex::new(statuses));
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |uri: Uri, headers: HeaderMap, body: String| {
            let (kept, script) = (kept.clone(), script.clone());
            async move {
                kept.lock().unwrap().push(Call { uri, headers, body });
                tokio::time::sleep(delay).await;
                let mut script = script.lock().unwrap();
                let status = if script.is_empty() {
                    200
                } else {
                    script.remove(0)
                };
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url, received }
}

/// One message a mail relay accepted.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub recipients: Vec<String>,
    pub data: String,
}

/// An SMTP relay on loopback that accepts every message.
pub struct Relay {
    pub url: String,
    pub received: Arc<Mutex<Vec<Mail>>>,
}

pub async fn relay() -> Relay {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("smtp://{}", listener.local_addr().unwrap());
    let received: Arc<Mutex<Vec<Mail>>> = Arc::default();
    let kept = received.clone();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::spawn(smtp_session(socket, kept.clone()));
        }
    });
    Relay { url, received }
}

/// The server side of RFC 5321, as much as a client sending one message needs.
async fn smtp_session(socket: tokio::net::TcpStream, kept: Arc<Mutex<Vec<Mail>>>) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut mail = Mail::default();
    write.write_all(b"220 relay ESMTP\r\n").await.unwrap();
    while let Ok(Some(line)) = lines.next_line().await {
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 relay\r\n",
            "RCPT" => {
                let to = line.split_once(':').map(|(_, to)| to).unwrap_or_default();
                mail.recipients
                    .push(to.trim().trim_matches(['<', '>']).to_string());
                b"250 OK\r\n"
            }
            "DATA" => {
                write.write_all(b"354 go on\r\n").await.unwrap();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line == "." {
                        break;
                    }
                    mail.data.push_str(&line);
                    mail.data.push('\n');
                }
                kept.lock().unwrap().push(std::mem::take(&mut mail));
                b"250 queued\r\n"
            }
            "QUIT" => {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => b"250 OK\r\n",
        };
        write.write_all(reply).await.unwrap();
    }
}
