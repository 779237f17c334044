//! The error type of the client.

use tonic::Code;

/// An error of the connectors client.
///
/// Every variant maps to a gRPC status code with [`Error::code`], so callers
/// (and `connectorctl`) can report failures uniformly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint is not a valid `http://host:port` (or `unix:path`) address.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The API key cannot be sent as an `authorization` metadata value.
    #[error("invalid api key: {0}")]
    InvalidApiKey(String),
    /// Connecting to the server failed.
    #[error("{}", with_sources(.0))]
    Transport(#[from] tonic::transport::Error),
    /// A call ended with a gRPC error status (after the resume attempts allowed
    /// by the [`ResumePolicy`](crate::ResumePolicy), for a sync stream).
    #[error("{}: {}", code_name(.0.code()), .0.message())]
    Status(#[from] tonic::Status),
    /// A sync stream kept ending without its `Summary`, and the resume attempts
    /// allowed by the [`ResumePolicy`](crate::ResumePolicy) are used up.
    #[error("sync stream ended without a summary ({attempts} attempts)")]
    Incomplete {
        /// How many times `Sync` was called.
        attempts: u32,
    },
    /// The server sent a response that lacks a required field.
    #[error("malformed response: {0}")]
    MalformedResponse(&'static str),
}

impl Error {
    /// The gRPC status code that best describes this error: the status's own
    /// code for [`Error::Status`], `UNAVAILABLE` for transport failures and
    /// incomplete streams, `INVALID_ARGUMENT` for bad endpoints or keys and
    /// `INTERNAL` for malformed responses.
    pub fn code(&self) -> Code {
        match self {
            Error::InvalidEndpoint { .. } | Error::InvalidApiKey(_) => Code::InvalidArgument,
            Error::Transport(_) | Error::Incomplete { .. } => Code::Unavailable,
            Error::Status(status) => status.code(),
            Error::MalformedResponse(_) => Code::Internal,
        }
    }

    /// The message of this error without its code: the status message for
    /// [`Error::Status`], the display text (with its sources) otherwise.
    pub fn message(&self) -> String {
        match self {
            Error::Status(status) => status.message().to_owned(),
            other => other.to_string(),
        }
    }

    /// The gRPC status, if this error is one.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            Error::Status(status) => Some(status),
            _ => None,
        }
    }
}

/// The canonical upper snake case name of a gRPC status code (`"UNAVAILABLE"`,
/// `"INVALID_ARGUMENT"`, ...), as used in the gRPC specification.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// `err: source: source ...`, since `tonic::transport::Error` displays only
/// its kind ("transport error") and keeps the cause in its source chain.
pub(crate) fn with_sources(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        let cause_text = cause.to_string();
        // Some errors repeat their source in their own message.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_errors_display_code_and_message() {
        let err = Error::from(tonic::Status::invalid_argument("bad org \"-x\""));
        assert_eq!(err.to_string(), "INVALID_ARGUMENT: bad org \"-x\"");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(err.message(), "bad org \"-x\"");
    }

    #[test]
    fn other_errors_have_codes() {
        let err = Error::Incomplete { attempts: 6 };
        assert_eq!(err.code(), Code::Unavailable);
        assert_eq!(err.to_string(), "sync stream ended without a summary (6 attempts)");
        assert_eq!(Error::InvalidApiKey("x".into()).code(), Code::InvalidArgument);
        assert_eq!(code_name(Code::FailedPrecondition), "FAILED_PRECONDITION");
    }
}
