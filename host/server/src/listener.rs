//! Accepting connections so that a client cannot hold the server by going quiet.
//!
//! Every connection's writes time out: a client that stops reading a response for longer
//! than the write timeout loses its connection, and with it whatever its response held. The
//! client's address travels with each request ([`ClientAddr`]), so sign-ins can be rate
//! limited per address. A failed accept (out of file descriptors, say) waits briefly and goes
//! on, rather than spinning or stopping the server.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::net::{TcpListener, TcpStream};
use tokio_io_timeout::TimeoutStream;

/// How long a failed accept waits before the next: long enough for connections to close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A connection whose writes time out.
pub type Connection = Pin<Box<TimeoutStream<TcpStream>>>;

/// The server's listening socket.
#[derive(Debug)]
pub struct Listener {
    socket: TcpListener,
    write_timeout: Duration,
}

impl Listener {
    /// Accepts on `socket`, cutting off connections whose writes stall for `write_timeout`.
    pub fn new(socket: TcpListener, write_timeout: Duration) -> Self {
        Listener {
            socket,
            write_timeout,
        }
    }
}

impl axum::serve::Listener for Listener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.socket.accept().await {
                Ok((stream, addr)) => {
                    // Small answers go out at once rather than waiting for more to send.
                    let _ = stream.set_nodelay(true);
                    let mut stream = TimeoutStream::new(stream);
                    stream.set_write_timeout(Some(self.write_timeout));
                    return (Box::pin(stream), addr);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.socket.local_addr()
    }
}

/// The address a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, Listener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, Listener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// Raises this process's limit of open files to the most it may have, so thousands of
/// connections (stalled ones included) do not run the server out of descriptors; answers the
/// limit now in force.
pub fn raise_file_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}
