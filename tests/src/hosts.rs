//! Several `bulkhost serve` processes on one PostgreSQL database, as an operator runs them:
//! each host with a data directory of its own, all with the same configuration.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::{Api, ServerProcess, database};

/// Hosts sharing one database; any of them may be killed and started again.
pub struct Hosts {
    binary: PathBuf,
    config: String,
    database: String,
    hosts: Vec<Option<ServerProcess>>,
    dir: TempDir,
}

impl Hosts {
    /// Starts `count` hosts of `binary` with `config` on a fresh database of the test server.
    pub fn start(binary: &Path, count: usize, config: &str) -> Hosts {
        Self::start_all(Self::new(binary, count, config))
    }

    /// As [`Hosts::start`], on a fresh database of the server in the variable `server`.
    pub fn start_on(binary: &Path, count: usize, config: &str, server: &str) -> Hosts {
        Self::start_all(Self::on(binary, count, config, server))
    }

    fn start_all(mut hosts: Hosts) -> Hosts {
        for i in 0..hosts.hosts.len() {
            hosts.restart(i);
        }
        hosts
    }

    /// Room for `count` hosts of `binary` with `config` on a fresh database of the test
    /// server, none started yet ([`Hosts::restart`] starts one).
    ///
    /// Panics without `BULKHOST_TEST_POSTGRES`: these tests mean nothing on one embedded file.
    pub fn new(binary: &Path, count: usize, config: &str) -> Hosts {
        Self::on(binary, count, config, database::SERVER_VARIABLE)
    }

    fn on(binary: &Path, count: usize, config: &str, server: &str) -> Hosts {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = std::env::var(server)
            .unwrap_or_else(|_| panic!("several hosts need a PostgreSQL server in {server}"));
        let database = database::on_server(&server, dir.path());
        Hosts {
            binary: binary.to_path_buf(),
            config: config.to_string(),
            database,
            hosts: (0..count).map(|_| None).collect(),
            dir,
        }
    }

    /// The database the hosts share.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Starts host `i` (again), with the data directory it had.
    pub fn restart(&mut self, i: usize) {
        let data = self.dir.path().join(format!("host-{i}"));
        std::fs::create_dir_all(&data).expect("a host's data directory");
        self.hosts[i] = Some(ServerProcess::start_on(
            &self.binary,
            &data,
            &self.config,
            &[],
            Some(&self.database),
        ));
    }

    /// Kills host `i` with SIGKILL: no shutdown, no last write.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut host) = self.hosts[i].take() {
            host.signal("KILL");
            host.wait(std::time::Duration::from_secs(10));
        }
    }

    /// A client of host `i` signed in as `user` (password `{user}-pw`).
    pub fn as_user(&self, i: usize, user: &str) -> Api {
        self.hosts[i]
            .as_ref()
            .unwrap_or_else(|| panic!("host {i} is not running"))
            .as_user(user)
    }
}
