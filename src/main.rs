//! The `kiln` binary: parse flags, set up logging and the runtime, hand off to the library.

use std::process::ExitCode;

use clap::Parser;
use kiln::cmd::{Exit, LogFormat, exit_code};

// A bake allocates per page (response buffers, link lists, index rows) from
// many threads: glibc's malloc took ~9% of a full bake's CPU (perf, 5k pages
// on ext4). mimalloc serves Rust and, overriding malloc, SQLite too: a bake
// spends 12% less CPU at about the same peak RSS (BENCHMARKS.md §15). Built
// without transparent huge pages: with them, zeroing fresh 2 MiB pages cost
// 6% of the CPU and a 50k-page bake's peak RSS went from 44 to 77 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = kiln::Cli::parse();
    if !matches!(
        cli.command,
        kiln::cli::Command::Daemon(_) | kiln::cli::Command::Serve(_)
    ) {
        // `kiln status | head`: a closed pipe ends a one-shot command quietly,
        // as for any Unix tool, instead of a panic in println!. The daemon
        // keeps Rust's default (ignored), so no write can kill it.
        // SAFETY: called before any thread is started.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    init_tracing(cli.global.log_format, cli.global.verbose, cli.global.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // The command runs as a task on a worker thread, not on this one: the
    // crawl loop is woken by every finished page, and waking it on a worker
    // is cheaper than handing each page over to the main thread.
    let outcome = runtime.block_on(async {
        tokio::spawn(kiln::run(cli))
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("the command panicked: {e}")))
    });
    match outcome {
        Ok(Exit::Clean) => ExitCode::SUCCESS,
        Ok(Exit::PagesFailed) => ExitCode::from(1),
        Ok(Exit::Problems) => ExitCode::from(2),
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(exit_code(&e))
        }
    }
}

fn init_tracing(format: LogFormat, verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "kiln=debug,info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("KILN_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
