//! `connectors-server`: reads the environment, starts every connector (live
//! with credentials, on fixtures without), serves gRPC until SIGTERM/SIGINT.

/// mimalloc: the server allocates per entity and per upstream response on
/// every worker thread; glibc malloc's arenas cost a quarter of its CPU.
#[global_allocator]
static ALLOCATOR: connectors_server::Allocator = connectors_server::Allocator;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    connectors_server::server::run_from_env().await
}
