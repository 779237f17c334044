//! Logging (text or JSON) and the Prometheus metrics endpoint.

use std::net::SocketAddr;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global tracing subscriber (`RUST_LOG`, default `info`).
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Err(error) = result {
        eprintln!("tracing already initialised: {error}");
    }
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
