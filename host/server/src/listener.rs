//! Accepting and serving connections so that a client cannot hold the server by going quiet.
//!
//! Every connection's writes time out: a client that stops reading a response for longer
//! than the write timeout loses its connection, and with it whatever its response held. A
//! client that sends its request head too slowly is cut off the same way, and each
//! connection buffers little of a response, so thousands of stalled connections cost little
//! memory. The client's address travels with each request ([`ClientAddr`]), so sign-ins can be
//! rate limited per address. A failed accept (out of file descriptors, say) waits briefly and
//! goes on, rather than spinning or stopping the server. A stop finishes the requests in
//! flight and closes idle connections.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_io_timeout::TimeoutStream;
use tower::ServiceExt;

/// How long a failed accept waits before the next: long enough for connections to close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How long a client may take to send a request's head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of a response a connection buffers before it waits for the client (hyper's
/// default is about 400 KiB).
const CONNECTION_BUFFER: usize = 64 * 1024;

/// The address a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub SocketAddr);

/// Serves `app` on `socket` until `shutdown` resolves, then lets the requests in flight end.
pub async fn serve(
    socket: TcpListener,
    app: Router,
    write_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(CONNECTION_BUFFER);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small answers go out at once rather than waiting for more to send.
        let _ = stream.set_nodelay(true);
        let mut stream = TimeoutStream::new(stream);
        stream.set_write_timeout(Some(write_timeout));
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo(ClientAddr(addr)));
            app.clone().oneshot(request)
        });
        let connection =
            graceful.watch(http.serve_connection(TokioIo::new(Box::pin(stream)), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "a connection ended with an error");
            }
        });
    }
    drop(socket);
    graceful.shutdown().await;
}

/// Raises this process's limit of open files to the most it may have, so thousands of
/// connections (stalled ones included) do not run the server out of descriptors; answers the
/// limit now in force.
pub fn raise_file_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}
