//! The measurements.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connectors_client::ConnectorsClient;
use connectors_proto::v1::{Summary, SyncEvent, SyncMode, SyncOptions, sync_event::Event};
use connectors_proto::{aws, github};
use connectors_server::replay::{FixtureSet, ReplayOptions, ReplayServer};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::estate::{AwsShape, Estate, GithubShape};
use crate::procs::{Process, free_port, work_dir};
use crate::report::{Figure, document, table};

const MIB: f64 = 1024.0 * 1024.0;

/// The in-memory cache bound of the throughput, incremental and latency
/// servers: large enough that nothing of the estate (conditional-request
/// bodies, scope states, coalescing logs) is evicted, as an operator would
/// size it (or use Redis) for an estate this large.
const LARGE_CACHE: u64 = 8 * 1024 * 1024 * 1024;

/// What to run.
#[derive(Debug)]
pub struct Settings {
    /// Tiny sizes, results checked, targets not.
    pub smoke: bool,
    /// Throughput repetitions.
    pub reps: u32,
    /// The fixtures of the time-to-first-entity measurement.
    pub fixtures: PathBuf,
    /// The JSON output.
    pub out: PathBuf,
    /// Only these measurements (empty = all).
    pub only: Vec<String>,
}

impl Settings {
    fn wants(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == name)
    }
}

/// What one sync returned, as the client saw it.
#[derive(Debug, Default)]
struct Outcome {
    upserts: u64,
    deletions: u64,
    events: u64,
    elapsed: Duration,
    first_entity: Option<Duration>,
    summary: Option<Summary>,
    /// The first upserts, kept for the bare server.
    samples: Vec<SyncEvent>,
}

impl Outcome {
    fn per_second(&self) -> f64 {
        self.upserts as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn checkpoint(&self) -> Vec<u8> {
        self.summary.as_ref().map(|s| s.checkpoint.clone()).unwrap_or_default()
    }
}

/// Reads a stream to its end, counting and dropping events.
async fn drive(mut stream: connectors_client::SyncStream, keep: usize) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let mut outcome = Outcome::default();
    while let Some(event) = stream.next().await {
        let event = event?;
        outcome.events += 1;
        match &event.event {
            Some(Event::Upsert(_)) => {
                outcome.upserts += 1;
                if outcome.first_entity.is_none() {
                    outcome.first_entity = Some(started.elapsed());
                }
                if outcome.samples.len() < keep {
                    outcome.samples.push(event);
                }
            }
            Some(Event::Deletion(_)) => outcome.deletions += 1,
            Some(Event::Summary(summary)) => outcome.summary = Some(summary.clone()),
            _ => {}
        }
    }
    outcome.elapsed = started.elapsed();
    anyhow::ensure!(outcome.summary.is_some(), "the stream ended without a summary");
    Ok(outcome)
}

fn options(mode: SyncMode, checkpoint: Vec<u8>) -> Option<SyncOptions> {
    Some(SyncOptions {
        mode: mode as i32,
        checkpoint,
        ..Default::default()
    })
}

async fn sync_github(
    client: &ConnectorsClient,
    orgs: Vec<String>,
    mode: SyncMode,
    checkpoint: Vec<u8>,
    keep: usize,
) -> anyhow::Result<Outcome> {
    let request = github::v1::SyncRequest {
        orgs,
        options: options(mode, checkpoint),
        ..Default::default()
    };
    drive(client.sync_github(request), keep).await
}

async fn sync_aws(
    client: &ConnectorsClient,
    mode: SyncMode,
    checkpoint: Vec<u8>,
    keep: usize,
) -> anyhow::Result<Outcome> {
    let request = aws::v1::SyncRequest {
        services: vec!["ecr".into()],
        options: options(mode, checkpoint),
        ..Default::default()
    };
    drive(client.sync_aws(request), keep).await
}

/// The estate's upstream: the replay server answering from code.
async fn upstream(estate: Estate, latency: Duration) -> anyhow::Result<ReplayServer> {
    Ok(ReplayServer::start_synthetic(
        FixtureSet::default(),
        Arc::new(estate),
        ReplayOptions {
            latency,
            ..Default::default()
        },
    )
    .await?)
}

