//! The `bulkhost` binary.

fn main() -> anyhow::Result<()> {
    bulkhost_server::cli::main()
}
