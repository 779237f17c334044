//! `connectorctl`: command line client of the connectors service.
//!
//! `connectorctl list` prints the connectors and `connectorctl sync github`
//! (or `sync gitlab`) streams a sync, both as proto3 JSON, one object per line.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use connectors_client::github::v1::SyncRequest;
use connectors_client::v1::sync_event::Event;
use connectors_client::v1::{EntityKind, SyncEvent, SyncMode, SyncOptions};
use connectors_client::{ConnectorsClient, DEFAULT_ENDPOINT, ResumePolicy, SyncStream, code_name};
use futures::StreamExt;
use tonic::Code;

/// Command line client of the connectors service.
#[derive(Debug, Parser)]
#[command(name = "connectorctl", version)]
struct Cli {
    /// Server address.
    #[arg(long, global = true, env = "CONNECTORS_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    endpoint: String,
    /// API key, sent as `authorization: Bearer <key>`.
    #[arg(long, global = true, env = "CONNECTORS_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the connectors, one proto3 JSON object per line.
    List,
    /// Print one connector as proto3 JSON.
    Get {
        /// Connector id ("github", ...).
        id: String,
    },
    /// Sync a connector, printing every event as one line of proto3 JSON.
    #[command(subcommand)]
    Sync(SyncCommand),
}

#[derive(Debug, Subcommand)]
enum SyncCommand {
    /// Sync GitHub repositories, dependency manifests and SBOMs.
    Github(GithubArgs),
    /// Sync GitLab projects (as repositories) and their recent pipelines.
    Gitlab(GitlabArgs),
    /// Sync GCP projects: Artifact Registry repositories and docker images,
    /// Cloud Run services and GKE clusters (as assets).
    Gcp(GcpArgs),
    /// Sync Azure container registries, AKS clusters and App Service sites (as assets).
    Azure(AzureArgs),
    /// Sync AWS ECR, ECS, EKS and Lambda resources and their tags.
    Aws(AwsArgs),
}

#[derive(Debug, Args)]
struct GcpArgs {
    /// Project id to sync (repeatable); without --project the server's
    /// GCP_PROJECT_IDS are synced.
    #[arg(long = "project", value_name = "PROJECT_ID")]
    project_ids: Vec<String>,
    #[command(flatten)]
    sync: SyncArgs,
}

#[derive(Debug, Args)]
struct AzureArgs {
    /// Subscription id (a GUID) to sync (repeatable); without it the server's
    /// default subscriptions are synced.
    #[arg(long = "subscription", value_name = "SUBSCRIPTION_ID")]
    subscription_ids: Vec<String>,
    #[command(flatten)]
    sync: SyncArgs,
}

