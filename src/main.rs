//! `llm-pool` binary: parse the command line, load the config before binding anything, serve
//! until SIGTERM, drain.

use std::process::ExitCode;

use clap::Parser;
use llm_pool::cli::{Cli, Command};

/// mimalloc: the request path allocates small, short-lived buffers on many threads, where
/// it is markedly cheaper than glibc's malloc (see docs/BENCHMARKS.md, gateway overhead).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match llm_pool::config::load(&file)
            .and_then(|config| llm_pool::live::check(&config).map(|_| config))
        {
            Ok(config) => {
                eprintln!(
                    "{}: ok ({} providers, {} tasks)",
                    file.display(),
                    config.providers().len(),
                    config.tasks().len()
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                for e in &errors.0 {
                    eprintln!("{}: {e}", file.display());
                }
                eprintln!("{}: {} error(s)", file.display(), errors.0.len());
                ExitCode::FAILURE
            }
        },
        Command::Serve { config, runtime } => serve(config, runtime),
        Command::Query(args) => client(llm_pool::cli::query(args)),
        Command::Health { remote, json } => client(llm_pool::cli::health(remote, json)),
        Command::Tasks { remote } => client(llm_pool::cli::tasks(remote)),
        Command::Feedback(args) => client(llm_pool::cli::feedback(args)),
    }
}

/// Runs a client command on a one-thread runtime; its exit code.
fn client(command: impl std::future::Future<Output = u8>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => ExitCode::from(rt.block_on(command)),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(path: std::path::PathBuf, runtime: llm_pool::cli::Runtime) -> ExitCode {
    // Load configuration without binding ports: a bad file fails before anything listens.
    let loaded = match llm_pool::config::load(&path) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{}: {e}", path.display());
            }
            return ExitCode::FAILURE;
        }
    };
    let (mut builder, threads) = runtime_builder(runtime);
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Inside the runtime: the OTLP exporters use it. The guard flushes spans at the end.
    let _traces = {
        let _enter = runtime.enter();
        llm_pool::telemetry::init(loaded.server().log_format(), loaded.tracing())
    };
    runtime.block_on(async move {
        let grace = loaded.server().shutdown_grace();
        let running = match llm_pool::app::start_threads(Some(path), loaded, threads).await {
            Ok(r) => r,
            Err(error) => {
                tracing::error!(%error, "Cannot start.");
                return ExitCode::FAILURE;
            }
        };
        llm_pool::app::shutdown_signal().await;
        running.shutdown(grace).await;
        ExitCode::SUCCESS
    })
}

/// The Tokio runtime and the number of accept threads. `auto`: when the process may use one
/// core (`taskset`, a container's CPU limit of one), one that runs every task on the thread
/// that drives it, since a work-stealing scheduler with a single worker only adds its
/// bookkeeping (measured: a quarter of the pool's CPU per request, docs/BENCHMARKS.md); the
/// multi-threaded one, a worker per core, otherwise. `thread-per-core`: this thread's
/// single-threaded runtime and one more accept thread per other core.
fn runtime_builder(runtime: llm_pool::cli::Runtime) -> (tokio::runtime::Builder, usize) {
    use llm_pool::cli::Runtime;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    match runtime {
        Runtime::Auto if cores == 1 => (tokio::runtime::Builder::new_current_thread(), 1),
        Runtime::Auto | Runtime::MultiThread => (tokio::runtime::Builder::new_multi_thread(), 1),
        Runtime::ThreadPerCore => (tokio::runtime::Builder::new_current_thread(), cores),
    }
}
