//! The site's own identity on the replication link: a key pair and a
//! self-signed certificate made on first start, and the fingerprint (SHA-256
//! of the certificate) that the peer pins at pairing.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The fingerprint a peer pins: the same type the API client pins with.
pub use ferry_api::pin::{BadFingerprint, Fingerprint};

/// The private key's file, beside site.toml.
pub const KEY_FILE: &str = "site.key";
/// The certificate's file, beside site.toml.
pub const CERT_FILE: &str = "site.crt";
/// The name the certificate is made for. Peers pin the certificate itself,
/// so no name is checked; this only has to be a valid DNS name.
pub const CERT_NAME: &str = "ferry-site";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is readable by other users (mode {mode:o}); the site's private key must be mode 0600: chmod 600 {path}"
    )]
    KeyExposed { path: PathBuf, mode: u32 },
    #[error("{path}: not a PEM {what}: {message}")]
    Parse {
        path: PathBuf,
        what: &'static str,
        message: String,
    },
    #[error("making the site's certificate failed: {0}")]
    Generate(String),
}

/// The site's certificate and private key.
pub struct Identity {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
    pub fingerprint: Fingerprint,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            cert: self.cert.clone(),
            key: self.key.clone_key(),
            fingerprint: self.fingerprint,
        }
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.fingerprint)
    }
}

impl Identity {
    /// Loads the identity kept in `dir`, making it on first start. Refuses a
    /// private key that other users can read.
    pub fn load_or_create(dir: &Path) -> Result<Self, IdentityError> {
        let key_path = dir.join(KEY_FILE);
        let cert_path = dir.join(CERT_FILE);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| IdentityError::Io { path, source }
        };
        if !key_path.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io(dir))?;
            create(&key_path, &cert_path)?;
        }
        let mode = std::fs::metadata(&key_path)
            .map_err(io(&key_path))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(IdentityError::KeyExposed {
                path: key_path,
                mode: mode & 0o777,
            });
        }
        let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| IdentityError::Parse {
            path: key_path.clone(),
            what: "private key",
            message: e.to_string(),
        })?;
        let cert = CertificateDer::from_pem_file(&cert_path).map_err(|e| IdentityError::Parse {
            path: cert_path.clone(),
            what: "certificate",
            message: e.to_string(),
        })?;
        Ok(Self {
            fingerprint: Fingerprint::of(&cert),
            cert,
            key,
        })
    }

    /// A fresh identity that lives only in memory (tests, benches).
    pub fn ephemeral() -> Result<Self, IdentityError> {
        let made = rcgen::generate_simple_self_signed(vec![CERT_NAME.to_string()])
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        let cert = CertificateDer::from(made.cert.der().to_vec());
        let key = PrivateKeyDer::try_from(made.signing_key.serialize_der())
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        Ok(Self {
            fingerprint: Fingerprint::of(&cert),
            cert,
            key,
        })
    }
}

/// Makes the key pair and certificate. The key file is created mode 0600
/// (never readable by others, not even for a moment) before a byte of the
/// key is written.
fn create(key_path: &Path, cert_path: &Path) -> Result<(), IdentityError> {
    let made = rcgen::generate_simple_self_signed(vec![CERT_NAME.to_string()])
        .map_err(|e| IdentityError::Generate(e.to_string()))?;
    write_private(key_path, made.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(cert_path, made.cert.pem()).map_err(|source| IdentityError::Io {
        path: cert_path.to_path_buf(),
        source,
    })
}

/// Writes a file that only its owner may read or write (mode 0600), fsynced.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    // An existing file keeps its mode through open(): narrow it too.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_makes_a_private_key_and_reloads_it() {
        let dir = tempfile::tempdir().unwrap();
        let made = Identity::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(made.fingerprint, again.fingerprint);
    }

    #[test]
    fn a_key_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Identity::load_or_create(dir.path()).unwrap();
        let key = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Identity::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, IdentityError::KeyExposed { .. }), "{err}");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn fingerprints_read_back_in_every_spelling() {
        let print = Identity::ephemeral().unwrap().fingerprint;
        let text = print.to_string();
        assert_eq!(text.parse::<Fingerprint>().unwrap(), print);
        let bare = text.trim_start_matches("sha256:").to_uppercase();
        assert_eq!(bare.parse::<Fingerprint>().unwrap(), print);
        assert!("sha256:abcd".parse::<Fingerprint>().is_err());
    }
}
