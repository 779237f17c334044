//! The shared cache: Redis through a connection manager that reconnects.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Mutex;

use super::{Cache, CacheError};

/// TLS material for Redis over TLS, all PEM.
#[derive(Default)]
pub struct RedisTls {
    /// CA certificates the server's certificate is verified against instead
    /// of the system's roots.
    pub root_pem: Option<Vec<u8>>,
    /// A client certificate chain and its key, for a Redis that requires
    /// clients to present one (`tls-auth-clients yes`).
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTls")
            .field("root_pem", &self.root_pem.is_some())
            .field("client", &self.client.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Redis cache. The connection is made lazily and re-made after failures, so a
/// Redis that is down at start-up or goes away later only degrades the service.
pub struct RedisCache {
    client: redis::Client,
    prefix: String,
    /// The connection, with the number of the attempt that made it.
    manager: Mutex<Option<(u64, ConnectionManager)>>,
    /// Connections made so far, numbering them.
    attempts: std::sync::atomic::AtomicU64,
    /// When the last connection attempt failed: for [`RECONNECT_AFTER`],
    /// operations fail at once instead of each trying (and waiting) again.
    failed_at: std::sync::Mutex<Option<std::time::Instant>>,
    timeout: Duration,
}

/// How long after a failed connection attempt the next one is made.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

impl RedisCache {
    /// A cache on `url` (`redis://host:port/db`, or `rediss://` for TLS,
    /// verified against the system's roots); every key is prefixed with `prefix`.
    pub fn new(url: &str, prefix: impl Into<String>) -> Result<Self, CacheError> {
        let client = redis::Client::open(url).map_err(|error| CacheError::Backend(error.to_string()))?;
        Ok(Self::on(client, prefix))
    }

    /// A cache on a `rediss://` `url` with `tls`: the server's certificate
    /// verified against its roots (the system's when it has none), and its
    /// client certificate sent when it has one.
    pub fn with_tls(url: &str, prefix: impl Into<String>, tls: RedisTls) -> Result<Self, CacheError> {
        let certificates = redis::TlsCertificates {
            client_tls: tls.client.map(|(client_cert, client_key)| redis::ClientTlsConfig {
                client_cert,
                client_key,
            }),
            root_cert: tls.root_pem,
        };
        let client =
            redis::Client::build_with_tls(url, certificates).map_err(|error| CacheError::Backend(error.to_string()))?;
        Ok(Self::on(client, prefix))
    }

    fn on(client: redis::Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
            manager: Mutex::new(None),
            attempts: std::sync::atomic::AtomicU64::new(0),
            failed_at: std::sync::Mutex::new(None),
            timeout: Duration::from_millis(1500),
        }
    }

    async fn connection(&self) -> Result<Connection<'_>, CacheError> {
        let mut guard = self.manager.lock().await;
        if let Some((number, manager)) = guard.as_ref() {
            return Ok(Connection {
                cache: self,
                number: *number,
                manager: manager.clone(),
            });
        }
        // Operations that queued behind an attempt that just failed (a Redis
        // that drops packets takes the whole timeout) fail at once, rather
        // than each waiting out an attempt of its own in turn.
        let recent = self
            .failed_at
            .lock()
            .ok()
            .and_then(|at| *at)
            .is_some_and(|at| at.elapsed() < RECONNECT_AFTER);
        if recent {
            return Err(CacheError::Unavailable(
                "not connected; the last attempt failed just now".into(),
            ));
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout)
            .set_number_of_retries(1);
        let connected = tokio::time::timeout(
            self.timeout * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| CacheError::Unavailable("connect timed out".into()))
        .and_then(|result| result.map_err(unavailable));
        if let Ok(mut at) = self.failed_at.lock() {
            *at = connected.is_err().then(std::time::Instant::now);
        }
        let manager = connected?;
        let number = self.attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *guard = Some((number, manager.clone()));
        Ok(Connection {
            cache: self,
            number,
            manager,
        })
    }

    /// Forgets connection `number` if it is still the current one, so that
    /// the next operation connects anew.
    async fn forget(&self, number: u64) {
        let mut guard = self.manager.lock().await;
        if guard.as_ref().is_some_and(|(current, _)| *current == number) {
            *guard = None;
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }
}

/// One operation's hold on the current connection.
struct Connection<'a> {
    cache: &'a RedisCache,
    number: u64,
    manager: ConnectionManager,
}

impl Connection<'_> {
    /// Runs `cmd`. A reply that did not come in time drops the connection:
    /// the connection manager reconnects only when the socket reports an
    /// error, and a connection left half-open by a failover (the old
    /// primary's address gone, nothing resetting the socket) never does, so
    /// every later operation would wait out its timeout on it too.
    async fn query<T: redis::FromRedisValue>(mut self, cmd: &redis::Cmd) -> Result<T, CacheError> {
        match cmd.query_async(&mut self.manager).await {
            Ok(value) => Ok(value),
            Err(error) => {
                if error.is_timeout() {
                    self.cache.forget(self.number).await;
                }
                Err(unavailable(error))
            }
        }
    }
}

fn unavailable(error: redis::RedisError) -> CacheError {
    if error.is_io_error() || error.is_timeout() || error.is_connection_dropped() || error.is_connection_refusal() {
        CacheError::Unavailable(error.to_string())
    } else {
        CacheError::Backend(error.to_string())
    }
}

fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        let value: Option<Vec<u8>> = self
            .connection()
            .await?
            .query(redis::cmd("GET").arg(self.key(key)))
            .await?;
        Ok(value.map(Bytes::from))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value.as_ref());
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl_millis(ttl));
        }
        self.connection().await?.query(&cmd).await
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.connection()
            .await?
            .query(redis::cmd("DEL").arg(self.key(key)))
            .await
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Duration) -> Result<bool, CacheError> {
        let reply: Option<String> = self
            .connection()
            .await?
            .query(
                redis::cmd("SET")
                    .arg(self.key(key))
                    .arg(value.as_ref())
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_millis(ttl)),
            )
            .await?;
        Ok(reply.is_some())
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, CacheError> {
        // PEXPIRE with 0 deletes the key, as `Cache::expire` says.
        let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.connection()
            .await?
            .query(redis::cmd("PEXPIRE").arg(self.key(key)).arg(millis))
            .await
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