#[derive(Debug, Args)]
struct AwsArgs {
    /// Account id configured in the server's AWS_ACCOUNTS (repeatable);
    /// default: every configured account.
    #[arg(long = "account", value_name = "ID")]
    accounts: Vec<String>,
    /// Region, such as us-east-1 (repeatable); default: the server's regions.
    #[arg(long = "region", value_name = "REGION")]
    regions: Vec<String>,
    /// Service: ecr, ecs, eks, lambda or tagging (repeatable); default: all.
    #[arg(long = "service", value_name = "SERVICE")]
    services: Vec<String>,
    /// Entity kind to emit (repeatable); default: every kind.
    #[arg(long = "kind", value_enum, value_name = "KIND")]
    kinds: Vec<AwsKind>,
    #[command(flatten)]
    sync: SyncArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum AwsKind {
    Asset,
    Tag,
}

impl From<AwsKind> for EntityKind {
    fn from(kind: AwsKind) -> Self {
        match kind {
            AwsKind::Asset => EntityKind::Asset,
            AwsKind::Tag => EntityKind::Tag,
        }
    }
}

#[derive(Debug, Args)]
struct GitlabArgs {
    /// Group full path to sync, subgroups included (repeatable); with neither
    /// --group nor --project the server's default scope is synced.
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// Project to sync, as its full path namespace/project (repeatable).
    #[arg(long = "project", value_name = "NAMESPACE/PROJECT")]
    projects: Vec<String>,
    /// Entity kind to emit (repeatable); default: every kind.
    #[arg(long = "kind", value_enum, value_name = "KIND")]
    kinds: Vec<GitlabKind>,
    /// Most recent pipelines per project (1 to 100; default: the server's).
    #[arg(long, value_name = "N")]
    pipelines_per_project: Option<u32>,
    #[command(flatten)]
    sync: SyncArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum GitlabKind {
    Repository,
    Pipeline,
}

impl From<GitlabKind> for EntityKind {
    fn from(kind: GitlabKind) -> Self {
        match kind {
            GitlabKind::Repository => EntityKind::Repository,
            GitlabKind::Pipeline => EntityKind::Pipeline,
        }
    }
}

#[derive(Debug, Args)]
struct GithubArgs {
    /// Organization to sync (repeatable); with neither --org nor --repo the
    /// server's default scope is synced.
    #[arg(long = "org", value_name = "ORG")]
    orgs: Vec<String>,
    /// Repository to sync, as owner/name (repeatable).
    #[arg(long = "repo", value_name = "OWNER/NAME")]
    repos: Vec<String>,
    /// Entity kind to emit (repeatable); default: every kind.
    #[arg(long = "kind", value_enum, value_name = "KIND")]
    kinds: Vec<GithubKind>,
    /// Skip archived repositories.
    #[arg(long)]
    exclude_archived: bool,
    /// Skip forks.
    #[arg(long)]
    exclude_forks: bool,
    #[command(flatten)]
    sync: SyncArgs,
}

/// Options of every connector's sync.
#[derive(Debug, Args)]
struct SyncArgs {
    /// Sync mode (default: the server's, full).
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// File holding the checkpoint: read (if it exists) to resume or to sync
    /// incrementally, and rewritten after every checkpoint and the summary.
    #[arg(long, value_name = "PATH")]
    checkpoint_file: Option<PathBuf>,
    /// Key under which the server keeps this sync's latest checkpoint.
    #[arg(long, value_name = "K")]
    state_key: Option<String>,
    /// Sync only shard I of N of the request's scopes ("I/N", 0-based); the N
    /// shards are disjoint and together make the whole request.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<(u32, u32)>,
    /// How many times in a row to resume a broken stream before giving up.
    #[arg(long, value_name = "N", default_value_t = ResumePolicy::DEFAULT_MAX_ATTEMPTS)]
    max_attempts: u32,
}

impl SyncArgs {
    /// The shared `SyncOptions` of a sync command.
    fn options(&self, checkpoint: Vec<u8>, kinds: impl Iterator<Item = EntityKind>) -> SyncOptions {
        SyncOptions {
            mode: self.mode.map_or(SyncMode::Unspecified, SyncMode::from) as i32,
            checkpoint,
            kinds: kinds.map(|kind| kind as i32).collect(),
            state_key: self.state_key.clone().unwrap_or_default(),
            shard_index: self.shard.map_or(0, |(index, _)| index),
            shard_count: self.shard.map_or(0, |(_, count)| count),
        }
    }
}

/// Parses "I/N" with I < N.
fn parse_shard(value: &str) -> Result<(u32, u32), String> {
    let (index, count) = value.split_once('/').ok_or("expected I/N, for example 0/4")?;
    let index: u32 = index.trim().parse().map_err(|_| format!("{index:?} is not a number"))?;
    let count: u32 = count.trim().parse().map_err(|_| format!("{count:?} is not a number"))?;
    if count == 0 || index >= count {
        return Err(format!("shard {index} is not one of 0..{count}"));
    }
    Ok((index, count))
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    Full,
    Incremental,
}

impl From<Mode> for SyncMode {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Full => SyncMode::Full,
            Mode::Incremental => SyncMode::Incremental,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum GithubKind {
    Repository,
    Manifest,
    Sbom,
}

impl From<GithubKind> for EntityKind {
    fn from(kind: GithubKind) -> Self {
        match kind {
            GithubKind::Repository => EntityKind::Repository,
            GithubKind::Manifest => EntityKind::Manifest,
            GithubKind::Sbom => EntityKind::Sbom,
        }
    }
}

/// A failure, reported as `connectorctl: <CODE>: <message>`.
#[derive(Debug)]
struct Failure {
    code: Code,
    message: String,
}

impl Failure {
    fn io(context: impl std::fmt::Display, err: io::Error) -> Self {
        Self {
            code: Code::Unknown,
            message: format!("{context}: {err}"),
        }
    }
}

impl From<connectors_client::Error> for Failure {
    fn from(err: connectors_client::Error) -> Self {
        Self {
            code: err.code(),
            message: err.message(),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!(
                "connectorctl: {}: {}",
                code_name(failure.code),
                failure.message.replace('\n', " ")
            );
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let mut client = ConnectorsClient::connect(cli.endpoint).await?;
    if let Some(key) = cli.api_key.filter(|key| !key.is_empty()) {
        client = client.with_api_key(key)?;
    }
    let mut out = io::stdout().lock();
    match cli.command {
        Command::List => {
            for connector in client.list_connectors().await? {
                write_json_line(&mut out, serde_json::to_string(&connector))?;
            }
            Ok(())
        }
        Command::Get { id } => {
            let connector = client.get_connector(id).await?;
            write_json_line(&mut out, serde_json::to_string(&connector))
        }
        Command::Sync(SyncCommand::Github(args)) => {
            let checkpoint = read_checkpoint(args.sync.checkpoint_file.as_deref())?;
            let request = SyncRequest {
                orgs: args.orgs,
                repositories: args.repos,
                exclude_archived: args.exclude_archived,
                exclude_forks: args.exclude_forks,
                options: Some(
                    args.sync
                        .options(checkpoint, args.kinds.into_iter().map(EntityKind::from)),
                ),
            };
            let client = client.with_resume_policy(ResumePolicy::default().with_max_attempts(args.sync.max_attempts));
            let stream = client.sync_github(request);
            write_sync(stream, &mut out, args.sync.checkpoint_file.as_deref()).await
        }
        Command::Sync(SyncCommand::Gitlab(args)) => {
            let checkpoint = read_checkpoint(args.sync.checkpoint_file.as_deref())?;
            let request = connectors_client::gitlab::v1::SyncRequest {
                groups: args.groups,
                projects: args.projects,
                pipelines_per_project: args.pipelines_per_project.unwrap_or(0),
                options: Some(
                    args.sync
                        .options(checkpoint, args.kinds.into_iter().map(EntityKind::from)),
                ),
            };
            let client = client.with_resume_policy(ResumePolicy::default().with_max_attempts(args.sync.max_attempts));
            let stream = client.sync_gitlab(request);
            write_sync(stream, &mut out, args.sync.checkpoint_file.as_deref()).await
        }
        Command::Sync(SyncCommand::Gcp(args)) => {
            let checkpoint = read_checkpoint(args.sync.checkpoint_file.as_deref())?;
            let request = connectors_client::gcp::v1::SyncRequest {
                project_ids: args.project_ids,
                options: Some(args.sync.options(checkpoint, std::iter::empty())),
            };
            let client = client.with_resume_policy(ResumePolicy::default().with_max_attempts(args.sync.max_attempts));
            let stream = client.sync_gcp(request);
            write_sync(stream, &mut out, args.sync.checkpoint_file.as_deref()).await
        }
        Command::Sync(SyncCommand::Azure(args)) => {
            let checkpoint = read_checkpoint(args.sync.checkpoint_file.as_deref())?;
            let request = connectors_client::azure::v1::SyncRequest {
                subscription_ids: args.subscription_ids,
                options: Some(args.sync.options(checkpoint, std::iter::empty())),
            };
            let client = client.with_resume_policy(ResumePolicy::default().with_max_attempts(args.sync.max_attempts));
            let stream = client.sync_azure(request);
            write_sync(stream, &mut out, args.sync.checkpoint_file.as_deref()).await
        }
        Command::Sync(SyncCommand::Aws(args)) => {
            let checkpoint = read_checkpoint(args.sync.checkpoint_file.as_deref())?;
            let request = connectors_client::aws::v1::SyncRequest {
                account_ids: args.accounts,
                regions: args.regions,
                services: args.services,
                options: Some(
                    args.sync
                        .options(checkpoint, args.kinds.into_iter().map(EntityKind::from)),
                ),
            };
            let client = client.with_resume_policy(ResumePolicy::default().with_max_attempts(args.sync.max_attempts));
            let stream = client.sync_aws(request);
            write_sync(stream, &mut out, args.sync.checkpoint_file.as_deref()).await
        }
    }
}

/// Writes every event of `stream` on `out`, saves checkpoints to
/// `checkpoint_file` and draws the progress line; succeeds on the summary.
async fn write_sync(
    mut stream: SyncStream,
    out: &mut impl Write,
    checkpoint_file: Option<&Path>,
) -> Result<(), Failure> {
    let mut progress = ProgressLine::new(io::stderr().is_terminal());
    let mut saved = Vec::new();
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(event) => event,
            Err(err) => {
                progress.finish(stream.resumes());
                return Err(err.into());
            }
        };
        if let Err(failure) = write_json_line(out, serde_json::to_string(&event)) {
            progress.finish(stream.resumes());
            return Err(failure);
        }
        // The checkpoint is saved only once its event is written, so the file
        // never runs ahead of what the reader of stdout has seen.
        let token = match &event.event {
            Some(Event::Checkpoint(checkpoint)) => checkpoint.token.as_slice(),
            Some(Event::Summary(summary)) => summary.checkpoint.as_slice(),
            _ => &[],
        };
        if let Some(path) = checkpoint_file
            && !token.is_empty()
            && token != saved.as_slice()
        {
            write_atomically(path, token).map_err(|err| Failure::io(format!("writing {}", path.display()), err))?;
            saved = token.to_vec();
        }
        progress.observe(&event, stream.resumes());
        if matches!(event.event, Some(Event::Summary(_))) {
            progress.finish(stream.resumes());
            return Ok(());
        }
    }
    progress.finish(stream.resumes());
    Err(Failure {
        code: Code::Unavailable,
        message: "sync stream ended without a summary".to_owned(),
    })
}

/// Writes `json` (a message encoded with `serde_json::to_string`, which gives
/// proto3 JSON) as one line and flushes it.
fn write_json_line(out: &mut impl Write, json: serde_json::Result<String>) -> Result<(), Failure> {
    let mut line = json.map_err(|err| Failure {
        code: Code::Internal,
        message: format!("encoding json: {err}"),
    })?;
    line.push('\n');
    out.write_all(line.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|err| Failure::io("writing stdout", err))
}

/// The checkpoint saved in `path`, empty if there is no such file.
fn read_checkpoint(path: Option<&Path>) -> Result<Vec<u8>, Failure> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    match std::fs::read(path) {
        Ok(token) => Ok(token),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(Failure::io(format!("reading {}", path.display()), err)),
    }
}

/// Replaces `path` with `contents` atomically: a crash leaves the old or the
/// new checkpoint, never a torn one.
fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{}.tmp", std::process::id()));
    let temp = path.with_file_name(temp_name);
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        // Best effort: the temporary file is useless now.
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// The single updating progress line drawn on stderr when it is a terminal.
struct ProgressLine {
    enabled: bool,
    drawn: bool,
    started: Instant,
    last_draw: Option<Instant>,
    upserts: u64,
    deletions: u64,
    scopes_done: u32,
    scopes_total: u32,
    entities_per_second: Option<f64>,
}

impl ProgressLine {
    const INTERVAL: Duration = Duration::from_millis(100);

