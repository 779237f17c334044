//! Protobuf API of the connectors service: the shared `connectors.v1` messages
//! and registry, one package per connector with its `Sync` service, tonic
//! client and server code, proto3 JSON (serde) implementations, and the
//! encoded file descriptor set for gRPC reflection.

#![allow(clippy::all, missing_docs)]
// The generated items carry the proto comments, which are prose, not
// Markdown: "<type>:<id>" is not an HTML tag and `[...]` not a link.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links, rustdoc::bare_urls)]

/// Encoded `FileDescriptorSet` of every proto in this crate (for reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/connectors_descriptor.bin"));

/// `connectors.v1`: entities, provenance, sync events and the registry.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/connectors.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/connectors.v1.serde.rs"));
}

/// `connectors.github.v1`: the GitHub connector service.
pub mod github {
    /// Version 1 of the GitHub connector API.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/connectors.github.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/connectors.github.v1.serde.rs"));
    }
}

/// `connectors.gcp.v1`: the GCP connector service.
pub mod gcp {
    /// Version 1 of the GCP connector API.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/connectors.gcp.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/connectors.gcp.v1.serde.rs"));
    }
}

/// `connectors.azure.v1`: the Azure connector service.
pub mod azure {
    /// Version 1 of the Azure connector API.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/connectors.azure.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/connectors.azure.v1.serde.rs"));
    }
}

/// `connectors.gitlab.v1`: the GitLab connector service.
pub mod gitlab {
    /// Version 1 of the GitLab connector API.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/connectors.gitlab.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/connectors.gitlab.v1.serde.rs"));
    }
}

/// `connectors.aws.v1`: the AWS connector service.
pub mod aws {
    /// Version 1 of the AWS connector API.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/connectors.aws.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/connectors.aws.v1.serde.rs"));
    }
}

/// `connectors.wiz.v1`: the Wiz connector service.
pub mod wiz {
    /// Version 1 of the Wiz connector API.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/connectors.wiz.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/connectors.wiz.v1.serde.rs"));
    }
}

/// `connectors.kubernetes.v1`: the Kubernetes connector service.
pub mod kubernetes {
    /// Version 1 of the Kubernetes connector API.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/connectors.kubernetes.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/connectors.kubernetes.v1.serde.rs"));
    }
}
