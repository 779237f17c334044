//! TLS that verifies the server's certificate against a configured name
//! instead of the URL's host (a kubeconfig cluster's `tls-server-name`: an
//! API server reached by IP or through a load balancer whose name its
//! certificate does not hold). reqwest has no such setting, so the rustls
//! configuration is built here and handed over preconfigured.
//!
//! Only the verification name changes: the SNI a client sends is still the
//! URL's host (none for an IP address), as reqwest sets it.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::{ClientIdentity, UpstreamError};

/// Verifies as webpki does, for `name` whatever name the connection asked for.
#[derive(Debug)]
struct NamedVerifier {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn invalid(what: &str, error: impl std::fmt::Display) -> UpstreamError {
    UpstreamError::InvalidRequest(format!("{what}: {error}"))
}

/// A rustls client configuration trusting `roots` (DER) only, verifying the
/// server's certificate for `name`, with the client identity if any, for
/// HTTP/2 or HTTP/1.1.
pub(super) fn client_config(
    name: &str,
    roots: &[Vec<u8>],
    identity: Option<&ClientIdentity>,
) -> Result<rustls::ClientConfig, UpstreamError> {
    let name = ServerName::try_from(name.to_owned()).map_err(|e| invalid("tls server name", e))?;
    let mut store = rustls::RootCertStore::empty();
    for der in roots {
        store
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| invalid("ca certificate", e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .build()
        .map_err(|e| invalid("ca certificate", e))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("tls", e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NamedVerifier { inner, name }));
    let mut config = match identity {
        Some(identity) => {
            let chain = CertificateDer::pem_slice_iter(&identity.0)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid("client certificate", e))?;
            let key = PrivateKeyDer::from_pem_slice(&identity.0).map_err(|e| invalid("client key", e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| invalid("client certificate", e))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
