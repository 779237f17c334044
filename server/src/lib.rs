//! The connectors service: a gRPC server that inventories software and cloud
//! estates through one streaming `Sync` RPC per connector.

pub mod cache;
pub mod config;
pub mod grpc;
pub mod http;
pub mod providers;
pub mod replay;
pub mod server;
pub mod sync;
pub mod telemetry;
pub mod testing;

/// The global allocator of the binaries that run the server (`connectors-server`
/// and the benchmark's server processes).
pub use mimalloc::MiMalloc as Allocator;
