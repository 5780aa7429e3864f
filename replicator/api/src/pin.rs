//! Trust in a certificate by its pinned fingerprint, as SSH trusts a host
//! key: no certificate authority, one SHA-256 of the certificate kept by the
//! one who trusts it. One verifier serves every place ferry pins: the TUI's
//! and CLI's API client, and both ends of the replication link (which pin
//! each other's certificate at pairing). It remembers what it saw, so a
//! refusal can name both fingerprints and a first contact can show the one
//! to confirm.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// SHA-256 of a certificate (DER), the value a peer or a client pins.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(cert_der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, cert_der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }
}

/// Written as `sha256:` and 64 lowercase hex digits, the form a site shows
/// in `GET /api/v1/site`.
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Text that is not a certificate fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a SHA-256 fingerprint (sha256: and 64 hex digits)")]
pub struct BadFingerprint(pub String);

/// Reads `sha256:<hex>`, and for convenience bare hex with or without the
/// colons some tools put between bytes, in either case.
impl FromStr for Fingerprint {
    type Err = BadFingerprint;

    fn from_str(text: &str) -> Result<Self, BadFingerprint> {
        let trimmed = text.trim();
        let hex = trimmed
            .strip_prefix("sha256:")
            .or_else(|| trimmed.strip_prefix("SHA256:"))
            .unwrap_or(trimmed);
        let digits: Vec<u8> = hex.bytes().filter(|b| *b != b':').collect();
        let bad = || BadFingerprint(text.to_string());
        if digits.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks(2).enumerate() {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

/// Accepts exactly the pinned certificate (none when nothing is pinned yet:
/// then every certificate is refused) and keeps the last one presented. The
/// signature over the handshake is still checked with the certificate's
/// key, so holding a copy of the certificate is not enough. Names and dates
/// are not checked: the pin is the whole trust.
#[derive(Debug)]
pub struct PinnedCert {
    pinned: Option<Fingerprint>,
    /// Written by the handshake, read after it failed to say why.
    seen: Mutex<Option<Fingerprint>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedCert {
    pub fn new(pinned: Option<Fingerprint>) -> Arc<Self> {
        Arc::new(Self {
            pinned,
            seen: Mutex::new(None),
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        })
    }

    pub fn pinned(&self) -> Option<Fingerprint> {
        self.pinned
    }

    /// The fingerprint presented last, if a handshake got so far.
    pub fn seen(&self) -> Option<Fingerprint> {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A client config (TLS 1.3, ring) trusting only this pin and showing
    /// no certificate of its own: the API client's.
    pub fn client_config(self: &Arc<Self>) -> Result<rustls::ClientConfig, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(self.clone())
            .with_no_client_auth())
    }

    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let got = Fingerprint::of(cert);
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(got);
        match self.pinned {
            Some(pinned) if pinned == got => Ok(()),
            Some(pinned) => Err(rustls::Error::General(format!(
                "the certificate presented, {got}, is not the pinned {pinned}"
            ))),
            None => Err(rustls::Error::General(format!(
                "nothing is pinned yet; refusing certificate {got}"
            ))),
        }
    }
}

/// Only TLS 1.3 is offered, so a TLS 1.2 signature never has to be checked.
fn no_tls12() -> rustls::Error {
    rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered)
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(no_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The replication link's server end asks its peer for a certificate too,
/// and pins it the same way.
impl ClientCertVerifier for PinnedCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(no_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_reads_its_own_text_and_bare_hex() {
        let print = Fingerprint::of(b"a certificate");
        let text = print.to_string();
        assert!(
            text.starts_with("sha256:") && text.len() == 7 + 64,
            "{text}"
        );
        assert_eq!(text.parse::<Fingerprint>().unwrap(), print);
        let colons: Vec<String> = print.0.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(colons.join(":").parse::<Fingerprint>().unwrap(), print);
        assert!("sha256:abcd".parse::<Fingerprint>().is_err());
    }

    #[test]
    fn only_the_pinned_certificate_passes_and_the_last_one_is_remembered() {
        let (ours, theirs) = (CertificateDer::from(vec![1u8; 40]), vec![2u8; 40]);
        let theirs = CertificateDer::from(theirs);
        let pin = PinnedCert::new(Some(Fingerprint::of(&ours)));
        assert!(pin.check(&ours).is_ok());
        let refused = pin.check(&theirs).unwrap_err().to_string();
        assert!(refused.contains("not the pinned"), "{refused}");
        assert_eq!(pin.seen(), Some(Fingerprint::of(&theirs)));
        let unpinned = PinnedCert::new(None);
        assert!(unpinned.check(&ours).is_err());
        assert_eq!(unpinned.seen(), Some(Fingerprint::of(&ours)));
    }
}
