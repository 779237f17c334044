//! End-to-end tests of the client and `connectorctl` against an in-process
//! fake server, over real gRPC (and a TCP proxy to cut connections).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connectors_client::github::v1::SyncRequest;
use connectors_client::github::v1::github_connector_service_server::{
    GithubConnectorService, GithubConnectorServiceServer,
};
use connectors_client::v1::registry_service_server::{RegistryService, RegistryServiceServer};
use connectors_client::v1::sync_event::Event;
use connectors_client::v1::{
    Checkpoint, Connector, Entity, EntityKind, GetConnectorRequest, GetConnectorResponse, ListConnectorsRequest,
    ListConnectorsResponse, Summary, SyncMode, SyncOptions, Upsert,
};
use connectors_client::{ConnectorsClient, ResumePolicy, SyncEvent};
use futures::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Code, Request, Response, Status};

/// What the fake server does on a Sync stream.
#[derive(Clone, Debug)]
enum Step {
    Send(Box<SyncEvent>),
    Fail(Status),
    /// Keep the stream open, sending nothing.
    Hang,
}

fn send(event: SyncEvent) -> Step {
    Step::Send(Box::new(event))
}

#[derive(Debug)]
struct Seen {
    request: SyncRequest,
    authorization: Option<String>,
}

#[derive(Clone, Default)]
struct FakeGithub {
    script: Arc<Mutex<VecDeque<Vec<Step>>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeGithub {
    fn new(script: Vec<Vec<Step>>) -> Self {
        Self {
            script: Arc::new(Mutex::new(script.into())),
            seen: Arc::default(),
        }
    }

    fn checkpoints(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|seen| {
                let token = seen
                    .request
                    .options
                    .as_ref()
                    .map(|options| options.checkpoint.clone())
                    .unwrap_or_default();
                String::from_utf8(token).unwrap()
            })
            .collect()
    }
}

#[tonic::async_trait]
impl GithubConnectorService for FakeGithub {
    type SyncStream = ReceiverStream<Result<SyncEvent, Status>>;

