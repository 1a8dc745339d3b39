//! The `bulkhost` command line, as the end-to-end tests run it (same allocator as the release
//! binary).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    bulkhost_server::cli::main()
}
