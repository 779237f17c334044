//! `connectors-bench`: the performance benchmark of the connectors service.
//!
//! `cargo run --release -p connectors-bench` measures on loopback, side by
//! side in one run: FULL-sync throughput against the bare limit of tonic,
//! server peak RSS at two estate sizes, no-change INCREMENTAL cost relative to
//! FULL, latency-bound crawl time against its critical-path bound, and the
//! time to the first entity on the fixtures. It prints a table and writes the
//! figures as JSON (`--out`). `--smoke` runs tiny sizes and fails only when a
//! measurement did not produce a finite value or a sync's result is wrong.
//!
//! The server runs in a process of its own (this binary's `serve` subcommand,
//! which runs `connectors_server::server::run_from_env`, the whole of the
//! `connectors-server` binary), so its peak RSS is its own. The synthetic
//! estate is answered by the project's replay server in this process.

mod bare;
mod estate;
mod fetch;
mod procs;
mod report;
mod scenarios;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Benchmark of the connectors service (see the README's "Performance").
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Tiny sizes; fail on a wrong result or a missing figure, not on targets.
    #[arg(long)]
    smoke: bool,
    /// Where the figures are written as JSON.
    #[arg(long, default_value = "target/bench/figures.json")]
    out: PathBuf,
    /// Throughput repetitions (real and bare alternate; medians are reported).
    #[arg(long)]
    reps: Option<u32>,
    /// Fixtures directory for the time-to-first-entity measurement.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures"))]
    fixtures: PathBuf,
    /// Only these measurements (comma separated: throughput, memory, latency, ttfe;
    /// throughput-github or throughput-aws for one shape of throughput).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Runs the server from the environment, as the connectors-server binary does.
    #[command(hide = true)]
    Serve,
    /// Runs the bare tonic server.
    #[command(hide = true)]
    Bare {
        /// Listen address.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Length-delimited SyncEvent samples.
        #[arg(long)]
        samples: PathBuf,
        /// Events per stream.
        #[arg(long)]
        count: u64,
        /// Streams to pre-build.
        #[arg(long)]
        sets: usize,
    },
    /// Sends the requests of a GitHub-shaped FULL sync with a plain HTTP
    /// client and prints what it measured as JSON (the upstream ceiling).
    #[command(hide = true)]
    Fetch {
        /// The replay server's base URL.
        #[arg(long)]
        base: String,
        /// The estate: organizations, repositories per organization, manifests per repository, page size.
        #[arg(long, num_args = 4, value_names = ["ORGS", "REPOS", "MANIFESTS", "PAGE"])]
        shape: Vec<u32>,
        /// Requests in flight.
        #[arg(long)]
        concurrency: usize,
    },
}

/// The server's allocator, so that the `serve` subcommand runs as the
/// connectors-server binary does (the bare server and the client use it too).
#[global_allocator]
static ALLOCATOR: connectors_server::Allocator = connectors_server::Allocator;

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("connectors-bench: {error}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Cmd::Serve) => runtime.block_on(connectors_server::server::run_from_env()),
        Some(Cmd::Bare {
            listen,
            samples,
            count,
            sets,
        }) => {
            let result = std::fs::read(&samples)
                .map_err(anyhow::Error::from)
                .and_then(|bytes| bare::read_samples(&bytes));
            let served = result.and_then(|samples| runtime.block_on(bare::serve(listen, samples, count, sets)));
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("connectors-bench bare: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Cmd::Fetch {
            base,
            shape,
            concurrency,
        }) => {
            let shape = estate::GithubShape {
                orgs: shape[0],
                repos_per_org: shape[1],
                manifests_per_repo: shape[2],
                page_size: shape[3],
            };
            match runtime.block_on(fetch::fetch(&base, &shape, concurrency)) {
                Ok(fetched) => {
                    println!("{}", serde_json::to_string(&fetched).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("connectors-bench fetch: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        None => {
            let settings = scenarios::Settings {
                smoke: cli.smoke,
                reps: cli.reps.unwrap_or(if cli.smoke { 1 } else { 3 }).max(1),
                fixtures: cli.fixtures,
                out: cli.out,
                only: cli.only,
            };
            match runtime.block_on(scenarios::run(settings)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(error) => {
                    eprintln!("connectors-bench: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
