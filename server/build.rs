//! Generates the server's own stubs of the connector services: the services
//! of `connectors-proto`, with every message taken from that crate except
//! `connectors.v1.SyncEvent`, which is `crate::sync::EncodedEvent` here. A
//! sync encodes each event once; the stubs send those bytes as they are (and
//! the coalescing log stores the same bytes). Clients are unaffected: the
//! bytes on the wire are a `SyncEvent`'s.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "connectors/github/v1/github.proto",
    "connectors/gitlab/v1/gitlab.proto",
    "connectors/azure/v1/azure.proto",
    "connectors/wiz/v1/wiz.proto",
    "connectors/kubernetes/v1/kubernetes.proto",
    "connectors/aws/v1/aws.proto",
    "connectors/gcp/v1/gcp.proto",
];

/// The connector features; `cfg(any_connector)` is set when one is on.
const CONNECTORS: &[&str] = &["AWS", "AZURE", "GCP", "GITHUB", "GITLAB", "KUBERNETES", "WIZ"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo::rustc-check-cfg=cfg(any_connector)");
    if CONNECTORS
        .iter()
        .any(|feature| std::env::var_os(format!("CARGO_FEATURE_{feature}")).is_some())
    {
        println!("cargo::rustc-cfg=any_connector");
    }
    let proto = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let fds = protox::compile(PROTOS, [&proto])?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .extern_path(".connectors.v1.SyncEvent", "crate::sync::EncodedEvent")
        .extern_path(".connectors", "::connectors_proto")
        .extern_path(".google.protobuf.Timestamp", "::pbjson_types::Timestamp")
        .extern_path(".google.protobuf.Duration", "::pbjson_types::Duration")
        .skip_protoc_run()
        .compile_fds(fds)?;
    Ok(())
}
