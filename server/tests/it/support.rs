//! Starting servers for tests.

use std::sync::Once;

use connectors_client::ConnectorsClient;
use connectors_proto::v1::{SyncEvent, sync_event::Event};
use connectors_server::config::Config;
use connectors_server::server::{RunningServer, start};

static TRACING: Once = Once::new();

fn init_tracing() {
    TRACING.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .with_test_writer()
            .try_init();
    });
}

/// A server in fixture mode on an ephemeral loopback port, and a client for it.
pub struct TestServer {
    pub server: RunningServer,
    pub client: ConnectorsClient,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with_config(Config::for_tests()).await
    }

    /// A server whose client the test makes itself (TLS); `client` is lazy and unusable.
    pub async fn start_without_client(config: Config) -> Self {
        init_tracing();
        let server = start(config).await.expect("server starts");
        let client = ConnectorsClient::connect_lazy(server.endpoint()).expect("lazy client");
        Self { server, client }
    }

    pub async fn with_config(config: Config) -> Self {
        init_tracing();
        let server = start(config).await.expect("server starts");
        let client = ConnectorsClient::connect(server.endpoint())
            .await
            .expect("client connects");
        Self { server, client }
    }

    /// Waits (up to 10 s) until the health of `service` is `expected`.
    pub async fn wait_for_health(
        &self,
        service: &str,
        expected: tonic_health::pb::health_check_response::ServingStatus,
    ) {
        let mut health = tonic_health::pb::health_client::HealthClient::new(self.client.channel().clone());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let request = tonic_health::pb::HealthCheckRequest {
                service: service.to_owned(),
            };
            let status = health.check(request).await.unwrap().into_inner().status;
            if status == expected as i32 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{service} stayed {status}, not {expected:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Requests the fixture replay server of `connector` received.
    pub fn upstream_requests(&self, connector: &str) -> u64 {
        self.server.replay(connector).expect("fixture mode").stats().requests()
    }

    /// Requests no fixture matched (must stay empty).
    pub fn unmatched(&self, connector: &str) -> Vec<String> {
        self.server
            .replay(connector)
            .expect("fixture mode")
            .unmatched_requests()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.shutdown();
    }
}

/// (urn, content_hash) of every upsert, in order.
pub fn upserts(events: &[SyncEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Upsert(u)) => Some((
                u.entity.as_ref()?.urn.clone(),
                u.provenance.as_ref()?.content_hash.clone(),
            )),
            _ => None,
        })
        .collect()
}

/// Urns of every deletion, in order.
pub fn deletions(events: &[SyncEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Deletion(d)) => Some(d.urn.clone()),
            _ => None,
        })
        .collect()
}

/// The summary, asserting it is the only one and the last event.
pub fn summary(events: &[SyncEvent]) -> connectors_proto::v1::Summary {
    let count = events
        .iter()
        .filter(|e| matches!(e.event, Some(Event::Summary(_))))
        .count();
    assert_eq!(count, 1, "exactly one summary");
    match events.last().and_then(|e| e.event.clone()) {
        Some(Event::Summary(s)) => s,
        other => panic!("last event is not the summary: {other:?}"),
    }
}

/// Scope statuses (scope, state).
pub fn scope_statuses(events: &[SyncEvent]) -> Vec<(String, i32)> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::ScopeStatus(s)) => Some((s.scope.clone(), s.state)),
            _ => None,
        })
        .collect()
}

/// The scopes that did not end OK, with their reason and error message.
pub fn scope_errors(events: &[SyncEvent]) -> Vec<(String, String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::ScopeStatus(s)) if !s.error.is_empty() => {
                Some((s.scope.clone(), s.reason.clone(), s.error.clone()))
            }
            _ => None,
        })
        .collect()
}

/// A client of a server process on `port`, once it listens (30 s at most).
pub async fn connect_when_listening(port: u16) -> ConnectorsClient {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Ok(client) = ConnectorsClient::connect(format!("http://127.0.0.1:{port}")).await {
            return client;
        }
        assert!(std::time::Instant::now() < deadline, "server did not listen");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Sends SIGTERM to a server process and waits for it to exit (30 s at most).
pub async fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            return exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server did not exit after SIGTERM"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The server binary in fixture mode on `port`, metrics off, without Redis.
pub fn fixture_server(port: u16) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_connectors-server"));
    command
        .env("CONNECTORS_LISTEN", format!("127.0.0.1:{port}"))
        .env("CONNECTORS_METRICS_LISTEN", "off")
        .env("CONNECTORS_MODE", "fixtures")
        .env(
            "CONNECTORS_FIXTURES_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures"),
        )
        .env_remove("REDIS_URL");
    command
}

/// The server binary listening on `listen`, metrics off, on the source
/// tree's fixtures, with nothing of this environment but PATH.
fn isolated_server(listen: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_connectors-server"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CONNECTORS_LISTEN", listen)
        .env("CONNECTORS_METRICS_LISTEN", "off")
        .env(
            "CONNECTORS_FIXTURES_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures"),
        );
    command
}

/// The exit code and standard error of the server binary started in fixture
/// mode with `vars` and nothing else of the environment but PATH, for
/// configurations that stop it. A server still running after 15 s is killed
/// (exit code `None`).
pub fn start_with_env<K: AsRef<std::ffi::OsStr>, V: AsRef<std::ffi::OsStr>>(vars: &[(K, V)]) -> (Option<i32>, String) {
    use std::io::Read as _;

    let mut child = isolated_server("127.0.0.1:0")
        .env("CONNECTORS_MODE", "fixtures")
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn connectors-server");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (code, stderr.trim().to_owned())
}

