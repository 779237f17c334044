//! Thin gRPC handlers: validate, convert, call the engine, map errors.

mod errors;
#[cfg(feature = "github")]
mod github;
mod registry;
pub mod validate;

pub use errors::status_from;
#[cfg(feature = "github")]
pub use github::GithubService;
pub use registry::RegistryApi;
