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
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
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

/// Installs the global tracing subscriber (`RUST_LOG`, default `info`) and,
/// when the environment asks for it, the OTLP trace exporter. Must run
/// inside the Tokio runtime (the exporter's batches are sent from it).
pub fn init_tracing(format: LogFormat) -> Result<Telemetry, String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    }
    .with_filter(filter);

    let provider = if otlp_requested(|name| std::env::var(name).ok())? {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
            .map_err(|error| format!("OTLP exporter: {error}"))?;
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
            .with_filter(
                tracing_subscriber::filter::Targets::new().with_target("connectors_server", tracing::Level::INFO),
            )
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
        "Syncs by connector and outcome (ok, partial, failed, cancelled, drained)"
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
