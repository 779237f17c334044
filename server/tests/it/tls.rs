//! TLS and mutual TLS on the gRPC port, and Redis over TLS as the cache, with
//! certificates made for the test.

use std::path::PathBuf;

use connectors_client::ConnectorsClient;
use connectors_server::config::{Config, TlsFiles};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::support::TestServer;

pub(crate) struct Pki {
    pub(crate) dir: PathBuf,
    pub(crate) ca_pem: String,
    pub(crate) client_cert: String,
    pub(crate) client_key: String,
}

pub(crate) fn pki() -> Pki {
    let dir = std::env::temp_dir().join(format!("connectors-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Names of their own: with rcgen's one default name for all three, a
    // leaf's subject equals its issuer and OpenSSL (redis-server) takes it
    // for self-signed.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "connectors test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let leaf = |name: &str, key: &KeyPair| {
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.signed_by(key, &issuer).unwrap()
    };
    let server_key = KeyPair::generate().unwrap();
    let server_cert = leaf("localhost", &server_key);
    let client_key = KeyPair::generate().unwrap();
    let client_cert = leaf("scheduler", &client_key);
    std::fs::write(dir.join("server.pem"), server_cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    Pki {
        dir,
        ca_pem: ca_cert.pem(),
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    }
}

async fn tls_server(pki: &Pki, mutual: bool) -> TestServer {
    let mut config = Config::for_tests();
    config.tls = Some(TlsFiles {
        cert: pki.dir.join("server.pem"),
        key: pki.dir.join("server.key"),
        client_ca: mutual.then(|| pki.dir.join("ca.pem")),
    });
    TestServer::start_without_client(config).await
}

async fn connect(server: &TestServer, tls: Option<ClientTlsConfig>) -> Result<ConnectorsClient, String> {
    let port = server.server.addr.port();
    let endpoint = match tls {
        Some(tls) => Endpoint::from_shared(format!("https://localhost:{port}"))
            .unwrap()
            .tls_config(tls)
            .unwrap(),
        None => Endpoint::from_shared(format!("http://127.0.0.1:{port}")).unwrap(),
    };
    let channel = endpoint.connect().await.map_err(|e| format!("{e:?}"))?;
    Ok(ConnectorsClient::from_channel(channel))
}

#[tokio::test]
async fn tls_serves_clients_that_trust_the_ca() {
    let pki = pki();
    let server = tls_server(&pki, false).await;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost");
    let client = connect(&server, Some(tls)).await.unwrap();
    assert!(!client.list_connectors().await.unwrap().is_empty());
    // Plaintext gets nothing.
    let plain = connect(&server, None).await;
    let refused = match plain {
        Ok(client) => client.list_connectors().await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "plaintext must not be served");
}

#[tokio::test]
async fn a_connection_that_never_starts_its_tls_handshake_is_closed_after_the_timeout() {
    use tokio::io::AsyncReadExt as _;
    let pki = pki();
    let server = tls_server(&pki, false).await;
    let started = std::time::Instant::now();
    let mut silent = tokio::net::TcpStream::connect(server.server.addr).await.unwrap();
    let mut buf = [0u8; 16];
    // The server closes it (end of stream, or a reset) once the handshake
    // timeout passes; a test timeout of three times that fails the test.
    let closed = tokio::time::timeout(
        3 * connectors_server::server::TLS_HANDSHAKE_TIMEOUT,
        silent.read(&mut buf),
    )
    .await
    .expect("the server closed a connection that never started its handshake");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    assert!(started.elapsed() >= connectors_server::server::TLS_HANDSHAKE_TIMEOUT);
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let pki = pki();
    let server = tls_server(&pki, true).await;
    let with_identity = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost")
        .identity(Identity::from_pem(&pki.client_cert, &pki.client_key));
    let client = connect(&server, Some(with_identity)).await.unwrap();
    assert!(!client.list_connectors().await.unwrap().is_empty());

    let without_identity = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost");
    let refused = match connect(&server, Some(without_identity)).await {
        Ok(client) => client.list_connectors().await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a client without a certificate must be refused");
}

/// A redis-server of the test's own that speaks only TLS with the PKI's
/// server certificate (for localhost), requiring client certificates the
/// PKI's CA signed when `mutual`, and its `rediss://localhost:<port>` URL;
/// `None` to skip when redis-server is missing (never under `CI=true`).
/// Installs the process's rustls provider, as the server does.
fn tls_redis(pki: &Pki, mutual: bool) -> Option<(connectors_server::testing::RedisServer, String)> {
    connectors_server::server::install_crypto_provider();
    let started = connectors_server::testing::RedisServer::start_tls(
        &pki.dir.join("server.pem"),
        &pki.dir.join("server.key"),
        mutual.then(|| pki.dir.join("ca.pem")).as_deref(),
    );
    match started {
        Ok(redis) => {
            // The certificate names localhost, not 127.0.0.1.
            let port = redis.url().rsplit(':').next().unwrap().to_owned();
            Some((redis, format!("rediss://localhost:{port}")))
        }
        Err(error) if std::env::var("CI").map_or(true, |v| v != "true") => {
            eprintln!("skipping: {error}");
            None
        }
        Err(error) => panic!("redis-server with TLS is required under CI=true: {error}"),
    }
}

/// The cache's Redis client over TLS verifies the server: with the private CA
/// that signed its certificate it reads and writes; with the system's roots,
/// or another CA, it connects to nothing (an error, a miss to the server).
#[tokio::test]
async fn the_redis_cache_over_tls_trusts_only_the_ca_that_signed_the_server() {
    use bytes::Bytes;
    use connectors_server::cache::{Cache, CacheError, RedisCache};

    let pki = pki();
    let Some((_redis, url)) = tls_redis(&pki, false) else {
        return;
    };
    let trusting = RedisCache::with_tls(&url, "tls-test:", roots(pki.ca_pem.clone())).unwrap();
    trusting.set("k", Bytes::from_static(b"over tls"), None).await.unwrap();
    assert_eq!(trusting.get("k").await.unwrap(), Some(Bytes::from_static(b"over tls")));
    assert!(
        trusting
            .set_if_absent("lease", Bytes::from_static(b"a"), std::time::Duration::from_secs(5))
            .await
            .unwrap()
    );

    let system_roots = RedisCache::new(&url, "tls-test:").unwrap();
    let refused = system_roots
        .get("k")
        .await
        .expect_err("an unverified server is refused");
    assert!(matches!(refused, CacheError::Unavailable(_)), "{refused}");
    let other_ca = pki_other_ca();
    let wrong = RedisCache::with_tls(&url, "tls-test:", roots(other_ca)).unwrap();
    assert!(wrong.get("k").await.is_err());
}

/// Redis TLS material that trusts only `ca_pem`, without a client certificate.
fn roots(ca_pem: String) -> connectors_server::cache::RedisTls {
    connectors_server::cache::RedisTls {
        root_pem: Some(ca_pem.into_bytes()),
        client: None,
    }
}

/// A Redis that requires client certificates (`tls-auth-clients yes`) serves
/// a cache that shows one its CA signed, and refuses one that shows none.
#[tokio::test]
async fn a_redis_requiring_client_certificates_serves_only_a_cache_that_shows_one() {
    use bytes::Bytes;
    use connectors_server::cache::{Cache, RedisCache, RedisTls};

    let pki = pki();
    let Some((_redis, url)) = tls_redis(&pki, true) else {
        return;
    };
    let identified = RedisTls {
        client: Some((
            pki.client_cert.clone().into_bytes(),
            pki.client_key.clone().into_bytes(),
        )),
        ..roots(pki.ca_pem.clone())
    };
    let cache = RedisCache::with_tls(&url, "mtls-test:", identified).unwrap();
    cache.set("k", Bytes::from_static(b"mutual"), None).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), Some(Bytes::from_static(b"mutual")));
    let anonymous = RedisCache::with_tls(&url, "mtls-test:", roots(pki.ca_pem.clone())).unwrap();
    assert!(
        anonymous.get("k").await.is_err(),
        "a client without a certificate must be refused"
    );
}

/// A CA certificate that signed nothing of the test's.
fn pki_other_ca() -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

/// Redis over TLS (`rediss://`) whose certificate a private CA signed
/// (`REDIS_CA_FILE`) and which requires a client certificate
/// (`REDIS_CLIENT_CERT`, `REDIS_CLIENT_KEY`): the cache is healthy, and a
/// sync's state kept there is what the no-change INCREMENTAL sync from its
/// checkpoint reads.
#[tokio::test]
async fn the_cache_on_redis_over_tls_keeps_the_sync_state() {
    use connectors_proto::github::v1::SyncRequest;

    use crate::conformance::{collect, full, incremental};
    use crate::support::{summary, upserts};

    let pki = pki();
    let Some((_redis, url)) = tls_redis(&pki, true) else {
        return;
    };
    std::fs::write(pki.dir.join("client.pem"), &pki.client_cert).unwrap();
    std::fs::write(pki.dir.join("client.key"), &pki.client_key).unwrap();
    let mut config = Config::for_tests();
    config.redis_url = Some(url);
    config.redis_ca_file = Some(pki.dir.join("ca.pem"));
    config.redis_client_identity = Some((pki.dir.join("client.pem"), pki.dir.join("client.key")));
    let server = TestServer::with_config(config).await;
    let sync = |options| {
        let mut github = server.client.github();
        async move {
            let request = SyncRequest {
                options: Some(options),
                ..Default::default()
            };
            github.sync(request).await.map(|r| r.into_inner())
        }
    };
    let base = collect(sync(full()).await).await;
    let first = summary(&base);
    assert!(first.complete);
    assert_eq!(upserts(&base).len(), 102);
    let events = collect(sync(incremental(first.checkpoint.clone())).await).await;
    let second = summary(&events);
    assert!(second.complete);
    assert_eq!(upserts(&events).len(), 0);
    // Every listing page answered 304 from the cache's stored bodies.
    assert_eq!((second.upstream_requests, second.cache_hits), (5, 5));
    assert!(!server.server.cache.is_degraded());
}
