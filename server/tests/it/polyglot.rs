//! Clients in other languages against the real `connectors-server` binary on
//! the fixtures: the Python and TypeScript examples of `clients/`, and the
//! README's grpcurl commands run exactly as printed. scripts/test installs the
//! tools and names them in CONNECTORS_PYTHON, CONNECTORS_NODE_SYNC_EXAMPLE and
//! CONNECTORS_GRPCURL; without them a test skips, except under CI=true.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use connectors_server::testing::free_port;

use crate::support::fixture_server;
use serde_json::Value;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The server binary in fixture mode with its in-memory cache on a free
/// loopback port (so each test starts from a cold cache), killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> Self {
        let port = free_port();
        let child = fixture_server(port)
            .env("RUST_LOG", "warn")
            .env_remove("CONNECTORS_API_KEYS")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn connectors-server");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }

    fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test dependency's path from `var`, or `None` to skip; under CI=true a
/// missing one is a failure.
fn tool(var: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(path.into());
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{var} is required under CI=true (scripts/test installs the tool and sets it)");
    }
    eprintln!("skipping: {var} is not set (scripts/test installs the tool and sets it)");
    None
}

/// A fresh scratch directory.
fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("connectors-polyglot-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Runs one example (`example` = program and its script) with `args`.
fn run(example: &[&Path], args: &[&str]) -> Output {
    Command::new(example[0])
        .args(&example[1..])
        .args(args)
        .env("PYTHONPATH", format!("{REPO}/clients/python/src"))
        .env_remove("CONNECTORS_API_KEY")
        .output()
        .expect("run the example")
}

/// The sync example of each language prints the same lines: a FULL sync of
/// the GitHub fixtures, an INCREMENTAL one from its checkpoint, a refused
/// request.
fn assert_sync_example(example: &[&Path]) {
    let server = Server::start();
    let target = server.target();
    let dir = scratch_dir();
    let checkpoint = dir.join("github.ckpt");
    let checkpoint = checkpoint.to_str().unwrap();

    // FULL (no checkpoint file yet); it stores the summary's checkpoint.
    let full = run(
        example,
        &["--target", &target, "--checkpoint-file", checkpoint, "github"],
    );
    assert!(full.status.success(), "{full:?}");
    let out = stdout(&full);
    let lines: Vec<&str> = out.lines().collect();
    let upserts: Vec<&str> = lines.iter().copied().filter(|l| l.starts_with("upsert\t")).collect();
    assert_eq!(upserts.len(), 102, "{out}");
    let of_kind = |kind: &str| upserts.iter().filter(|l| l.split('\t').nth(2) == Some(kind)).count();
    assert_eq!(of_kind("ENTITY_KIND_REPOSITORY"), 34);
    assert_eq!(of_kind("ENTITY_KIND_MANIFEST"), 37);
    assert_eq!(of_kind("ENTITY_KIND_SBOM"), 31);
    assert_eq!(
        upserts[0],
        "upsert\turn:connectors:github:repository:200001\tENTITY_KIND_REPOSITORY\tacme-corp/payments-api"
    );
    for line in [
        "upsert\turn:connectors:github:manifest:200001:go.mod\tENTITY_KIND_MANIFEST\tacme-corp/payments-api:go.mod",
        "upsert\turn:connectors:github:sbom:200001\tENTITY_KIND_SBOM\tacme-corp/payments-api",
        "upsert\turn:connectors:github:repository:200101\tENTITY_KIND_REPOSITORY\tglobex/trading-engine",
        "upsert\turn:connectors:github:manifest:200101:crates/orderbook/Cargo.toml\tENTITY_KIND_MANIFEST\tglobex/trading-engine:crates/orderbook/Cargo.toml",
    ] {
        assert!(upserts.contains(&line), "missing {line:?} in {out}");
    }
    let others: Vec<&str> = lines.iter().copied().filter(|l| !l.starts_with("upsert\t")).collect();
    assert_eq!(
        others,
        [
            "scope\torg:acme-corp\tSCOPE_STATE_OK\t65".to_owned(),
            "scope\torg:globex\tSCOPE_STATE_OK\t37".to_owned(),
            format!(
                "summary\tmode=SYNC_MODE_FULL complete=true upserts=102 unchanged=0 deletions=0 scopes_ok=2 \
                 scopes_failed=0 upstream_requests={} cache_hits=0",
                crate::github::FULL_REQUESTS
            ),
        ]
    );
    assert!(lines.last().unwrap().starts_with("summary\t"));
    assert!(std::fs::metadata(checkpoint).unwrap().len() > 0);

    // INCREMENTAL from that checkpoint: nothing changed upstream.
    let incremental = run(
        example,
        &["--target", &target, "--checkpoint-file", checkpoint, "github"],
    );
    assert!(incremental.status.success(), "{incremental:?}");
    assert_eq!(
        stdout(&incremental),
        "scope\torg:acme-corp\tSCOPE_STATE_OK\t65\n\
         scope\torg:globex\tSCOPE_STATE_OK\t37\n\
         summary\tmode=SYNC_MODE_INCREMENTAL complete=true upserts=0 unchanged=102 deletions=0 scopes_ok=2 \
         scopes_failed=0 upstream_requests=5 cache_hits=5\n"
    );

    // A refused request: the gRPC status on stderr, exit status 1.
    let refused = run(
        example,
        &["--target", &target, "--kind", "ENTITY_KIND_PIPELINE", "github"],
    );
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert_eq!(stdout(&refused), "");
    assert_eq!(
        stderr(&refused),
        "sync failed: INVALID_ARGUMENT: options.kinds[0]: connector github does not emit ENTITY_KIND_PIPELINE\n"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn python_example_syncs_github_and_prints_entities() {
    let Some(python) = tool("CONNECTORS_PYTHON") else {
        return;
    };
    let script = PathBuf::from(format!("{REPO}/clients/python/examples/sync.py"));
    assert_sync_example(&[&python, &script]);
}

#[test]
fn typescript_example_syncs_github_and_prints_entities() {
    let Some(script) = tool("CONNECTORS_NODE_SYNC_EXAMPLE") else {
        return;
    };
    assert_sync_example(&[Path::new("node"), &script]);
}

/// The commands of the README's block after the `<!-- grpcurl-commands` marker:
/// comments dropped, continuation lines joined.
fn readme_grpcurl_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(format!("{REPO}/README.md")).unwrap();
    let block: Vec<&str> = readme
        .lines()
        .skip_while(|line| !line.starts_with("<!-- grpcurl-commands"))
        .skip(1)
        .skip_while(|line| *line == "```sh")
        .take_while(|line| *line != "```")
        .collect();
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in block {
        let line = line.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => current.push_str(start),
            None => {
                current.push_str(line);
                commands.push(std::mem::take(&mut current));
            }
        }
    }
    commands
}

/// The stream of JSON objects grpcurl prints for a server-streaming call.
fn json_stream(text: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|error| panic!("not a JSON stream ({error}): {text}"))
}

