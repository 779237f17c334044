//! Thin gRPC handlers: validate, convert, call the engine, map errors.

mod errors;
#[cfg(feature = "github")]
mod github;
mod registry;
pub mod validate;
#[cfg(feature = "wiz")]
mod wiz;

pub use errors::status_from;
#[cfg(feature = "github")]
pub use github::GithubService;
pub use registry::RegistryApi;
#[cfg(feature = "wiz")]
pub use wiz::WizService;
