//! TLS and mutual TLS on the gRPC port, with certificates made for the test.

use std::path::PathBuf;

use connectors_client::ConnectorsClient;
use connectors_server::config::{Config, TlsFiles};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::support::TestServer;

struct Pki {
    dir: PathBuf,
    ca_pem: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let dir = std::env::temp_dir().join(format!("connectors-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client_cert = CertificateParams::new(vec!["scheduler".to_owned()])
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();
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
