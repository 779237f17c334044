//! Logging (text or JSON), OpenTelemetry traces (OTLP, off by default) and
//! the Prometheus metrics endpoint.
//!
//! Traces are exported when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set (and neither `OTEL_SDK_DISABLED=true`
//! nor `OTEL_TRACES_EXPORTER=none`): one span per sync (`sync`, a child of
//! the caller's W3C `traceparent` when the gRPC request carries one) and one
//! per upstream HTTP request (`upstream request`). The exporter speaks OTLP
//! over gRPC and reads the standard `OTEL_*` variables (headers, timeout,
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`).

use std::net::SocketAddr;

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithTonicConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::Directive;
use tracing_subscriber::filter::{FilterExt as _, filter_fn};
use tracing_subscriber::layer::Filter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::LogFormat;

/// What `init_tracing` installed; [`Telemetry::shutdown`] flushes traces.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "flushing OpenTelemetry spans failed");
        }
    }
}

/// Whether the environment asks for OTLP trace export; an error names a
/// variable set to something this build cannot do.
pub fn otlp_requested(env: impl Fn(&str) -> Option<String>) -> Result<bool, String> {
    let set = |name: &str| env(name).filter(|value| !value.trim().is_empty());
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || set("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"))
    {
        return Ok(false);
    }
    if set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none() && set("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
        return Ok(false);
    }
    for name in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
        if let Some(protocol) = set(name) {
            if protocol.trim() != "grpc" {
                return Err(format!(
                    "{name}={protocol:?} is not supported: this server exports OTLP over grpc"
                ));
            }
            break;
        }
    }
    if let Some(exporter) = set("OTEL_TRACES_EXPORTER")
        && exporter.trim() != "otlp"
    {
        return Err(format!(
            "OTEL_TRACES_EXPORTER={exporter:?} is not supported: use otlp or none"
        ));
    }
    Ok(true)
}

/// Whether the OTLP exporter's endpoint is TLS, resolved as
/// opentelemetry-otlp does: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else
/// `OTEL_EXPORTER_OTLP_ENDPOINT`; `https://`, or no scheme unless
/// `OTEL_EXPORTER_OTLP_[TRACES_]INSECURE=true`. Only such an endpoint gets
/// the system's roots (loading them fails on a host that has none).
pub fn otlp_uses_tls(env: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| env(name).filter(|value| !value.is_empty());
    let Some(endpoint) = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"))
    else {
        return false;
    };
    match endpoint.split_once("://") {
        Some((scheme, _)) if !scheme.contains(['/', '?', '#']) => scheme.eq_ignore_ascii_case("https"),
        _ => !env("OTEL_EXPORTER_OTLP_TRACES_INSECURE")
            .or_else(|| env("OTEL_EXPORTER_OTLP_INSECURE"))
            .is_some_and(|insecure| insecure.eq_ignore_ascii_case("true")),
    }
}

/// The target of spans only the trace exporter takes: one per upstream
/// request. The log never shows them (nothing is logged inside one at
/// `info`), so without an exporter they are not created at all: at tens of
/// thousands of requests a second, formatting each span's fields for the
/// log cost about a tenth of the server's CPU.
pub const EXPORT_ONLY: &str = "connectors_server::export";

/// The log layer's filter: `RUST_LOG` (or `info`), without the
/// [`EXPORT_ONLY`] spans.
fn log_filter(filter: EnvFilter) -> impl Filter<tracing_subscriber::Registry> {
    filter.and(filter_fn(|metadata| metadata.target() != EXPORT_ONLY))
}

/// The trace exporter's filter: this crate's spans ([`EXPORT_ONLY`] ones
/// included) at `info`.
fn export_filter() -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new().with_target("connectors_server", tracing::Level::INFO)
}

/// The log filter from `RUST_LOG` (unset or empty: `info`). An invalid
/// directive is an error naming the variable and the directive: falling back
/// to `info` would hide the logs asked for.
fn rust_log_filter() -> Result<EnvFilter, String> {
    let value = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => value,
        Ok(_) | Err(std::env::VarError::NotPresent) => return Ok(EnvFilter::new("info")),
        Err(std::env::VarError::NotUnicode(_)) => return Err("RUST_LOG: not valid UTF-8".into()),
    };
    EnvFilter::builder().parse(&value).map_err(|error| {
        // EnvFilter's directives are separated by ',' (its own parser splits so).
        match value
            .split(',')
            .find(|directive| !directive.is_empty() && directive.parse::<Directive>().is_err())
        {
            Some(directive) => format!("RUST_LOG: {directive:?}: {error}"),
            None => format!("RUST_LOG: {error}"),
        }
    })
}

