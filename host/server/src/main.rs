//! The `bulkhost` binary.

/// redb copies pages on write and frees them at commit; glibc's allocator returns that memory
/// to the kernel and faults it back in, which cost about a sixth of write throughput.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    bulkhost_server::cli::main()
}
