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

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kokuho: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(EXIT_USAGE);
        }
    };
    let code = runtime.block_on(commands::run(cli));
    std::process::ExitCode::from(code)
}
