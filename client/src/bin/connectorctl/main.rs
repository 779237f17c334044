//! `connectorctl`: command line client of the connectors service.
//!
//! `connectorctl list` prints the connectors, `connectorctl sync <connector>`
//! streams a sync (NDJSON by default; `--output json` or `table`),
//! `connectorctl health` checks the server's health services and
//! `connectorctl diff A B` compares two sync outputs.
//!
//! Exit status: 0 on success; 1 on an error (or an unhealthy server); for
//! `sync`, 3 when the summary says the sync is incomplete; for `diff`, 1
//! when the outputs differ and 2 on an error.

mod diff;
mod output;

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use connectors_client::github::v1::SyncRequest;
use connectors_client::v1::sync_event::Event;
use connectors_client::v1::{EntityKind, SyncMode, SyncOptions};
use connectors_client::{ConnectorsClient, DEFAULT_ENDPOINT, ResumePolicy, SyncStream, code_name};
use futures::StreamExt;
use tonic::Code;

use crate::output::{EventWriter, Format, JsonSeq, Progress, connectors_table, render_table, to_json, write_flushed};

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
    /// Output format.
    #[arg(long, short, global = true, value_enum, default_value_t = Format::Ndjson)]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the connectors.
    List,
    /// Print one connector.
    Get {
        /// Connector id ("github", ...).
        id: String,
    },
    /// Sync a connector, printing every event as it arrives.
    ///
    /// Exits 0 when the stream ends with a complete summary, 1 on an error
    /// (after the resume attempts), and 3 when the summary says the sync is
    /// incomplete: a scope failed (see its scope_status event); the
    /// summary's checkpoint is saved all the same.
    #[command(subcommand)]
    Sync(SyncCommand),
    /// Check the server's health: the server, each connector's service and
    /// the cache (or only the services named). Exits 1 unless all are SERVING.
    Health {
        /// Health service name, such as connectors.github.v1.GithubConnectorService
        /// ("" is the server as a whole).
        services: Vec<String>,
    },
    /// Compare two sync outputs (files of `connectorctl sync` or grpcurl):
    /// entities added, removed and changed (by content hash) from BEFORE to
    /// AFTER. Exits 0 when they are the same, 1 when they differ, 2 on trouble.
    Diff {
        /// The earlier sync output.
        before: PathBuf,
        /// The later sync output.
        after: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum SyncCommand {
    /// Sync GitHub repositories, dependency manifests and SBOMs.
    Github(GithubArgs),
    /// Sync GitLab projects (as repositories) and their recent pipelines.
    Gitlab(GitlabArgs),
    /// Sync AWS ECR, ECS, EKS and Lambda resources and their tags.
    Aws(AwsArgs),
    /// Sync Azure container registries, AKS clusters and App Service sites (as assets).
    Azure(AzureArgs),
    /// Sync GCP projects: Artifact Registry repositories and docker images,
    /// Cloud Run services and GKE clusters (as assets).
    Gcp(GcpArgs),
    /// Sync Kubernetes Deployments and Pods (as workloads).
    Kubernetes(KubernetesArgs),
    /// Sync the Wiz cloud resource inventory (as assets).
    Wiz(WizArgs),
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
    /// Skip archived repositories.
    #[arg(long)]
    exclude_archived: bool,
    /// Skip forks.
    #[arg(long)]
    exclude_forks: bool,
    #[command(flatten)]
    sync: SyncArgs,
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
    /// Most recent pipelines per project (1 to 100; default: the server's).
    #[arg(long, value_name = "N")]
    pipelines_per_project: Option<u32>,
    /// Also sync child pipelines (started by a parent pipeline's trigger job;
    /// one more listing per project).
    #[arg(long)]
    include_child_pipelines: bool,
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
struct GcpArgs {
    /// Project id to sync (repeatable); without --project the server's
    /// GCP_PROJECT_IDS are synced.
    #[arg(long = "project", value_name = "PROJECT_ID")]
    project_ids: Vec<String>,
    #[command(flatten)]
    sync: SyncArgs,
}

#[derive(Debug, Args)]
struct KubernetesArgs {
    /// Kubeconfig context of the server to sync (repeatable); default: the
    /// server's configured clusters.
    #[arg(long = "context", value_name = "CONTEXT")]
    contexts: Vec<String>,
    /// Namespace (repeatable); default: all namespaces.
    #[arg(long = "namespace", short = 'n', value_name = "NAMESPACE")]
    namespaces: Vec<String>,
    /// Label selector, such as app=web,tier!=cache.
    #[arg(long = "selector", short = 'l', value_name = "SELECTOR")]
    label_selector: Option<String>,
    /// Field selector, such as status.phase=Running.
    #[arg(long, value_name = "SELECTOR")]
    field_selector: Option<String>,
    #[command(flatten)]
    sync: SyncArgs,
}

#[derive(Debug, Args)]
struct WizArgs {
    /// Cloud platform, such as AWS, Azure or GCP (repeatable); default: all.
    #[arg(long = "cloud-platform", value_name = "PLATFORM")]
    cloud_platforms: Vec<String>,
    /// Wiz resource type, such as VIRTUAL_MACHINE (repeatable); default: all.
    #[arg(long = "resource-type", value_name = "TYPE")]
    resource_types: Vec<String>,
    /// Cloud account or subscription id (repeatable); default: all.
    #[arg(long = "subscription", value_name = "ID")]
    subscription_ids: Vec<String>,
    #[command(flatten)]
    sync: SyncArgs,
}

/// Options of every connector's sync.
#[derive(Debug, Args)]
struct SyncArgs {
    /// Sync mode (default: the server's, full).
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// Entity kind to emit (repeatable); default: every kind the connector
    /// has (the server refuses a kind the connector does not have).
    #[arg(long = "kind", value_enum, value_name = "KIND")]
    kinds: Vec<Kind>,
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
    /// The shared `SyncOptions` of a sync command, with the checkpoint of
    /// `--checkpoint-file`.
    fn options(&self) -> Result<Option<SyncOptions>, Failure> {
        Ok(Some(SyncOptions {
            mode: self.mode.map_or(SyncMode::Unspecified, SyncMode::from) as i32,
            checkpoint: read_checkpoint(self.checkpoint_file.as_deref())?,
            kinds: self.kinds.iter().map(|&kind| EntityKind::from(kind) as i32).collect(),
            state_key: self.state_key.clone().unwrap_or_default(),
            shard_index: self.shard.map_or(0, |(index, _)| index),
            shard_count: self.shard.map_or(0, |(_, count)| count),
        }))
    }

    fn policy(&self) -> ResumePolicy {
        ResumePolicy::default().with_max_attempts(self.max_attempts)
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

/// Entity kinds (`--kind`).
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    Repository,
    Manifest,
    Sbom,
    Pipeline,
    Workload,
    Tag,
    Asset,
}

impl From<Kind> for EntityKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Repository => EntityKind::Repository,
            Kind::Manifest => EntityKind::Manifest,
            Kind::Sbom => EntityKind::Sbom,
            Kind::Pipeline => EntityKind::Pipeline,
            Kind::Workload => EntityKind::Workload,
            Kind::Tag => EntityKind::Tag,
            Kind::Asset => EntityKind::Asset,
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

/// How a command that ran ends.
enum Outcome {
    Success,
    /// The command ran and its answer is "no" (unhealthy, or different).
    Negative,
    /// A sync ended with a summary that says it is incomplete: of its
    /// `scopes` scopes, `failed` failed.
    Incomplete {
        failed: u32,
        scopes: u32,
    },
}

/// The exit status of a sync whose summary says it is incomplete (as in the
/// Python and TypeScript examples).
const INCOMPLETE: u8 = 3;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // diff(1) convention for `diff`: 1 means "different", 2 means trouble.
    let trouble = if matches!(cli.command, Command::Diff { .. }) {
        2
    } else {
        1
    };
    match run(cli).await {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Negative) => ExitCode::from(1),
        Ok(Outcome::Incomplete { failed, scopes }) => {
            eprintln!(
                "connectorctl: sync incomplete: {failed} of {scopes} scopes failed (see their scope_status events)"
            );
            ExitCode::from(INCOMPLETE)
        }
        Err(failure) => {
            eprintln!(
                "connectorctl: {}: {}",
                code_name(failure.code),
                failure.message.replace('\n', " ")
            );
            ExitCode::from(trouble)
        }
    }
}

async fn run(cli: Cli) -> Result<Outcome, Failure> {
    let format = cli.output;
    let mut out = io::stdout().lock();
    if let Command::Diff { before, after } = &cli.command {
        let (changes, unchanged) = diff::changes(&diff::read_estate(before)?, &diff::read_estate(after)?);
        let differ = diff::print(&changes, unchanged, format, &mut out)?;
        return Ok(if differ { Outcome::Negative } else { Outcome::Success });
    }
    // A sync connects on its first call, so that a server not up yet (a
    // restart) is retried like a broken stream, under --max-attempts; the
    // other commands make one call and report a connection failure at once.
    let mut client = if matches!(cli.command, Command::Sync(_)) {
        ConnectorsClient::connect_lazy(cli.endpoint)?
    } else {
        ConnectorsClient::connect(cli.endpoint).await?
    };
    if let Some(key) = cli.api_key.filter(|key| !key.is_empty()) {
        client = client.with_api_key(key)?;
    }
    let (stream, sync) = match cli.command {
        Command::Diff { .. } => unreachable!("handled above"),
        Command::List => {
            let connectors = client.list_connectors().await?;
            if format == Format::Table {
                write_flushed(&mut out, &connectors_table(&connectors))?;
            } else {
                let mut seq = JsonSeq::new(&mut out, format);
                for connector in &connectors {
                    seq.push(connector)?;
                }
                seq.finish()?;
            }
            return Ok(Outcome::Success);
        }
        Command::Get { id } => {
            let connector = client.get_connector(id).await?;
            let text = match format {
                Format::Table => connectors_table(std::slice::from_ref(&connector)),
                Format::Json | Format::Ndjson => to_json(&connector)? + "\n",
            };
            write_flushed(&mut out, &text)?;
            return Ok(Outcome::Success);
        }
        Command::Health { services } => return health(&client, services, format, &mut out).await,
        Command::Sync(SyncCommand::Github(args)) => {
            let request = SyncRequest {
                orgs: args.orgs,
                repositories: args.repos,
                exclude_archived: args.exclude_archived,
                exclude_forks: args.exclude_forks,
                options: args.sync.options()?,
            };
            (
                client.with_resume_policy(args.sync.policy()).sync_github(request),
                args.sync,
            )
        }
        Command::Sync(SyncCommand::Gitlab(args)) => {
            let request = connectors_client::gitlab::v1::SyncRequest {
                groups: args.groups,
                projects: args.projects,
                pipelines_per_project: args.pipelines_per_project.unwrap_or(0),
                include_child_pipelines: args.include_child_pipelines,
                options: args.sync.options()?,
            };
            (
                client.with_resume_policy(args.sync.policy()).sync_gitlab(request),
                args.sync,
            )
        }
        Command::Sync(SyncCommand::Aws(args)) => {
            let request = connectors_client::aws::v1::SyncRequest {
                account_ids: args.accounts,
                regions: args.regions,
                services: args.services,
                options: args.sync.options()?,
            };
            (
                client.with_resume_policy(args.sync.policy()).sync_aws(request),
                args.sync,
            )
        }
        Command::Sync(SyncCommand::Azure(args)) => {
            let request = connectors_client::azure::v1::SyncRequest {
                subscription_ids: args.subscription_ids,
                options: args.sync.options()?,
            };
            (
                client.with_resume_policy(args.sync.policy()).sync_azure(request),
                args.sync,
            )
        }
        Command::Sync(SyncCommand::Gcp(args)) => {
            let request = connectors_client::gcp::v1::SyncRequest {
                project_ids: args.project_ids,
                options: args.sync.options()?,
            };
            (
                client.with_resume_policy(args.sync.policy()).sync_gcp(request),
                args.sync,
            )
        }
        Command::Sync(SyncCommand::Kubernetes(args)) => {
            let request = connectors_client::kubernetes::v1::SyncRequest {
                contexts: args.contexts,
                namespaces: args.namespaces,
                label_selector: args.label_selector.unwrap_or_default(),
                field_selector: args.field_selector.unwrap_or_default(),
                options: args.sync.options()?,
            };
            (
                client.with_resume_policy(args.sync.policy()).sync_kubernetes(request),
                args.sync,
            )
        }
        Command::Sync(SyncCommand::Wiz(args)) => {
            let request = connectors_client::wiz::v1::SyncRequest {
                cloud_platforms: args.cloud_platforms,
                resource_types: args.resource_types,
                subscription_ids: args.subscription_ids,
                options: args.sync.options()?,
            };
            (
                client.with_resume_policy(args.sync.policy()).sync_wiz(request),
                args.sync,
            )
        }
    };
    write_sync(stream, format, &mut out, sync.checkpoint_file.as_deref()).await
}

/// `connectorctl health`: checks `services`, or the server (""), every
/// connector's service and the cache.
async fn health(
    client: &ConnectorsClient,
    mut services: Vec<String>,
    format: Format,
    out: &mut impl Write,
) -> Result<Outcome, Failure> {
    if services.is_empty() {
        services.push(String::new());
        services.extend(client.list_connectors().await?.into_iter().map(|c| c.service));
        services.push("connectors.v1.Cache".to_owned());
    }
    #[derive(serde::Serialize)]
    struct Row<'a> {
        service: &'a str,
        status: &'a str,
    }
    let mut statuses = Vec::with_capacity(services.len());
    for service in &services {
        let status = match client.health(service.clone()).await {
            Ok(status) => status.as_str_name(),
            Err(err) if err.code() == Code::NotFound => "SERVICE_UNKNOWN",
            Err(err) => return Err(err.into()),
        };
        statuses.push(Row { service, status });
    }
    let healthy = statuses.iter().all(|row| row.status == "SERVING");
    if format == Format::Table {
        let mut rows = vec![vec!["SERVICE".to_owned(), "STATUS".to_owned()]];
        rows.extend(statuses.iter().map(|row| {
            let service = if row.service.is_empty() {
                "(server)"
            } else {
                row.service
            };
            vec![service.to_owned(), row.status.to_owned()]
        }));
        write_flushed(out, &render_table(&rows))?;
    } else {
        let mut seq = JsonSeq::new(out, format);
        for row in &statuses {
            seq.push(row)?;
        }
        seq.finish()?;
    }
    Ok(if healthy { Outcome::Success } else { Outcome::Negative })
}