/// Installs the global tracing subscriber (`RUST_LOG`, default `info`) and,
/// when the environment asks for it, the OTLP trace exporter. Must run
/// inside the Tokio runtime (the exporter's batches are sent from it).
pub fn init_tracing(format: LogFormat) -> Result<Telemetry, String> {
    let filter = rust_log_filter()?;
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    }
    .with_filter(log_filter(filter));

    let provider = if otlp_requested(|name| std::env::var(name).ok())? {
        let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic();
        // The exporter's own TLS default trusts no root at all.
        if otlp_uses_tls(|name| std::env::var(name).ok()) {
            exporter = exporter.with_tls_config(tonic::transport::ClientTlsConfig::new().with_native_roots());
        }
        let exporter = exporter.build().map_err(|error| format!("OTLP exporter: {error}"))?;
        let processor = opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(
                std::env::var("OTEL_SERVICE_NAME")
                    .ok()
                    .filter(|name| !name.is_empty())
                    .unwrap_or_else(|| "connectors-server".to_owned()),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource)
            .build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        Some(provider)
    } else {
        None
    };
    // Only this crate's spans (syncs, upstream requests) are exported.
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("connectors-server"))
            .with_filter(export_filter())
    });
    if let Err(error) = tracing_subscriber::registry().with(fmt).with(otel).try_init() {
        eprintln!("tracing already initialised: {error}");
    }
    Ok(Telemetry { provider })
}

/// The caller's trace context from the W3C `traceparent`/`tracestate`
/// metadata of a gRPC request (empty when there is none or export is off).
pub fn remote_context(metadata: &tonic::metadata::MetadataMap) -> opentelemetry::Context {
    struct Metadata<'a>(&'a tonic::metadata::MetadataMap);
    impl Extractor for Metadata<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|value| value.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0
                .keys()
                .filter_map(|key| match key {
                    tonic::metadata::KeyRef::Ascii(key) => Some(key.as_str()),
                    tonic::metadata::KeyRef::Binary(_) => None,
                })
                .collect()
        }
    }
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&Metadata(metadata)))
}

/// Serves Prometheus `/metrics` on `addr` and describes the metrics.
pub fn init_metrics(addr: SocketAddr) -> Result<(), String> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("connectors_sync_duration_seconds".into()),
            &[
                0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
            ],
        )
        .map_err(|e| e.to_string())?
        .install()
        .map_err(|e| e.to_string())?;
    metrics::describe_counter!(
        "connectors_syncs_total",
        "Syncs by connector and outcome (ok, partial, failed, cancelled, deadline_exceeded, drained)"
    );
    metrics::describe_counter!("connectors_entities_total", "Upserts emitted by connector and kind");
    metrics::describe_counter!(
        "connectors_upstream_requests_total",
        "Upstream HTTP requests by connector and status"
    );
    metrics::describe_counter!(
        "connectors_upstream_not_modified_total",
        "Upstream 304 answers served from the cache"
    );
    metrics::describe_histogram!("connectors_sync_duration_seconds", "Sync duration by connector");
    metrics::describe_gauge!("connectors_active_streams", "Open Sync streams by connector");
    metrics::describe_gauge!(
        "connectors_cache_degraded",
        "1 while the cache backend fails (serving uncached)"
    );
    metrics::describe_counter!("connectors_cache_errors_total", "Cache backend errors by operation");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether an upstream request span and a sync span are created under
    /// `subscriber`.
    fn created(subscriber: impl tracing::Subscriber + Send + Sync) -> (bool, bool) {
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!(target: EXPORT_ONLY, "upstream request", url.path = "/orgs/acme");
            let sync = tracing::info_span!("sync", connector = "github");
            (!request.is_disabled(), !sync.is_disabled())
        })
    }

    // One test, one subscriber at a time: callsite interest is cached
    // across subscribers, and two alive at once on other threads blur it.
    #[test]
    fn export_only_spans_are_created_for_the_exporter_and_not_for_the_log() {
        let log = || {
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::sink)
                .with_filter(log_filter(EnvFilter::new("info")))
        };
        assert_eq!(created(tracing_subscriber::registry().with(log())), (false, true));
        let exporter = tracing_subscriber::fmt::layer()
            .with_writer(std::io::sink)
            .with_filter(export_filter());
        assert_eq!(
            created(tracing_subscriber::registry().with(log()).with(exporter)),
            (true, true)
        );
        assert_eq!(created(tracing_subscriber::registry().with(log())), (false, true));
    }
}
