//! `connectors-server`: reads the environment, starts every connector (live
//! with credentials, on fixtures without), serves gRPC until SIGTERM/SIGINT.

use std::process::ExitCode;

use connectors_server::config::Config;

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("connectors-server: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    let telemetry = match connectors_server::telemetry::init_tracing(config.log_format) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("connectors-server: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    if telemetry.exporting() {
        tracing::info!("exporting OpenTelemetry traces over OTLP");
    }
    let code = serve(config).await;
    // Flushing blocks until the exporter task (on this runtime) is done.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    code
}

async fn serve(config: Config) -> ExitCode {
    if let Some(addr) = config.metrics_listen {
        match connectors_server::telemetry::init_metrics(addr) {
            Ok(()) => tracing::info!(%addr, "metrics listening on /metrics"),
            Err(error) => {
                tracing::error!(%error, %addr, "cannot serve metrics");
                return ExitCode::from(1);
            }
        }
    }
    if config.api_keys.is_open() {
        tracing::warn!("CONNECTORS_API_KEYS is not set: the API is open to every client that can reach it");
    }
    tracing::info!(mode = ?config.mode, listen = %config.listen, "starting");
    let drain = config.drain_timeout;
    let server = match connectors_server::server::start(config).await {
        Ok(server) => server,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            return ExitCode::from(1);
        }
    };
    wait_for_signal().await;
    server.shutdown();
    match tokio::time::timeout(drain + std::time::Duration::from_secs(5), server.wait()).await {
        Ok(Ok(())) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "server error");
            ExitCode::from(1)
        }
        Err(_) => {
            tracing::warn!("drain timeout passed; exiting");
            ExitCode::SUCCESS
        }
    }
}
