//! Thin gRPC handlers: validate, convert, call the engine, map errors.

mod errors;
#[cfg(feature = "github")]
mod github;
#[cfg(feature = "kubernetes")]
mod kubernetes;
mod registry;
pub mod validate;

pub use errors::status_from;
#[cfg(feature = "github")]
pub use github::GithubService;
#[cfg(feature = "kubernetes")]
pub use kubernetes::KubernetesService;
pub use registry::RegistryApi;