    fn new(enabled: bool) -> Self {
        Self {
            enabled,
            drawn: false,
            started: Instant::now(),
            last_draw: None,
            upserts: 0,
            deletions: 0,
            scopes_done: 0,
            scopes_total: 0,
            entities_per_second: None,
        }
    }

    fn observe(&mut self, event: &SyncEvent, resumes: u32) {
        if !self.enabled {
            return;
        }
        match &event.event {
            Some(Event::Upsert(_)) => self.upserts += 1,
            Some(Event::Deletion(_)) => self.deletions += 1,
            Some(Event::Progress(progress)) => {
                self.scopes_done = progress.scopes_done;
                self.scopes_total = progress.scopes_total;
                if progress.entities_per_second > 0.0 {
                    self.entities_per_second = Some(progress.entities_per_second);
                }
            }
            _ => return,
        }
        let now = Instant::now();
        if self
            .last_draw
            .is_none_or(|last| now.duration_since(last) >= Self::INTERVAL)
        {
            self.last_draw = Some(now);
            self.draw(resumes);
        }
    }

    fn draw(&mut self, resumes: u32) {
        let rate = self.entities_per_second.unwrap_or_else(|| {
            let seconds = self.started.elapsed().as_secs_f64();
            if seconds > 0.0 {
                (self.upserts + self.deletions) as f64 / seconds
            } else {
                0.0
            }
        });
        let mut line = format!(
            "\rupserts {}  deletions {}  scopes {}/{}  {:.1} entities/s",
            self.upserts, self.deletions, self.scopes_done, self.scopes_total, rate
        );
        if resumes > 0 {
            line.push_str(&format!("  resumes {resumes}"));
        }
        line.push_str("\x1b[K");
        let mut err = io::stderr().lock();
        // The progress line is best effort: a failing stderr must not fail the sync.
        let _ = err.write_all(line.as_bytes()).and_then(|()| err.flush());
        self.drawn = true;
    }

    /// Draws the final figures and ends the line.
    fn finish(&mut self, resumes: u32) {
        if !self.enabled {
            return;
        }
        self.draw(resumes);
        if self.drawn {
            let _ = writeln!(io::stderr());
            self.drawn = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_shard;

    #[test]
    fn shards_parse_as_index_of_count() {
        assert_eq!(parse_shard("0/4"), Ok((0, 4)));
        assert_eq!(parse_shard("3/4"), Ok((3, 4)));
        assert_eq!(parse_shard("4/4"), Err("shard 4 is not one of 0..4".to_owned()));
        assert_eq!(parse_shard("1/0"), Err("shard 1 is not one of 0..0".to_owned()));
        assert_eq!(parse_shard("x/4"), Err("\"x\" is not a number".to_owned()));
        assert_eq!(parse_shard("2"), Err("expected I/N, for example 0/4".to_owned()));
    }
}