/// Writes every event of `stream` on `out` in `format`, saves checkpoints to
/// `checkpoint_file` and draws the progress bar; succeeds on the summary
/// (incomplete if the summary says so).
async fn write_sync(
    mut stream: SyncStream,
    format: Format,
    out: &mut impl Write,
    checkpoint_file: Option<&Path>,
) -> Result<Outcome, Failure> {
    let mut progress = Progress::new(io::stderr().is_terminal());
    let mut writer = EventWriter::new(out, format);
    let mut saved = Vec::new();
    let result = loop {
        let Some(item) = stream.next().await else {
            break Err(Failure {
                code: Code::Unavailable,
                message: "sync stream ended without a summary".to_owned(),
            });
        };
        let event = match item {
            Ok(event) => event,
            Err(err) => break Err(err.into()),
        };
        if let Err(failure) = writer.write(&event) {
            break Err(failure);
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
            if let Err(err) = write_atomically(path, token) {
                break Err(Failure::io(format!("writing {}", path.display()), err));
            }
            saved = token.to_vec();
        }
        progress.observe(&event, stream.resumes());
        if let Some(Event::Summary(summary)) = &event.event {
            break Ok(if summary.complete {
                Outcome::Success
            } else {
                Outcome::Incomplete {
                    failed: summary.scopes_failed,
                    scopes: summary.scopes_ok + summary.scopes_failed,
                }
            });
        }
    };
    progress.finish(stream.resumes());
    writer.finish()?;
    result
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