fn events<'a>(stream: &'a [Value], case: &str) -> Vec<&'a Value> {
    stream.iter().filter_map(|event| event.get(case)).collect()
}

/// The stream ends with its one summary, complete, of `mode` with `counts`.
fn assert_summary(stream: &[Value], mode: &str, counts: Value) {
    assert_eq!(events(stream, "summary").len(), 1, "{stream:?}");
    let summary = &stream.last().unwrap()["summary"];
    assert_eq!(summary["mode"], mode);
    assert_eq!(summary["complete"], true);
    assert_eq!(summary["counts"], counts);
}

#[test]
fn readme_grpcurl_commands_work_as_printed() {
    let Some(grpcurl) = tool("CONNECTORS_GRPCURL") else {
        return;
    };
    if Command::new("jq").arg("--version").output().is_err() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("jq is required under CI=true (scripts/test installs it)");
        }
        eprintln!("skipping: jq is not installed");
        return;
    }
    let server = Server::start();
    let dir = scratch_dir();
    let path = format!(
        "{}:{}",
        grpcurl.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let commands = readme_grpcurl_commands();
    assert_eq!(commands.len(), 7, "{commands:#?}");
    let outputs: Vec<String> = commands
        .iter()
        .map(|command| {
            assert!(command.contains("localhost:50051"), "{command}");
            let output = Command::new("bash")
                .args(["-o", "pipefail", "-c"])
                .arg(command.replace("localhost:50051", &server.target()))
                .current_dir(&dir)
                .env("PATH", &path)
                .output()
                .unwrap();
            assert!(output.status.success(), "{command}: {output:?}");
            stdout(&output)
        })
        .collect();

    // list: the exact services (grpcurl 1.8.6 asks reflection v1alpha).
    assert_eq!(
        outputs[0],
        "connectors.aws.v1.AwsConnectorService\n\
         connectors.azure.v1.AzureConnectorService\n\
         connectors.gcp.v1.GcpConnectorService\n\
         connectors.github.v1.GithubConnectorService\n\
         connectors.gitlab.v1.GitlabConnectorService\n\
         connectors.kubernetes.v1.KubernetesConnectorService\n\
         connectors.v1.RegistryService\n\
         connectors.wiz.v1.WizConnectorService\n\
         grpc.health.v1.Health\n\
         grpc.reflection.v1alpha.ServerReflection\n"
    );
    // describe a service and a message, with their comments.
    assert!(
        outputs[1].starts_with("connectors.github.v1.GithubConnectorService is a service:\n"),
        "{}",
        outputs[1]
    );
    assert!(
        outputs[1]
            .contains("rpc Sync ( .connectors.github.v1.SyncRequest ) returns ( stream .connectors.v1.SyncEvent );"),
        "{}",
        outputs[1]
    );
    assert!(
        outputs[2].starts_with("connectors.v1.SyncOptions is a message:\n"),
        "{}",
        outputs[2]
    );
    assert!(outputs[2].contains("  bytes checkpoint = 2;\n"), "{}", outputs[2]);
    assert!(outputs[2].contains("  string state_key = 4;\n"), "{}", outputs[2]);
    // health of the GitHub connector.
    assert_eq!(json_stream(&outputs[3]), [serde_json::json!({"status": "SERVING"})]);
    // the registry: seven connectors, all on fixtures.
    let registry = json_stream(&outputs[4]);
    let connectors = registry[0]["connectors"].as_array().unwrap();
    let ids: Vec<&str> = connectors.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["aws", "azure", "gcp", "github", "gitlab", "kubernetes", "wiz"]);
    assert!(
        connectors
            .iter()
            .all(|c| c["availability"] == "CONNECTOR_AVAILABILITY_FIXTURE"),
        "{registry:?}"
    );

    // the FULL sync went to full.json: globex's 12 repositories.
    assert_eq!(outputs[5], "");
    let full = json_stream(&std::fs::read_to_string(dir.join("full.json")).unwrap());
    let upserts = events(&full, "upsert");
    assert_eq!(upserts.len(), 12);
    let urns: Vec<&str> = upserts.iter().map(|u| u["entity"]["urn"].as_str().unwrap()).collect();
    let expected: Vec<String> = (200101..=200112)
        .map(|id| format!("urn:connectors:github:repository:{id}"))
        .collect();
    assert_eq!(urns, expected);
    assert_eq!(upserts[0]["entity"]["displayName"], "globex/trading-engine");
    assert_summary(
        &full,
        "SYNC_MODE_FULL",
        serde_json::json!([{"kind": "ENTITY_KIND_REPOSITORY", "upserts": "12"}]),
    );

    // the INCREMENTAL sync from its checkpoint: no upserts, no deletions.
    let incremental = json_stream(&outputs[6]);
    assert_eq!(events(&incremental, "upsert").len(), 0, "{}", outputs[6]);
    assert_eq!(events(&incremental, "deletion").len(), 0);
    assert_summary(
        &incremental,
        "SYNC_MODE_INCREMENTAL",
        serde_json::json!([{"kind": "ENTITY_KIND_REPOSITORY", "unchanged": "12"}]),
    );
    let _ = std::fs::remove_dir_all(dir);
}
