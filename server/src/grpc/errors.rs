//! Domain errors to gRPC statuses, with `google.rpc.ErrorInfo` details.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::sync::SyncError;

const DOMAIN: &str = "connectors.example.invalid";

fn with_info(code: Code, message: String, reason: &str, metadata: HashMap<String, String>) -> Status {
    let details = ErrorDetails::with_error_info(reason, DOMAIN, metadata);
    Status::with_error_details(code, message, details)
}

/// Maps a sync error to a status. Exhaustive on purpose: a new variant must
/// choose its code.
pub fn status_from(error: SyncError) -> Status {
    let message = error.to_string();
    match error {
        SyncError::InvalidArgument { field, .. } => {
            let mut details = ErrorDetails::with_bad_request_violation(field.clone(), message.clone());
            details.set_error_info("INVALID_FIELD", DOMAIN, HashMap::from([("field".to_owned(), field)]));
            Status::with_error_details(Code::InvalidArgument, message, details)
        }
        SyncError::FailedPrecondition { reason, .. } => {
            with_info(Code::FailedPrecondition, message, reason, HashMap::new())
        }
        SyncError::UpstreamUnauthenticated(_) => {
            // The server's upstream credential was rejected: not the client's
            // fault, so not UNAUTHENTICATED (that is for the client's own credential).
            with_info(
                Code::FailedPrecondition,
                message,
                "UPSTREAM_CREDENTIALS_REJECTED",
                HashMap::new(),
            )
        }
        SyncError::UpstreamPermissionDenied(_) => with_info(
            Code::PermissionDenied,
            message,
            "UPSTREAM_PERMISSION_DENIED",
            HashMap::new(),
        ),
        SyncError::Unavailable(_) => with_info(Code::Unavailable, message, "UNAVAILABLE", HashMap::new()),
        SyncError::DeadlineExceeded(_) => {
            with_info(Code::DeadlineExceeded, message, "DEADLINE_EXCEEDED", HashMap::new())
        }
        SyncError::Internal(_) => with_info(Code::Internal, message, "INTERNAL", HashMap::new()),
    }
}
