//! The caller's deadline on a Sync stream.
//!
//! A gRPC client sends its deadline as `grpc-timeout`. tonic enforces it only
//! until the response headers are sent, and a Sync stream runs long past
//! them, so a stream whose caller has stopped waiting (a mesh that timed the
//! call out without resetting it, a client that died behind a proxy) would
//! crawl on to its end. The gate bounds the stream itself: when the deadline
//! passes, the sync is dropped (its upstream work stops, as when the client
//! goes away) and the stream ends with DEADLINE_EXCEEDED. The client resumes
//! from the last checkpoint it received.

use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::time::Instant;
use tonic::metadata::MetadataMap;

use super::EventStream;
use crate::sync::{EncodedEvent, SyncError};

/// The request header carrying the caller's deadline.
pub const HEADER: &str = "grpc-timeout";

/// Parses a `grpc-timeout` value: 1 to 8 digits and a unit, `H` (hours),
/// `M` (minutes), `S` (seconds), `m` (milliseconds), `u` (microseconds) or
/// `n` (nanoseconds), as in the gRPC over HTTP/2 protocol.
pub fn parse(value: &str) -> Option<Duration> {
    let unit = value.chars().last()?;
    let digits = &value[..value.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        'H' => Duration::from_secs(amount * 3600),
        'M' => Duration::from_secs(amount * 60),
        'S' => Duration::from_secs(amount),
        'm' => Duration::from_millis(amount),
        'u' => Duration::from_micros(amount),
        'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The caller's timeout, if it sent one. A value that is not a gRPC timeout
/// is refused naming the header (a deadline silently dropped would let the
/// stream outlive its caller).
pub fn timeout_of(metadata: &MetadataMap) -> Result<Option<Duration>, SyncError> {
    let Some(value) = metadata.get(HEADER) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default();
    parse(text).map(Some).ok_or_else(|| {
        SyncError::invalid(
            HEADER,
            format!(
                "{:?} is not a gRPC timeout (1 to 8 digits and a unit: H, M, S, m, u or n)",
                super::validate::truncate(text)
            ),
        )
    })
}

/// The instant `timeout` from now, or none when that is too far to represent
/// (it never passes).
pub fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// `stream` until `deadline`: then the stream is dropped (cancelling the
/// sync) and the last item is DEADLINE_EXCEEDED. Items ready at the deadline
/// are not sent: the caller has stopped waiting for them.
pub fn bounded<S>(stream: S, deadline: Instant, timeout: Duration, span: tracing::Span) -> EventStream
where
    S: Stream<Item = Result<EncodedEvent, tonic::Status>> + Send + Unpin + 'static,
{
    let sleep = Box::pin(tokio::time::sleep_until(deadline));
    Box::pin(futures::stream::unfold(Some((stream, sleep)), move |state| {
        let span = span.clone();
        async move {
            let (mut stream, mut sleep) = state?;
            tokio::select! {
                biased;
                () = &mut sleep => {
                    drop(stream);
                    let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
                    span.in_scope(|| tracing::info!(timeout_ms, "the caller's deadline passed; sync stream ended"));
                    let message = format!(
                        "the call's deadline ({timeout_ms} ms) passed before the sync finished; resume from the last checkpoint"
                    );
                    Some((Err(super::status_from(SyncError::DeadlineExceeded(message))), None))
                }
                item = stream.next() => item.map(|item| (item, Some((stream, sleep)))),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_nothing_else_does() {
        assert_eq!(parse("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse("15S"), Some(Duration::from_secs(15)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(parse("1n"), Some(Duration::from_nanos(1)));
        assert_eq!(parse("0S"), Some(Duration::ZERO));
        for bad in ["", "S", "10", "123456789S", "10s", "-1S", "1.5S", "10 S", "+5m", "5é"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_timeout_past_what_an_instant_holds_is_no_deadline() {
        // The longest timeout a header can carry (over 11,000 years) fits;
        // u64::MAX seconds does not, and must not panic.
        let far = parse("99999999H").unwrap();
        assert!(deadline_after(far).is_some_and(|at| at > Instant::now()));
        assert_eq!(deadline_after(Duration::MAX), None);
    }

    #[test]
    fn a_header_that_is_not_a_timeout_is_refused_naming_it() {
        let mut metadata = MetadataMap::new();
        assert_eq!(timeout_of(&metadata).unwrap(), None);
        metadata.insert(HEADER, "1500m".parse().unwrap());
        assert_eq!(timeout_of(&metadata).unwrap(), Some(Duration::from_millis(1500)));
        metadata.insert(HEADER, "soon".parse().unwrap());
        let error = timeout_of(&metadata).unwrap_err();
        assert_eq!(
            error.to_string(),
            "grpc-timeout: \"soon\" is not a gRPC timeout (1 to 8 digits and a unit: H, M, S, m, u or n)"
        );
    }
}
