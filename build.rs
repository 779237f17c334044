//! Compiles proto/ with protox (pure Rust, no system protoc), generates the
//! tonic client and server code, proto3 JSON (serde) impls with pbjson, and
//! the encoded file descriptor set served by gRPC reflection.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "proto/connectors/v1/entities.proto",
    "proto/connectors/v1/sync.proto",
    "proto/connectors/v1/registry.proto",
    "proto/connectors/github/v1/github.proto",
    "proto/connectors/gitlab/v1/gitlab.proto",
    "proto/connectors/azure/v1/azure.proto",
    "proto/connectors/wiz/v1/wiz.proto",
    "proto/connectors/kubernetes/v1/kubernetes.proto",
    "proto/connectors/aws/v1/aws.proto",
    "proto/connectors/gcp/v1/gcp.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(PROTOS, ["proto"])?;
    let descriptor_path = out_dir.join("connectors_descriptor.bin");
    std::fs::write(&descriptor_path, fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .file_descriptor_set_path(&descriptor_path)
        .extern_path(".google.protobuf.Timestamp", "::pbjson_types::Timestamp")
        .extern_path(".google.protobuf.Duration", "::pbjson_types::Duration")
        .skip_protoc_run()
        .compile_fds(fds.clone())?;

    let descriptor_bytes = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .build(&[".connectors"])?;
    Ok(())
}
