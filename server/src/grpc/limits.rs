//! Stream limits: a server-wide and a per-client cap on open Sync streams.
//! Excess is shed with RESOURCE_EXHAUSTED carrying RetryInfo.
//!
//! A client is its API key; without one, the identity a service mesh's proxy
//! put in `CONNECTORS_CLIENT_IDENTITY_HEADER` (behind a sidecar every
//! connection comes from loopback, so the peer IP makes all clients one);
//! else its peer IP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::auth::ClientId;

/// Caps on open Sync streams.
#[derive(Debug)]
pub struct StreamLimits {
    global: Arc<Semaphore>,
    per_client_max: usize,
    per_client: Mutex<HashMap<String, Arc<Semaphore>>>,
    retry_after: Duration,
    /// The header a mesh proxy sets to the client's identity, if configured.
    identity_header: Option<http::HeaderName>,
}

/// Permits held by an open stream; dropping them frees the slots.
#[derive(Debug)]
pub struct StreamPermits {
    _global: OwnedSemaphorePermit,
    _client: OwnedSemaphorePermit,
}

impl StreamLimits {
    /// At most `global` streams in all and `per_client` per client.
    pub fn new(global: usize, per_client: usize) -> Self {
        Self {
            global: Arc::new(Semaphore::new(global.max(1))),
            per_client_max: per_client.max(1),
            per_client: Mutex::new(HashMap::new()),
            retry_after: Duration::from_secs(5),
            identity_header: None,
        }
    }

    /// Clients without an API key are told apart by the value of `header`
    /// (`CONNECTORS_CLIENT_IDENTITY_HEADER`) when a request carries it.
    pub fn with_identity_header(mut self, header: Option<http::HeaderName>) -> Self {
        self.identity_header = header;
        self
    }

    /// The identity a request is limited under: its API key's id, else the
    /// identity header's value (its last element, hashed), else its peer IP.
    pub fn client_of<T>(&self, request: &tonic::Request<T>) -> String {
        if let Some(ClientId(id)) = request.extensions().get::<ClientId>() {
            return format!("key:{id}");
        }
        // The last instance of the header, and of its comma-separated
        // elements, is the one the proxy in front of the server added.
        let mesh = self.identity_header.as_ref().and_then(|name| {
            let value = request.metadata().get_all(name.as_str()).iter().next_back()?;
            Some(last_element(value.as_bytes())).filter(|element| !element.is_empty())
        });
        if let Some(identity) = mesh {
            // Hashed: a key of bounded length, whatever the header holds.
            return format!("mesh:{}", hex::encode(&Sha256::digest(identity)[..16]));
        }
        match request.remote_addr() {
            Some(addr) => format!("ip:{}", addr.ip()),
            None => "unknown".to_owned(),
        }
    }

    fn exhausted(&self, message: &str, reason: &str) -> Status {
        metrics::counter!("connectors_streams_shed_total", "reason" => reason.to_owned()).increment(1);
        let mut details = ErrorDetails::with_retry_info(Some(self.retry_after));
        details.set_error_info(reason, "connectors.example.invalid", HashMap::new());
        Status::with_error_details(Code::ResourceExhausted, message, details)
    }

    /// Takes a slot for `client`, or sheds the stream.
    pub fn acquire(&self, client: &str) -> Result<StreamPermits, Status> {
        let global = self
            .global
            .clone()
            .try_acquire_owned()
            .map_err(|_| self.exhausted("the server is at its stream limit; retry later", "SERVER_STREAM_LIMIT"))?;
        let client_permit = {
            let mut map = self
                .per_client
                .lock()
                .map_err(|_| Status::internal("limits lock poisoned"))?;
            // Forget idle clients so the map does not grow without bound.
            // The permit is taken under the lock: a semaphore taken from
            // the map afterwards could be forgotten as idle in between, and
            // the client's next stream would get a fresh one.
            map.retain(|_, s| s.available_permits() < self.per_client_max);
            map.entry(client.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_client_max)))
                .clone()
                .try_acquire_owned()
        }
        .map_err(|_| {
            self.exhausted(
                &format!(
                    "this client has {} open streams, the most allowed; retry later",
                    self.per_client_max
                ),
                "CLIENT_STREAM_LIMIT",
            )
        })?;
        Ok(StreamPermits {
            _global: global,
            _client: client_permit,
        })
    }
}