/// A live-mode server whose GitHub and AWS upstreams are `replay`.
struct Server {
    process: Process,
    client: ConnectorsClient,
}

impl Server {
    async fn start(work: &Path, name: &str, env: Vec<(String, String)>) -> anyhow::Result<Self> {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut env = env;
        env.push(("CONNECTORS_LISTEN".into(), addr.to_string()));
        // Telemetry as deployed: the Prometheus endpoint on and the default
        // log level (info), so that their cost is measured too. The
        // bench's own `RUST_LOG` or `CONNECTORS_METRICS_LISTEN` (`off`)
        // reaches the server instead, for experiments.
        let metrics = std::env::var("CONNECTORS_METRICS_LISTEN")
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], free_port())).to_string());
        env.push(("CONNECTORS_METRICS_LISTEN".into(), metrics));
        if let Ok(level) = std::env::var("RUST_LOG") {
            env.push(("RUST_LOG".into(), level));
        }
        let mut process = Process::spawn_self(&["serve"], &env, addr, &work.join(format!("server-{name}.log")))?;
        let client = process.client().await?;
        Ok(Self { process, client })
    }

    /// Live GitHub and AWS against `replay`; the start-up credential checks
    /// (GitHub's GET /user, AWS's STS GetCallerIdentity) are answered before
    /// this returns.
    async fn live(
        work: &Path,
        name: &str,
        replay: &ReplayServer,
        page_size: u32,
        extra: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let base = replay.base_url().to_owned();
        let mut env: Vec<(String, String)> = [
            ("CONNECTORS_MODE", "live".to_owned()),
            ("GITHUB_TOKEN", "bench-not-a-secret".to_owned()),
            ("GITHUB_API_URL", base.clone()),
            ("GITHUB_PAGE_SIZE", page_size.to_string()),
            ("AWS_ACCESS_KEY_ID", "AKIDBENCH".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "bench-not-a-secret".to_owned()),
            ("AWS_ENDPOINT_URL", base),
            ("AWS_REGIONS", "us-east-1".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            // The credential check at start-up only: a later one would be an
            // upstream request in the middle of a measured sync's count.
            ("CONNECTORS_CREDENTIAL_CHECK_SECS", "0".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let before = replay.stats().requests();
        let server = Self::start(work, name, env).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while replay.stats().requests() < before + 2 {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the server did not check its GitHub and AWS credentials"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(server)
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Collects figures, raw data and wrong results.
#[derive(Default)]
struct Run {
    figures: Vec<Figure>,
    raw: serde_json::Map<String, Value>,
    problems: Vec<String>,
}

impl Run {
    fn expect(&mut self, what: &str, got: u64, want: u64) {
        if got != want {
            self.problems.push(format!("{what}: got {got}, expected {want}"));
        }
    }
}

/// Throughput of FULL syncs of one shape against the bare limit, and the
/// no-change INCREMENTAL of the same estate.
async fn throughput(run: &mut Run, settings: &Settings, work: &Path, shape: &str, entities: u64) -> anyhow::Result<()> {
    let (estate, expected, full_requests_expected) = match shape {
        "github" => {
            let g = GithubShape::with_entities(entities);
            (
                Estate {
                    github: Some(g),
                    aws: None,
                },
                g.entities(),
                Some(g.full_requests()),
            )
        }
        _ => {
            let a = AwsShape::with_entities(entities);
            (
                Estate {
                    github: None,
                    aws: Some(a),
                },
                a.entities(),
                None,
            )
        }
    };
    let orgs = estate.github.map(|g| g.org_names()).unwrap_or_default();
    let replay = upstream(estate, Duration::ZERO).await?;
    let server = Server::live(
        work,
        &format!("throughput-{shape}"),
        &replay,
        100,
        &[("CONNECTORS_CACHE_MAX_BYTES", LARGE_CACHE.to_string())],
    )
    .await?;
    let sync = |mode: SyncMode, checkpoint: Vec<u8>, keep: usize| {
        let client = server.client.clone();
        let orgs = orgs.clone();
        async move {
            if shape == "github" {
                sync_github(&client, orgs, mode, checkpoint, keep).await
            } else {
                sync_aws(&client, mode, checkpoint, keep).await
            }
        }
    };

    // The first FULL sync also provides the bare server's sample events.
    let requests_before = replay.stats().requests();
    // The benchmark process's own CPU (the replay server answering, the
    // client reading the stream) is the rest of the machine's work.
    let own_cpu = || crate::procs::cpu_seconds(std::process::id());
    let (cpu_before, own_before) = (server.process.cpu_seconds()?, own_cpu()?);
    let first = sync(SyncMode::Full, Vec::new(), 2_000).await?;
    let first_cpu = server.process.cpu_seconds()? - cpu_before;
    let first_own_cpu = own_cpu()? - own_before;
    let full_requests = replay.stats().requests() - requests_before;
    run.expect(&format!("{shape} FULL sync entities"), first.upserts, expected);
    if let Some(want) = full_requests_expected {
        run.expect(&format!("{shape} FULL sync upstream requests"), full_requests, want);
    }
    let samples = work.join(format!("samples-{shape}.bin"));
    std::fs::write(&samples, crate::bare::write_samples(&first.samples))?;
    let bare_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut bare = Process::spawn_self(
        &[
            "bare",
            "--listen",
            &bare_addr.to_string(),
            "--samples",
            &samples.display().to_string(),
            "--count",
            &first.upserts.to_string(),
            "--sets",
            &settings.reps.to_string(),
        ],
        &[],
        bare_addr,
        &work.join(format!("bare-{shape}.log")),
    )?;
    let bare_client = bare.client().await?;

    let mut real_rates = Vec::new();
    let mut bare_rates = Vec::new();
    let mut ceiling_rates = Vec::new();
    let mut cpu_us_per_entity = Vec::new();
    let mut own_cpu_us_per_entity = Vec::new();
    let mut first_entity_ms = Vec::new();
    let mut last = first;
    for rep in 0..settings.reps {
        if rep > 0 {
            let (cpu_before, own_before) = (server.process.cpu_seconds()?, own_cpu()?);
            let outcome = sync(SyncMode::Full, Vec::new(), 0).await?;
            cpu_us_per_entity.push((server.process.cpu_seconds()? - cpu_before) * 1e6 / expected as f64);
            own_cpu_us_per_entity.push((own_cpu()? - own_before) * 1e6 / expected as f64);
            run.expect(&format!("{shape} FULL sync entities"), outcome.upserts, expected);
            last = outcome;
        } else {
            cpu_us_per_entity.push(first_cpu * 1e6 / expected as f64);
            own_cpu_us_per_entity.push(first_own_cpu * 1e6 / expected as f64);
        }
        real_rates.push(last.per_second());
        first_entity_ms.push(last.first_entity.map(|d| d.as_secs_f64() * 1e3).unwrap_or(f64::NAN));
        let bare_outcome = sync_github(&bare_client, Vec::new(), SyncMode::Full, Vec::new(), 0).await?;
        run.expect(&format!("{shape} bare stream events"), bare_outcome.upserts, expected);
        bare_rates.push(bare_outcome.per_second());
        if let Some(g) = estate.github {
            let fetched = upstream_ceiling(&replay, &g).await?;
            run.expect(
                &format!("{shape} upstream ceiling requests"),
                fetched.requests,
                g.full_requests(),
            );
            ceiling_rates.push(expected as f64 / fetched.seconds.max(1e-9));
        }
    }
    drop(bare);
    let full_rss = server.process.peak_rss()? as f64 / MIB;

    // No-change INCREMENTAL from the last FULL sync's checkpoint.
    let requests_before = replay.stats().requests();
    let incremental = sync(SyncMode::Incremental, last.checkpoint(), 0).await?;
    let incremental_requests = replay.stats().requests() - requests_before;
    run.expect(
        &format!("{shape} no-change INCREMENTAL entities"),
        incremental.upserts + incremental.deletions,
        0,
    );

    let real = median(&mut real_rates.clone());
    let bare_rate = median(&mut bare_rates.clone());
    let (label, key_rate, key_bare, key_ratio, key_req, key_time, key_ent) = if shape == "github" {
        (
            "GitHub-shaped",
            "throughput_github_entities_per_s",
            "throughput_github_bare_per_s",
            "throughput_github_share_of_bare",
            "incremental_github_requests_share",
            "incremental_github_time_share",
            "incremental_github_entities",
        )
    } else {
        (
            "AWS-shaped",
            "throughput_aws_entities_per_s",
            "throughput_aws_bare_per_s",
            "throughput_aws_share_of_bare",
            "incremental_aws_requests_share",
            "incremental_aws_time_share",
            "incremental_aws_entities",
        )
    };
    let by_shape = |github: &'static str, aws: &'static str| if shape == "github" { github } else { aws };
    run.figures.push(Figure::at_least(
        key_rate,
        format!("{label} FULL sync, {expected} entities"),
        real,
        "entities/s",
        100_000.0,
    ));
    run.figures.push(Figure::info(
        key_bare,
        format!("{label} bare tonic limit"),
        bare_rate,
        "entities/s",
    ));
    run.figures.push(Figure::at_least(
        key_ratio,
        format!("{label} FULL sync / bare limit"),
        real / bare_rate,
        "",
        0.40,
    ));
    run.figures.push(Figure::info(
        by_shape(
            "throughput_github_server_cpu_us_per_entity",
            "throughput_aws_server_cpu_us_per_entity",
        ),
        format!("{label} FULL sync: server CPU time per entity"),
        median(&mut cpu_us_per_entity.clone()),
        "µs",
    ));
    run.figures.push(Figure::info(
        by_shape(
            "throughput_github_bench_cpu_us_per_entity",
            "throughput_aws_bench_cpu_us_per_entity",
        ),
        format!("{label} FULL sync: the benchmark's own CPU time per entity (replay server and client)"),
        median(&mut own_cpu_us_per_entity.clone()),
        "µs",
    ));
    if !ceiling_rates.is_empty() {
        let ceiling = median(&mut ceiling_rates.clone());
        run.figures.push(Figure::info(
            "throughput_github_upstream_ceiling_per_s",
            format!(
                "{label} upstream ceiling: its {full_requests} requests by a plain HTTP client, {GITHUB_UPSTREAM_CONCURRENCY} in flight"
            ),
            ceiling,
            "entities/s",
        ));
        run.figures.push(Figure::info(
            "throughput_github_share_of_upstream_ceiling",
            format!("{label} FULL sync / upstream ceiling"),
            real / ceiling,
            "",
        ));
    }
    let request_share = incremental_requests as f64 / full_requests.max(1) as f64;
    if shape == "github" {
        run.figures.push(Figure::at_most(
            key_req,
            format!("{label} no-change INCREMENTAL requests / FULL"),
            request_share,
            "",
            0.10,
        ));
    } else {
        // ECR has no change feed nor ETags: the engine diffs a full refetch.
        run.figures.push(Figure::info(
            key_req,
            format!("{label} no-change INCREMENTAL requests / FULL (no change feed upstream)"),
            request_share,
            "",
        ));
    }
    run.figures.push(Figure::info(
        key_time,
        format!("{label} no-change INCREMENTAL time / FULL"),
        incremental.elapsed.as_secs_f64() / last.elapsed.as_secs_f64().max(1e-9),
        "",
    ));
    run.figures.push(Figure::at_most(
        key_ent,
        format!("{label} no-change INCREMENTAL entities"),
        (incremental.upserts + incremental.deletions) as f64,
        "",
        0.0,
    ));
    run.raw.insert(
        format!("throughput_{shape}"),
        json!({
            "entities": expected,
            "real_entities_per_s": real_rates,
            "bare_entities_per_s": bare_rates,
            "upstream_ceiling_entities_per_s": ceiling_rates,
            "server_cpu_us_per_entity": cpu_us_per_entity,
            "bench_cpu_us_per_entity": own_cpu_us_per_entity,
            "first_entity_ms": first_entity_ms,
            "full_upstream_requests": full_requests,
            "full_seconds": last.elapsed.as_secs_f64(),
            "server_peak_rss_mib": full_rss,
            "incremental_upstream_requests": incremental_requests,
            "incremental_seconds": incremental.elapsed.as_secs_f64(),
            "incremental_upserts": incremental.upserts,
            "incremental_deletions": incremental.deletions,
        }),
    );
    replay.shutdown();
    Ok(())
}

/// The server's GitHub upstream concurrency (`GITHUB_CONCURRENCY`'s default).
const GITHUB_UPSTREAM_CONCURRENCY: usize = 8;

/// Runs the fetcher process (see `fetch.rs`) against `replay`.
async fn upstream_ceiling(replay: &ReplayServer, g: &GithubShape) -> anyhow::Result<crate::fetch::Fetched> {
    let output = tokio::process::Command::new(std::env::current_exe()?)
        .arg("fetch")
        .args(["--base", replay.base_url()])
        .arg("--shape")
        .args([g.orgs, g.repos_per_org, g.manifests_per_repo, g.page_size].map(|n| n.to_string()))
        .args(["--concurrency", &GITHUB_UPSTREAM_CONCURRENCY.to_string()])
        .env_clear()
        .envs(std::env::vars().filter(|(name, _)| name == "PATH" || name.starts_with("MIMALLOC_")))
        .output()
        .await?;
    anyhow::ensure!(
        output.status.success(),
        "the upstream ceiling's fetcher failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// Peak RSS of a fresh server through FULL syncs of `entities` (half
/// GitHub-shaped, half AWS-shaped).
/// Peak RSS of a fresh server during FULL syncs of `entities` entities, then
/// (`VmHWM` again) after no-change INCREMENTAL syncs from their checkpoints,
/// which hold each scope's baseline in memory while they run.
async fn memory(run: &mut Run, work: &Path, entities: u64) -> anyhow::Result<(f64, f64, Value)> {
    let g = GithubShape::with_entities(entities / 2);
    let a = AwsShape::with_entities(entities - g.entities().min(entities));
    let estate = Estate {
        github: Some(g),
        aws: Some(a),
    };
    let replay = upstream(estate, Duration::ZERO).await?;
    let redis = connectors_server::testing::RedisServer::start().ok();
    // The cache out of process (as replicas run it), so that the figure is
    // the server's own memory; without Redis installed, the in-memory cache.
    let mut extra = vec![("CONNECTORS_CACHE_MAX_BYTES", LARGE_CACHE.to_string())];
    if let Some(redis) = &redis {
        extra.push(("REDIS_URL", redis.url()));
    }
    let server = Server::live(work, &format!("memory-{entities}"), &replay, 100, &extra).await?;
    let start_rss = server.process.rss()? as f64 / MIB;
    let started = Instant::now();
    let github = sync_github(&server.client, g.org_names(), SyncMode::Full, Vec::new(), 0).await?;
    run.expect(
        &format!("memory run {entities}: GitHub entities"),
        github.upserts,
        g.entities(),
    );
    let aws = sync_aws(&server.client, SyncMode::Full, Vec::new(), 0).await?;
    run.expect(
        &format!("memory run {entities}: AWS entities"),
        aws.upserts,
        a.entities(),
    );
    let peak = server.process.peak_rss()? as f64 / MIB;
    let total = github.upserts + aws.upserts;
    let seconds = started.elapsed().as_secs_f64();
    let github_incremental = sync_github(
        &server.client,
        g.org_names(),
        SyncMode::Incremental,
        github.checkpoint(),
        0,
    )
    .await?;
    let aws_incremental = sync_aws(&server.client, SyncMode::Incremental, aws.checkpoint(), 0).await?;
    for (what, outcome) in [("GitHub", &github_incremental), ("AWS", &aws_incremental)] {
        run.expect(
            &format!("memory run {entities}: {what} no-change INCREMENTAL changes"),
            outcome.upserts + outcome.deletions,
            0,
        );
    }
    let peak_incremental = server.process.peak_rss()? as f64 / MIB;
    replay.shutdown();
    Ok((
        peak,
        peak_incremental,
        json!({
            "entities": total,
            "cache": if redis.is_some() { "redis" } else { "memory" },
            "start_rss_mib": start_rss,
            "peak_rss_mib": peak,
            "seconds": seconds,
            "peak_rss_after_incremental_mib": peak_incremental,
        }),
    ))
}

/// A many-page GitHub crawl with 50 ms per upstream request.
async fn latency(run: &mut Run, settings: &Settings, work: &Path) -> anyhow::Result<()> {
    let latency = Duration::from_millis(50);
    let concurrency: u64 = 16;
    let shape = if settings.smoke {
        GithubShape {
            orgs: 1,
            repos_per_org: 40,
            manifests_per_repo: 1,
            page_size: 10,
        }
    } else {
        GithubShape {
            orgs: 1,
            repos_per_org: 500,
            manifests_per_repo: 1,
            page_size: 50,
        }
    };
    let replay = upstream(
        Estate {
            github: Some(shape),
            aws: None,
        },
        latency,
    )
    .await?;
    let server = Server::live(
        work,
        "latency",
        &replay,
        shape.page_size,
        &[
            ("GITHUB_CONCURRENCY", concurrency.to_string()),
            ("CONNECTORS_CACHE_MAX_BYTES", LARGE_CACHE.to_string()),
        ],
    )
    .await?;
    let before = replay.stats().requests();
    let outcome = sync_github(&server.client, shape.org_names(), SyncMode::Full, Vec::new(), 0).await?;
    let requests = replay.stats().requests() - before;
    run.expect("latency crawl entities", outcome.upserts, shape.entities());
    run.expect("latency crawl upstream requests", requests, shape.full_requests());
    let l = latency.as_secs_f64();
    // Critical path: no schedule beats the chain of dependent requests, nor
    // the requests divided among `concurrency` slots.
    let bound = (shape.dependent_chain().max(requests.div_ceil(concurrency)) as f64) * l;
    let sequential = requests as f64 * l;
    let took = outcome.elapsed.as_secs_f64();
    run.figures.push(Figure::at_most(
        "latency_time_over_bound",
        format!(
            "50 ms latency: {} pages, {requests} requests, concurrency {concurrency}: time / critical-path bound",
            u64::from(shape.orgs) * u64::from(shape.repos_per_org.div_ceil(shape.page_size))
        ),
        took / bound,
        "",
        1.5,
    ));
    run.figures.push(Figure::at_least(
        "latency_speedup_over_sequential",
        "50 ms latency: sequential crawl time / time",
        sequential / took,
        "x",
        10.0,
    ));
    run.raw.insert(
        "latency".into(),
        json!({
            "latency_ms": 50,
            "concurrency": concurrency,
            "requests": requests,
            "dependent_chain": shape.dependent_chain(),
            "seconds": took,
            "bound_seconds": bound,
            "sequential_seconds": sequential,
        }),
    );
    replay.shutdown();
    Ok(())
}

/// Time to the first entity of FULL syncs on the GitHub fixtures.
async fn time_to_first_entity(run: &mut Run, settings: &Settings, work: &Path) -> anyhow::Result<()> {
    let env = vec![
        ("CONNECTORS_MODE".to_owned(), "fixtures".to_owned()),
        (
            "CONNECTORS_FIXTURES_DIR".to_owned(),
            settings.fixtures.display().to_string(),
        ),
    ];
    let server = Server::start(work, "ttfe", env).await?;
    let runs = if settings.smoke { 3 } else { 11 };
    let mut times = Vec::new();
    for _ in 0..runs {
        let outcome = sync_github(&server.client, Vec::new(), SyncMode::Full, Vec::new(), 0).await?;
        if outcome.upserts == 0 {
            run.problems.push("fixture FULL sync emitted no entity".into());
        }
        times.push(outcome.first_entity.map(|d| d.as_secs_f64() * 1e3).unwrap_or(f64::NAN));
    }
    let mut sorted = times.clone();
    run.figures.push(Figure::below(
        "ttfe_ms",
        format!("time to first entity, FULL sync on the GitHub fixtures (median of {runs})"),
        median(&mut sorted),
        "ms",
        50.0,
    ));
    run.raw.insert("ttfe_ms".into(), json!(times));
    Ok(())
}

/// Runs every measurement; false when a result was wrong or a figure missing.
pub async fn run(settings: Settings) -> anyhow::Result<bool> {
    let work = work_dir(&settings.out);
    std::fs::create_dir_all(&work)?;
    let mut run = Run::default();
    let (throughput_entities, memory_sizes) = if settings.smoke {
        (2_000, [1_000, 10_000])
    } else {
        (200_000, [100_000, 1_000_000])
    };
    for shape in ["github", "aws"] {
        if settings.wants("throughput") || settings.wants(&format!("throughput-{shape}")) {
            eprintln!("== throughput and incremental, {shape}-shaped, {throughput_entities} entities");
            throughput(&mut run, &settings, &work, shape, throughput_entities).await?;
        }
    }
    if settings.wants("memory") {
        // The sizes alternate, `reps` times each; the medians are reported.
        // (One run's peak moves by up to a third: it includes memory freed
        // and not yet returned by the allocator, which varies with timing.)
        let mut runs = [Vec::new(), Vec::new()];
        let mut incremental_runs = [Vec::new(), Vec::new()];
        let mut raws = Vec::new();
        for rep in 1..=settings.reps {
            for (i, size) in memory_sizes.into_iter().enumerate() {
                eprintln!("== memory, {size} entities ({rep}/{})", settings.reps);
                let (peak, peak_incremental, raw) = memory(&mut run, &work, size).await?;
                eprintln!("   peak RSS {peak:.1} MiB; after the INCREMENTAL syncs {peak_incremental:.1} MiB");
                runs[i].push(peak);
                incremental_runs[i].push(peak_incremental);
                raws.push(raw);
            }
        }
        let peaks = runs.map(|mut peaks| median(&mut peaks));
        let incremental_peaks = incremental_runs.map(|mut peaks| median(&mut peaks));
        for (i, size) in memory_sizes.iter().enumerate() {
            run.figures.push(Figure::below(
                if i == 0 {
                    "memory_peak_small_mib"
                } else {
                    "memory_peak_large_mib"
                },
                format!("server peak RSS, FULL syncs of {size} entities (median)"),
                peaks[i],
                "MiB",
                150.0,
            ));
        }
        run.figures.push(Figure::at_most(
            "memory_large_over_small",
            format!("server peak RSS, {} / {} entities", memory_sizes[1], memory_sizes[0]),
            peaks[1] / peaks[0],
            "",
            1.2,
        ));
        for (i, size) in memory_sizes.iter().enumerate() {
            run.figures.push(Figure::info(
                if i == 0 {
                    "memory_incremental_peak_small_mib"
                } else {
                    "memory_incremental_peak_large_mib"
                },
                format!("server peak RSS, then no-change INCREMENTAL syncs of {size} entities (median)"),
                incremental_peaks[i],
                "MiB",
            ));
        }
        run.raw.insert("memory".into(), json!(raws));
    }
    if settings.wants("latency") {
        eprintln!("== latency-bound crawl");
        latency(&mut run, &settings, &work).await?;
    }
    if settings.wants("ttfe") {
        eprintln!("== time to first entity");
        time_to_first_entity(&mut run, &settings, &work).await?;
    }

    for figure in &run.figures {
        if !figure.value.is_finite() {
            run.problems.push(format!("{}: no finite value", figure.name));
        }
    }
    let mode = if settings.smoke { "smoke" } else { "full" };
    println!("{}", table(&run.figures));
    let doc = document(mode, &run.figures, Value::Object(run.raw.clone()));
    if let Some(parent) = settings.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&settings.out, serde_json::to_vec_pretty(&doc)?)?;
    println!("figures written to {}", settings.out.display());
    for problem in &run.problems {
        eprintln!("wrong result: {problem}");
    }
    Ok(run.problems.is_empty())
}
