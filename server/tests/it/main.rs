//! Integration tests: the real server on loopback, driven through the
//! `connectors-client` crate. One binary (link time dominates on 2 cores).

mod aws;
mod azure;
mod binary;
mod config;
mod conformance;
mod deadline;
mod gcp;
mod github;
mod gitlab;
mod kubernetes;
mod otel;
mod outage;
mod polyglot;
mod registry;
mod security;
mod shutdown;
mod support;
mod tls;
mod wiz;