/// The last element of a comma-separated header value, where commas inside
/// double quotes separate nothing. Envoy (Istio's sidecar) forwards
/// `x-forwarded-client-cert` as the client sent it and appends the element of
/// the connection's own client certificate (APPEND_FORWARD): read from the
/// end, whatever a client put before that element (an unclosed quote, say)
/// does not change where it starts.
fn last_element(value: &[u8]) -> &[u8] {
    let mut quoted = false;
    let mut start = 0;
    for i in (0..value.len()).rev() {
        match value[i] {
            b'"' => {
                let backslashes = value[..i].iter().rev().take_while(|b| **b == b'\\').count();
                if backslashes % 2 == 0 {
                    quoted = !quoted;
                }
            }
            b',' if !quoted => {
                start = i + 1;
                break;
            }
            _ => {}
        }
    }
    value[start..].trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_is_the_element_the_proxy_appended_last() {
        let istio = br#"By=spiffe://cluster.local/ns/connectors/sa/connectors;Hash=4b1e;Subject="";URI=spiffe://cluster.local/ns/jobs/sa/scheduler-a"#;
        assert_eq!(last_element(istio), istio);
        // What a client sent itself comes before, quotes and commas and all.
        let mut forged = br#"By=x;URI="spiffe://cluster.local/ns/jobs/sa/scheduler-b,"#.to_vec();
        forged.extend_from_slice(b",");
        forged.extend_from_slice(istio);
        assert_eq!(last_element(&forged), istio);
        // A quoted comma (a certificate subject) does not separate.
        let subject = br#"Hash=77ab;Subject="CN=scheduler,O=Example\"s";URI=spiffe://a"#;
        assert_eq!(last_element(&[b"Hash=1, ".as_slice(), subject].concat()), subject);
        assert_eq!(
            last_element(b"scheduler-a.jobs.serviceaccount.identity.linkerd.cluster.local"),
            b"scheduler-a.jobs.serviceaccount.identity.linkerd.cluster.local"
        );
        assert_eq!(last_element(b"a, "), b"");
    }

    #[test]
    fn per_client_and_global_limits_shed_with_retry_info() {
        let limits = StreamLimits::new(3, 2);
        let a1 = limits.acquire("a").unwrap();
        let _a2 = limits.acquire("a").unwrap();
        let denied = limits.acquire("a").unwrap_err();
        assert_eq!(denied.code(), Code::ResourceExhausted);
        let details = denied.get_error_details();
        assert_eq!(
            details.retry_info().and_then(|r| r.retry_delay),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            details.error_info().map(|i| i.reason.as_str()),
            Some("CLIENT_STREAM_LIMIT")
        );
        let _b1 = limits.acquire("b").unwrap();
        let global = limits.acquire("c").unwrap_err();
        assert_eq!(
            global.get_error_details().error_info().map(|i| i.reason.clone()),
            Some("SERVER_STREAM_LIMIT".into())
        );
        drop(a1);
        assert!(limits.acquire("a").is_ok(), "a closed stream frees its slot");
    }

    #[test]
    fn clients_racing_for_slots_get_no_more_than_their_limit() {
        for _ in 0..200 {
            let limits = Arc::new(StreamLimits::new(1000, 2));
            let start = Arc::new(std::sync::Barrier::new(8));
            let workers: Vec<_> = (0..8)
                .map(|i| {
                    let (limits, start) = (limits.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        // Others come and go, emptying the map of idle clients.
                        let _other = limits.acquire(&format!("other-{i}"));
                        limits.acquire("x").ok()
                    })
                })
                .collect();
            let held: Vec<_> = workers.into_iter().filter_map(|w| w.join().unwrap()).collect();
            assert!(held.len() <= 2, "{} streams of a client limited to 2", held.len());
        }
    }
}
