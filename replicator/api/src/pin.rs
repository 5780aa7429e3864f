//! Trust in a site's API certificate by its pinned fingerprint, as SSH
//! trusts a host key: no certificate authority, one SHA-256 of the
//! certificate kept in the caller's config. The verifier remembers what it
//! saw, so a refusal can name both fingerprints and a first contact can show
//! the one to confirm.

use std::sync::{Arc, Mutex};

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// `sha256:` and 64 lowercase hex digits of the certificate's DER, the form
/// a site shows in `GET /api/v1/site` and its peer pins.
pub fn fingerprint_of(cert_der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert_der);
    let mut out = String::from("sha256:");
    for b in digest.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Accepts exactly the pinned certificate (none when nothing is pinned yet)
/// and keeps the last fingerprint a server presented.
#[derive(Debug)]
pub struct PinnedApi {
    pinned: Option<String>,
    seen: Mutex<Option<String>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedApi {
    pub fn new(pinned: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            pinned: pinned.map(|p| p.to_ascii_lowercase()),
            seen: Mutex::new(None),
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        })
    }

    pub fn pinned(&self) -> Option<&str> {
        self.pinned.as_deref()
    }

    /// The fingerprint the server presented last, if a handshake got so far.
    pub fn seen(&self) -> Option<String> {
        self.seen.lock().map(|s| s.clone()).unwrap_or(None)
    }

    /// A rustls client config trusting only this pin, TLS 1.3, ring.
    pub fn client_config(self: &Arc<Self>) -> Result<rustls::ClientConfig, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(self.clone())
            .with_no_client_auth())
    }
}

impl ServerCertVerifier for PinnedApi {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The name and dates do not matter: the pin is the whole trust, as
        // for the replication link.
        let seen = fingerprint_of(end_entity.as_ref());
        if let Ok(mut last) = self.seen.lock() {
            *last = Some(seen.clone());
        }
        match &self.pinned {
            Some(pinned) if *pinned == seen => Ok(ServerCertVerified::assertion()),
            Some(_) => Err(rustls::Error::General("certificate changed".into())),
            None => Err(rustls::Error::General("certificate not pinned yet".into())),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // TLS 1.2 is not offered.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
