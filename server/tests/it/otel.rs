//! OpenTelemetry export: the server binary, pointed at an OTLP collector (a
//! real OTLP/gRPC TraceService in this test), exports a span per sync, in
//! the caller's trace, and a span per upstream request under it.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use connectors_proto::github::v1::SyncRequest;
use connectors_server::testing::free_port;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::conformance::{collect, full};
use crate::support::{connect_when_listening, fixture_server, summary, terminate};

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|attribute| attribute.key == "service.name")
                .and_then(|attribute| string(attribute.value.as_ref()?.value.as_ref()?))
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                spans.extend(scope_spans.spans.into_iter().map(|span| (service.clone(), span)));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn string(value: &Value) -> Option<String> {
    match value {
        Value::StringValue(text) => Some(text.clone()),
        Value::IntValue(number) => Some(number.to_string()),
        Value::BoolValue(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn attributes(span: &Span) -> BTreeMap<String, String> {
    span.attributes
        .iter()
        .filter_map(|attribute| {
            Some((
                attribute.key.clone(),
                string(attribute.value.as_ref()?.value.as_ref()?)?,
            ))
        })
        .collect()
}

#[tokio::test]
async fn spans_of_a_sync_and_its_upstream_requests_reach_the_otlp_collector() {
    let collector = Collector::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );

    let port = free_port();
    let mut child = fixture_server(port)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector_addr}"))
        .env("OTEL_SERVICE_NAME", "connectors-test")
        .env("RUST_LOG", "warn")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_TRACES_EXPORTER")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn connectors-server");
    let client = connect_when_listening(port).await;

    // The caller's trace, as a service mesh or an instrumented client sends it.
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let caller_span = "b7ad6b7169203331";
    let mut request = tonic::Request::new(SyncRequest {
        options: Some(full()),
        ..Default::default()
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{caller_span}-01").parse().unwrap(),
    );
    let events = collect(client.github().sync(request).await.map(|r| r.into_inner())).await;
    let summary = summary(&events);
    assert!(summary.complete);
    assert_eq!(summary.upstream_requests, crate::github::FULL_REQUESTS);

    // Shutting down flushes the spans still batched.
    assert_eq!(terminate(&mut child).await.code(), Some(0));
    let spans = collector.spans.lock().unwrap().clone();
    assert!(spans.iter().all(|(service, _)| service == "connectors-test"));

    let syncs: Vec<&Span> = spans
        .iter()
        .map(|(_, span)| span)
        .filter(|span| span.name == "sync github")
        .collect();
    assert_eq!(
        syncs.len(),
        1,
        "one span per sync: {:?}",
        spans.iter().map(|s| &s.1.name).collect::<Vec<_>>()
    );
    let sync = syncs[0];
    assert_eq!(hex::encode(&sync.trace_id), trace_id);
    assert_eq!(hex::encode(&sync.parent_span_id), caller_span);
    assert_eq!(sync.kind, SpanKind::Server as i32);
    let attrs = attributes(sync);
    assert_eq!(attrs.get("sync.id"), Some(&summary.sync_id), "{attrs:?}");
    assert_eq!(attrs["connector"], "github");
    assert_eq!(attrs["sync.id"], summary.sync_id);
    assert_eq!(attrs["sync.mode"], "SYNC_MODE_FULL");
    assert_eq!(attrs["sync.outcome"], "ok");
    assert_eq!(attrs["sync.entities"], "102");
    assert_eq!(
        attrs["sync.upstream_requests"],
        crate::github::FULL_REQUESTS.to_string()
    );

    // One client span per upstream request, each a child of the sync's span.
    let requests: Vec<&Span> = spans
        .iter()
        .map(|(_, span)| span)
        .filter(|span| span.name == "GET 127.0.0.1" || span.name == "POST 127.0.0.1")
        .collect();
    assert_eq!(requests.len() as u64, crate::github::FULL_REQUESTS);
    let mut statuses = BTreeMap::<String, usize>::new();
    let mut methods = BTreeMap::<String, usize>::new();
    for span in &requests {
        assert_eq!(hex::encode(&span.trace_id), trace_id);
        assert_eq!(span.parent_span_id, sync.span_id);
        assert_eq!(span.kind, SpanKind::Client as i32);
        let attrs = attributes(span);
        assert_eq!(attrs["connector"], "github");
        assert_eq!(span.name, format!("{} 127.0.0.1", attrs["http.request.method"]));
        *methods.entry(attrs["http.request.method"].clone()).or_default() += 1;
        assert!(attrs["url.path"].starts_with('/'), "{attrs:?}");
        *statuses.entry(attrs["http.response.status_code"].clone()).or_default() += 1;
    }
    assert_eq!(
        statuses,
        BTreeMap::from([
            ("200".to_owned(), 105),
            ("302".to_owned(), 31),
            ("404".to_owned(), 3),
            ("409".to_owned(), 1)
        ])
    );
    // The manifests' blobs: one GraphQL read per listing page.
    assert_eq!(
        methods,
        BTreeMap::from([("GET".to_owned(), 135), ("POST".to_owned(), 5)])
    );
    assert_eq!(spans.len(), 141, "nothing else is exported");
}

/// An environment of `pairs` only.
fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    }
}

