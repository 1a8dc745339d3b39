//! What an operator lets one of its plugins reach beyond the tenant's documents.
//!
//! A plugin gets no files and no network unless its operator grants them by name in the
//! configuration. Grants belong to the operator's own plugins: a tenant's uploaded extension
//! never gets any, whatever its name.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// One plugin's grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Directories the plugin may read (not write), each visible to it at the same path.
    pub read_dirs: Vec<PathBuf>,
    /// Addresses the plugin may open TCP connections to. Granting any also lets it resolve
    /// host names, so it can find them by name.
    pub connect: Vec<SocketAddr>,
}

impl Grants {
    /// Whether nothing is granted: the default sandbox.
    pub fn is_empty(&self) -> bool {
        self.read_dirs.is_empty() && self.connect.is_empty()
    }

    /// Opens the granted directories and permits the granted addresses in a WASI context
    /// under construction; answers what could not be granted.
    pub(crate) fn apply(&self, wasi: &mut WasiCtxBuilder) -> Result<(), String> {
        for dir in &self.read_dirs {
            let guest = dir.to_string_lossy();
            wasi.preopened_dir(dir, &*guest, FsPerms::ReadOnly)
                .map_err(|e| {
                    format!(
                        "the granted directory {} cannot be opened: {e:#}",
                        dir.display()
                    )
                })?;
        }
        if !self.connect.is_empty() {
            let allowed: Arc<[SocketAddr]> = self.connect.clone().into();
            wasi.allow_tcp(true)
                .allow_ip_name_lookup(true)
                .allow_udp(false)
                .socket_addr_check(move |addr, use_| {
                    let permitted = match use_ {
                        wasmtime_wasi::sockets::SocketAddrUse::TcpConnect => {
                            allowed.contains(&addr)
                        }
                        wasmtime_wasi::sockets::SocketAddrUse::TcpBind => {
                            addr.ip().is_unspecified() && addr.port() == 0
                        }
                        _ => false,
                    };
                    Box::pin(async move { permitted })
                });
        }
        Ok(())
    }
}