    async fn sync(&self, request: Request<SyncRequest>) -> Result<Response<Self::SyncStream>, Status> {
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        self.seen.lock().unwrap().push(Seen {
            request: request.into_inner(),
            authorization,
        });
        let steps = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| vec![Step::Fail(Status::internal("unexpected call"))]);
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            for step in steps {
                match step {
                    Step::Send(event) => {
                        if tx.send(Ok(*event)).await.is_err() {
                            return;
                        }
                    }
                    Step::Fail(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                    Step::Hang => {
                        tx.closed().await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

struct FakeRegistry;

fn service_of(id: &str) -> String {
    let mut name = id.to_owned();
    name[..1].make_ascii_uppercase();
    format!("connectors.{id}.v1.{name}ConnectorService")
}

fn connector(id: &str) -> Connector {
    Connector {
        id: id.to_owned(),
        display_name: id.to_uppercase(),
        kinds: vec![EntityKind::Repository as i32],
        service: service_of(id),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl RegistryService for FakeRegistry {
    async fn list_connectors(
        &self,
        _: Request<ListConnectorsRequest>,
    ) -> Result<Response<ListConnectorsResponse>, Status> {
        Ok(Response::new(ListConnectorsResponse {
            connectors: vec![connector("github"), connector("gitlab")],
        }))
    }

    async fn get_connector(
        &self,
        request: Request<GetConnectorRequest>,
    ) -> Result<Response<GetConnectorResponse>, Status> {
        match request.into_inner().id.as_str() {
            "github" => Ok(Response::new(GetConnectorResponse {
                connector: Some(connector("github")),
            })),
            other => Err(Status::not_found(format!("unknown connector {other:?}"))),
        }
    }
}

async fn serve(github: FakeGithub) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_on(listener, github).await
}

async fn serve_on(listener: TcpListener, github: FakeGithub) -> SocketAddr {
    let addr = listener.local_addr().unwrap();
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status(service_of("github"), tonic_health::ServingStatus::Serving)
        .await;
    health
        .set_service_status(service_of("gitlab"), tonic_health::ServingStatus::NotServing)
        .await;
    health
        .set_service_status("connectors.v1.Cache", tonic_health::ServingStatus::Serving)
        .await;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(GithubConnectorServiceServer::new(github))
            .add_service(RegistryServiceServer::new(FakeRegistry))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    addr
}

/// A TCP proxy whose open connections can be cut.
struct Proxy {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let registry = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    let mut outbound = TcpStream::connect(target).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                registry.lock().unwrap().push(task.abort_handle());
            }
        });
        Self { addr, connections }
    }

    /// Drops every open connection (both sides).
    fn cut(&self) {
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

fn upsert(urn: &str) -> SyncEvent {
    SyncEvent {
        event: Some(Event::Upsert(Upsert {
            entity: Some(Entity {
                urn: urn.to_owned(),
                kind: EntityKind::Repository as i32,
                ..Default::default()
            }),
            provenance: None,
        })),
    }
}

fn checkpoint(token: &str) -> SyncEvent {
    SyncEvent {
        event: Some(Event::Checkpoint(Checkpoint {
            token: token.as_bytes().to_vec(),
            scope: "org:acme".to_owned(),
        })),
    }
}

fn summary(token: &str) -> SyncEvent {
    SyncEvent {
        event: Some(Event::Summary(Summary {
            sync_id: "sync-1".to_owned(),
            complete: true,
            checkpoint: token.as_bytes().to_vec(),
            ..Default::default()
        })),
    }
}

fn fast_policy() -> ResumePolicy {
    ResumePolicy::default().with_initial_backoff(Duration::from_millis(10))
}

#[tokio::test]
async fn resumes_after_an_unavailable_status() {
    let github = FakeGithub::new(vec![
        vec![
            send(upsert("r1")),
            send(checkpoint("c1")),
            send(upsert("r2")),
            Step::Fail(Status::unavailable("draining")),
        ],
        vec![send(upsert("r2")), send(checkpoint("c2")), send(summary("s"))],
    ]);
    let addr = serve(github.clone()).await;
    let client = ConnectorsClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
        .with_api_key("k3y")
        .unwrap()
        .with_resume_policy(fast_policy());
    let request = SyncRequest {
        orgs: vec!["acme".to_owned()],
        options: Some(SyncOptions {
            mode: SyncMode::Incremental as i32,
            checkpoint: b"c0".to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut stream = client.sync_github(request);
    let mut events = Vec::new();
    while let Some(event) = stream.next().await {
        events.push(event.unwrap());
    }
    assert_eq!(
        events,
        [
            upsert("r1"),
            checkpoint("c1"),
            upsert("r2"),
            upsert("r2"),
            checkpoint("c2"),
            summary("s")
        ]
    );
    assert_eq!(stream.attempts(), 2);
    assert_eq!(stream.resumes(), 1);
    assert_eq!(stream.checkpoint(), b"s");
    assert_eq!(github.checkpoints(), ["c0", "c1"]);
    for seen in github.seen.lock().unwrap().iter() {
        assert_eq!(seen.authorization.as_deref(), Some("Bearer k3y"));
        assert_eq!(seen.request.orgs, ["acme"]);
        assert_eq!(
            seen.request.options.as_ref().unwrap().mode,
            SyncMode::Incremental as i32
        );
    }
}

#[tokio::test]
async fn resumes_after_the_connection_is_cut() {
    let github = FakeGithub::new(vec![
        vec![send(upsert("r1")), send(checkpoint("c1")), Step::Hang],
        vec![send(upsert("r2")), send(checkpoint("c2")), send(summary("s"))],
    ]);
    let proxy = Proxy::start(serve(github.clone()).await).await;
    let client = ConnectorsClient::connect(format!("http://{}", proxy.addr))
        .await
        .unwrap()
        .with_resume_policy(fast_policy());
    let mut stream = client.sync_github(SyncRequest::default());
    let mut events = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("sync stalled")
    {
        let event = event.unwrap_or_else(|err| panic!("{err:?}"));
        if event == checkpoint("c1") {
            proxy.cut();
        }
        events.push(event);
    }
    assert_eq!(
        events,
        [
            upsert("r1"),
            checkpoint("c1"),
            upsert("r2"),
            checkpoint("c2"),
            summary("s")
        ]
    );
    assert_eq!(github.checkpoints(), ["", "c1"]);
    assert_eq!(stream.resumes(), 1);
    assert_eq!(github.seen.lock().unwrap()[0].authorization, None);
}

#[tokio::test]
async fn non_retryable_status_is_returned() {
    let github = FakeGithub::new(vec![vec![
        send(checkpoint("c1")),
        Step::Fail(Status::invalid_argument("checkpoint issued for another scope")),
    ]]);
    let client = ConnectorsClient::connect(serve(github.clone()).await.to_string())
        .await
        .unwrap();
    let mut stream = client.sync_github(SyncRequest::default());
    assert_eq!(stream.next().await.unwrap().unwrap(), checkpoint("c1"));
    let err = stream.next().await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.to_string(), "INVALID_ARGUMENT: checkpoint issued for another scope");
    assert!(stream.next().await.is_none());
    assert_eq!(stream.attempts(), 1);
}

#[tokio::test]
async fn registry_calls() {
    let addr = serve(FakeGithub::default()).await;
    let client = ConnectorsClient::connect(format!("http://{addr}")).await.unwrap();
    let ids: Vec<String> = client
        .list_connectors()
        .await
        .unwrap()
        .into_iter()
        .map(|connector| connector.id)
        .collect();
    assert_eq!(ids, ["github", "gitlab"]);
    assert_eq!(client.get_connector("github").await.unwrap(), connector("github"));
    let err = client.get_connector("nope").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("connectorctl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn connectorctl(addr: SocketAddr, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_connectorctl"))
        .args(args)
        .env("CONNECTORS_ENDPOINT", format!("http://{addr}"))
        .env_remove("CONNECTORS_API_KEY")
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectorctl_sync_writes_ndjson_and_checkpoints() {
    let github = FakeGithub::new(vec![
        vec![
            send(upsert("r1")),
            send(checkpoint("c1")),
            Step::Fail(Status::unavailable("draining")),
        ],
        vec![send(upsert("r2")), send(checkpoint("c2")), send(summary("s"))],
    ]);
    let addr = serve(github.clone()).await;
    let dir = TempDir::new("sync");
    let checkpoint_file = dir.0.join("github.checkpoint");
    std::fs::write(&checkpoint_file, b"prev").unwrap();

    let output = connectorctl(
        addr,
        &[
            "--api-key",
            "k3y",
            "sync",
            "github",
            "--org",
            "acme",
            "--org",
            "globex",
            "--repo",
            "octo/cat",
            "--mode",
            "incremental",
            "--kind",
            "repository",
            "--kind",
            "sbom",
            "--exclude-forks",
            "--state-key",
            "nightly",
            "--checkpoint-file",
            checkpoint_file.to_str().unwrap(),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stderr, "", "nothing on stderr when it is not a terminal");

    let stdout = String::from_utf8(output.stdout).unwrap();
    let events: Vec<SyncEvent> = stdout.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(
        events,
        [
            upsert("r1"),
            checkpoint("c1"),
            upsert("r2"),
            checkpoint("c2"),
            summary("s")
        ]
    );
    assert_eq!(
        stdout.lines().nth(1).unwrap(),
        r#"{"checkpoint":{"token":"YzE=","scope":"org:acme"}}"#
    );
    assert_eq!(std::fs::read(&checkpoint_file).unwrap(), b"s");
    assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 1, "no temporary file left");

    assert_eq!(github.checkpoints(), ["prev", "c1"]);
    let seen = github.seen.lock().unwrap();
    let request = &seen[0].request;
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer k3y"));
    assert_eq!(request.orgs, ["acme", "globex"]);
    assert_eq!(request.repositories, ["octo/cat"]);
    assert!(request.exclude_forks);
    assert!(!request.exclude_archived);
    let options = request.options.as_ref().unwrap();
    assert_eq!(options.mode, SyncMode::Incremental as i32);
    assert_eq!(options.kinds, [EntityKind::Repository as i32, EntityKind::Sbom as i32]);
    assert_eq!(options.state_key, "nightly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectorctl_sync_exits_3_when_the_summary_says_incomplete() {
    let mut incomplete = summary("s");
    if let Some(Event::Summary(summary)) = &mut incomplete.event {
        summary.complete = false;
        summary.scopes_ok = 1;
        summary.scopes_failed = 2;
    }
    let github = FakeGithub::new(vec![vec![send(checkpoint("c1")), send(incomplete.clone())]]);
    let addr = serve(github).await;
    let dir = TempDir::new("incomplete");
    let checkpoint_file = dir.0.join("cp");
    let output = connectorctl(
        addr,
        &["sync", "github", "--checkpoint-file", checkpoint_file.to_str().unwrap()],
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "connectorctl: sync incomplete: 2 of 3 scopes failed (see their scope_status events)\n"
    );
    assert_eq!(output.status.code(), Some(3));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let events: Vec<SyncEvent> = stdout.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(events, [checkpoint("c1"), incomplete]);
    // The summary's checkpoint is kept: the next run diffs the failed
    // scopes against their last good state.
    assert_eq!(std::fs::read(&checkpoint_file).unwrap(), b"s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectorctl_reports_errors_on_one_line() {
    let github = FakeGithub::new(vec![vec![
        send(checkpoint("c1")),
        Step::Fail(Status::invalid_argument("bad org \"-x\"")),
    ]]);
    let addr = serve(github).await;
    let dir = TempDir::new("error");
    let checkpoint_file = dir.0.join("cp");
    let output = connectorctl(
        addr,
        &["sync", "github", "--checkpoint-file", checkpoint_file.to_str().unwrap()],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "connectorctl: INVALID_ARGUMENT: bad org \"-x\"\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "{\"checkpoint\":{\"token\":\"YzE=\",\"scope\":\"org:acme\"}}\n"
    );
    // The interrupted run can be resumed from its last checkpoint.
    assert_eq!(std::fs::read(&checkpoint_file).unwrap(), b"c1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectorctl_list_and_unreachable_server() {
    let addr = serve(FakeGithub::default()).await;
    let output = connectorctl(addr, &["list"]).await;
    assert!(output.status.success());
    let lines: Vec<Connector> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines, [connector("github"), connector("gitlab")]);

    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let output = connectorctl(closed, &["list"]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("connectorctl: UNAVAILABLE: transport error"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectorctl_sync_waits_for_a_server_that_is_not_up_yet() {
    // A port nobody listens on yet: the server comes up 300 ms after the
    // command started (a restart), within its resume attempts.
    let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let run = tokio::spawn(connectorctl(addr, &["sync", "github"]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let script = vec![send(upsert("urn:github:repo:acme/api")), send(summary("s"))];
    serve_on(TcpListener::bind(addr).await.unwrap(), FakeGithub::new(vec![script])).await;
    let output = run.await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(stdout.contains("urn:github:repo:acme/api"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectorctl_sync_prints_a_table_or_one_json_array() {
    let scope_ok = SyncEvent {
        event: Some(Event::ScopeStatus(connectors_client::v1::ScopeStatus {
            scope: "org:acme".to_owned(),
            state: connectors_client::v1::ScopeState::Ok as i32,
            entities: 2,
            ..Default::default()
        })),
    };
    let script = vec![
        send(upsert("urn:github:repo:acme/api")),
        send(checkpoint("c1")),
        send(upsert("urn:github:repo:acme/web")),
        send(scope_ok.clone()),
        send(summary("s")),
    ];
    let github = FakeGithub::new(vec![script.clone(), script]);
    let addr = serve(github).await;

    let output = connectorctl(addr, &["sync", "github", "--output", "table"]).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!(
            "EVENT         KIND        NAME{}URN\n\
             upsert        repository  {}urn:github:repo:acme/api\n\
             upsert        repository  {}urn:github:repo:acme/web\n\
             scope ok                  2 entities{}org:acme\n\
             \n\
             sync sync-1  mode unspecified  complete true  duration 0.000s\n\
             upserts 0  unchanged 0  deletions 0  scopes ok 0  failed 0  upstream requests 0  cache hits 0\n",
            " ".repeat(38),
            " ".repeat(42),
            " ".repeat(42),
            " ".repeat(32),
        )
    );

    let output = connectorctl(addr, &["sync", "github", "-o", "json"]).await;
    assert!(output.status.success());
    let events: Vec<SyncEvent> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        events,
        [
            upsert("urn:github:repo:acme/api"),
            checkpoint("c1"),
            upsert("urn:github:repo:acme/web"),
            scope_ok,
            summary("s")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectorctl_health_checks_the_server_each_connector_and_the_cache() {
    let addr = serve(FakeGithub::default()).await;
    let output = connectorctl(addr, &["health", "-o", "table"]).await;
    assert_eq!(output.status.code(), Some(1), "gitlab is not serving");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "SERVICE                                      STATUS\n\
         (server)                                     SERVING\n\
         connectors.github.v1.GithubConnectorService  SERVING\n\
         connectors.gitlab.v1.GitlabConnectorService  NOT_SERVING\n\
         connectors.v1.Cache                          SERVING\n"
    );

    let output = connectorctl(addr, &["health", "connectors.github.v1.GithubConnectorService"]).await;
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "{\"service\":\"connectors.github.v1.GithubConnectorService\",\"status\":\"SERVING\"}\n"
    );

    let output = connectorctl(addr, &["health", "connectors.nope.v1.Nope"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "{\"service\":\"connectors.nope.v1.Nope\",\"status\":\"SERVICE_UNKNOWN\"}\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectorctl_diff_compares_two_sync_outputs() {
    let with_hash = |urn: &str, hash: &str| {
        let mut event = upsert(urn);
        if let Some(Event::Upsert(upsert)) = event.event.as_mut() {
            upsert.provenance = Some(connectors_client::v1::Provenance {
                content_hash: hash.to_owned(),
                ..Default::default()
            });
        }
        event
    };
    let github = FakeGithub::new(vec![vec![
        send(with_hash("urn:a", "h1")),
        send(with_hash("urn:b", "h2")),
        send(with_hash("urn:c", "h3")),
        send(summary("s")),
    ]]);
    let addr = serve(github).await;
    let dir = TempDir::new("diff");
    let before = dir.0.join("before.ndjson");
    let output = connectorctl(addr, &["sync", "github"]).await;
    assert!(output.status.success());
    std::fs::write(&before, &output.stdout).unwrap();

    // The later output: b changed, c deleted, d added (as a JSON array).
    let after_events = [
        with_hash("urn:a", "h1"),
        with_hash("urn:b", "h2-new"),
        with_hash("urn:d", "h4"),
    ];
    let after = dir.0.join("after.json");
    std::fs::write(&after, serde_json::to_vec(&after_events).unwrap()).unwrap();

    let diff = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_connectorctl"))
            .arg("diff")
            .args(args)
            .output()
            .unwrap()
    };
    let (before, after) = (before.to_str().unwrap(), after.to_str().unwrap());
    let output = diff(&[before, after]);
    assert_eq!(output.status.code(), Some(1), "they differ");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "{\"change\":\"changed\",\"urn\":\"urn:b\",\"kind\":\"repository\",\"before\":\"h2\",\"after\":\"h2-new\"}\n\
         {\"change\":\"removed\",\"urn\":\"urn:c\",\"kind\":\"repository\",\"before\":\"h3\"}\n\
         {\"change\":\"added\",\"urn\":\"urn:d\",\"kind\":\"repository\",\"after\":\"h4\"}\n"
    );

    let output = diff(&["-o", "table", before, before]);
    assert_eq!(output.status.code(), Some(0), "identical");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "0 added, 0 removed, 0 changed, 3 unchanged\n"
    );

    let missing = dir.0.join("missing.ndjson");
    let output = diff(&[before, missing.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "trouble");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!("connectorctl: UNKNOWN: reading {}: ", missing.display())),
        "{stderr}"
    );
}
