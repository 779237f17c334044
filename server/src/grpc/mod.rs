//! Thin gRPC handlers: validate, convert, call the engine, map errors.

mod errors;
#[cfg(feature = "github")]
mod github;
#[cfg(feature = "gitlab")]
mod gitlab;
mod registry;
pub mod validate;

pub use errors::status_from;
#[cfg(feature = "github")]
pub use github::GithubService;
#[cfg(feature = "gitlab")]
pub use gitlab::GitlabService;
pub use registry::RegistryApi;