/// A server process, killed when dropped.
pub struct ServerProcess(pub std::process::Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server binary on a free loopback port, metrics off, with `vars` and
/// nothing else of the environment but PATH, and a client once it listens.
/// Panics with the server's standard error if it exits instead.
pub async fn serve_with_env(vars: &[(&str, &str)]) -> (ServerProcess, ConnectorsClient) {
    let port = connectors_server::testing::free_port();
    let log = std::env::temp_dir().join(format!("connectors-server-{}.log", uuid::Uuid::new_v4()));
    let child = isolated_server(&format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .envs(vars.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn connectors-server");
    let mut process = ServerProcess(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Ok(client) = ConnectorsClient::connect(format!("http://127.0.0.1:{port}")).await {
            let _ = std::fs::remove_file(&log);
            return (process, client);
        }
        if let Some(status) = process.0.try_wait().unwrap() {
            let stderr = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = std::fs::remove_file(&log);
            panic!("the server exited ({status}) instead of serving:\n{stderr}");
        }
        assert!(std::time::Instant::now() < deadline, "server did not listen");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `id`'s availability as ListConnectors reports it, with its auth mode when
/// live and its reason otherwise.
pub async fn availability_of(
    client: &ConnectorsClient,
    id: &str,
) -> (connectors_proto::v1::ConnectorAvailability, String) {
    use connectors_proto::v1::ConnectorAvailability;

    let entry = client.get_connector(id).await.unwrap();
    let availability = ConnectorAvailability::try_from(entry.availability).unwrap();
    match availability {
        ConnectorAvailability::Live => (availability, entry.auth_mode),
        _ => (availability, entry.reason),
    }
}

/// A FULL GitHub sync of the default scope through `client`, read to its end.
pub async fn github_full_sync(client: &ConnectorsClient) -> Vec<SyncEvent> {
    let request = connectors_proto::github::v1::SyncRequest {
        options: Some(crate::conformance::full()),
        ..Default::default()
    };
    crate::conformance::collect(client.github().sync(request).await.map(|r| r.into_inner())).await
}

/// A TCP proxy to a server whose open connections can be cut, to break a
/// stream in the middle (as a load balancer or a network failure does).
pub struct CuttingProxy {
    pub addr: std::net::SocketAddr,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl CuttingProxy {
    pub async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let open = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let relay = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                open.lock().unwrap().push(relay.abort_handle());
            }
        });
        Self { addr, connections }
    }

    /// Drops every connection open now, both sides; later ones are relayed.
    pub fn cut(&self) {
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

/// Syncs `connector` through the client crate's resuming stream (`sync`
/// opens it) over a [`CuttingProxy`] that drops its connections right after
/// the checkpoint following the first scope's status, while the next scope
/// waits on a 100 ms upstream; `unbroken` is a FULL sync of the same request.
/// The stream must resume once from that checkpoint and yield exactly the
/// unbroken sync's upserts and scope statuses (none of the first scope
/// again), ending with a complete summary of the whole sync's counts.
pub async fn resume_over_a_cut(
    server: &TestServer,
    connector: &str,
    unbroken: &[SyncEvent],
    sync: impl FnOnce(&ConnectorsClient) -> connectors_client::SyncStream,
) {
    use futures::StreamExt;

    server
        .server
        .replay(connector)
        .unwrap()
        .set_options(connectors_server::replay::ReplayOptions {
            latency: std::time::Duration::from_millis(100),
            ..Default::default()
        });
    let proxy = CuttingProxy::start(server.server.addr).await;
    let client = ConnectorsClient::connect(format!("http://{}", proxy.addr))
        .await
        .unwrap()
        .with_resume_policy(
            connectors_client::ResumePolicy::default().with_initial_backoff(std::time::Duration::from_millis(10)),
        );
    let mut stream = sync(&client);
    let mut events = Vec::new();
    let mut finished = Vec::new();
    let mut cut = false;
    while let Some(event) = tokio::time::timeout(std::time::Duration::from_secs(20), stream.next())
        .await
        .expect("the sync stalled")
    {
        let event = event.expect("the stream resumes instead of failing");
        match &event.event {
            Some(Event::ScopeStatus(status)) if !cut => finished.push(status.scope.clone()),
            Some(Event::Checkpoint(_)) if !cut && !finished.is_empty() => {
                proxy.cut();
                cut = true;
            }
            _ => {}
        }
        events.push(event);
    }
    assert!(cut, "the stream had no checkpoint after a scope");
    assert_eq!(stream.resumes(), 1, "resumed once, after the cut");
    assert_eq!(finished, vec![scope_statuses(unbroken)[0].0.clone()]);
    assert_eq!(upserts(&events), upserts(unbroken));
    assert_eq!(scope_statuses(&events), scope_statuses(unbroken));
    let (resumed, whole) = (summary(&events), summary(unbroken));
    assert_eq!((resumed.counts, resumed.complete), (whole.counts, true));
}

/// A recorded `GET path?query` answered 200 with `body_text` as it is (a body
/// cut short: one that does not parse).
pub fn cut_short(path: &str, query: serde_json::Value, body_text: &str) -> connectors_server::replay::Exchange {
    serde_json::from_value(serde_json::json!({
        "request": {"method": "GET", "path": path, "query": query},
        "response": {"status": 200, "headers": {"content-type": "application/json"}, "body_text": body_text}
    }))
    .unwrap()
}
