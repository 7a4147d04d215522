//! `kokuho`: every service (`kokuho serve <service>`) and the command-line tool of clerks,
//! operators and scripts (spec/cli.md). Thin: it parses arguments and calls the libraries.

mod cli;
mod commands;
mod output;

use clap::Parser as _;

// jemalloc: resident memory stays near the heap under many threads, where glibc's arenas grew
// it by half (docs/benchmarks.md, continuity). Feature `system-allocator`: the C library's, so
// that a heap profiler that hooks malloc (heaptrack) sees every allocation.
#[cfg(not(any(target_env = "msvc", feature = "system-allocator")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Exit codes (documented in `kokuho --help`).
pub(crate) const EXIT_OK: u8 = 0;
pub(crate) const EXIT_REJECTED: u8 = 1;
pub(crate) const EXIT_USAGE: u8 = 2;

/// Worker threads of the async runtime unless `TOKIO_WORKER_THREADS` says otherwise: four per
/// core, at least eight. A service's step (decoding, sealing, reading its store) runs on a
/// worker; with one worker per core, two long steps at once left nobody to read the sockets,
/// and appends' acknowledgements and consumers' heartbeats timed out under a prefecture's load
/// (docs/benchmarks.md, issue 14; docs/decisions.md "Worker threads").
fn worker_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| (cores * 4).max(8))
}

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(worker_threads()).enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("kokuho: cannot start the async runtime: {e}");
                return std::process::ExitCode::from(EXIT_USAGE);
            }
        };
    let code = runtime.block_on(commands::run(cli));
    std::process::ExitCode::from(code)
}