#[test]
fn otlp_export_is_off_unless_an_endpoint_is_set() {
    use connectors_server::telemetry::otlp_requested;
    assert_eq!(otlp_requested(env(&[])), Ok(false));
    assert_eq!(otlp_requested(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")])), Ok(false));
    assert_eq!(
        otlp_requested(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")])),
        Ok(true)
    );
    assert_eq!(
        otlp_requested(env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4317")])),
        Ok(true)
    );
    assert_eq!(
        otlp_requested(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_SDK_DISABLED", "true")
        ])),
        Ok(false)
    );
    assert_eq!(
        otlp_requested(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_TRACES_EXPORTER", "none")
        ])),
        Ok(false)
    );
    assert_eq!(
        otlp_requested(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        ])),
        Err(
            "OTEL_EXPORTER_OTLP_PROTOCOL=\"http/protobuf\" is not supported: this server exports OTLP over grpc"
                .to_owned()
        )
    );
    assert_eq!(
        otlp_requested(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        ])),
        Ok(true),
        "the traces-specific variable wins"
    );
}

/// An `https://` collector: spans are exported over TLS, the collector's
/// certificate verified against the system's roots (here the test's CA,
/// through `SSL_CERT_FILE`). The server used to stop at start-up: the OTLP
/// exporter was built without TLS.
#[tokio::test]
async fn spans_reach_an_https_collector_over_tls() {
    use tonic::transport::{Identity, ServerTlsConfig};

    // The collector's TLS (in this process) needs rustls's provider, as the server's does.
    connectors_server::server::install_crypto_provider();
    let pki = crate::tls::pki();
    let identity = Identity::from_pem(
        std::fs::read(pki.dir.join("server.pem")).unwrap(),
        std::fs::read(pki.dir.join("server.key")).unwrap(),
    );
    let collector = Collector::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_port = listener.local_addr().unwrap().port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .tls_config(ServerTlsConfig::new().identity(identity))
            .unwrap()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let endpoint = format!("https://localhost:{collector_port}");
    let ca = pki.dir.join("ca.pem");
    let (mut server, client) = crate::support::serve_with_env(&[
        ("CONNECTORS_MODE", "fixtures"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("SSL_CERT_FILE", ca.to_str().unwrap()),
    ])
    .await;
    let events = crate::support::github_full_sync(&client).await;
    assert!(summary(&events).complete);
    assert_eq!(terminate(&mut server.0).await.code(), Some(0));
    let spans = collector.spans.lock().unwrap().clone();
    let names: Vec<&str> = spans.iter().map(|(_, span)| span.name.as_str()).collect();
    assert_eq!(
        names.iter().filter(|name| **name == "sync github").count(),
        1,
        "{names:?}"
    );
    assert_eq!(spans.len() as u64, 1 + crate::github::FULL_REQUESTS);
}

/// Which endpoints get TLS (and the system's roots): as opentelemetry-otlp
/// decides, the traces endpoint first; a schemeless one unless INSECURE.
#[test]
fn otlp_tls_follows_the_endpoint_scheme_as_the_exporter_does() {
    use connectors_server::telemetry::otlp_uses_tls;
    let cases: [(&'static [(&'static str, &'static str)], bool); 7] = [
        (&[], false),
        (&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")], false),
        (&[("OTEL_EXPORTER_OTLP_ENDPOINT", "HTTPS://collector:4317")], true),
        (&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")], true),
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
                ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
            ],
            false,
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://traces:4317"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ],
            true,
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ""),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ],
            false,
        ),
    ];
    for (pairs, tls) in cases {
        assert_eq!(otlp_uses_tls(env(pairs)), tls, "{pairs:?}");
    }
}
