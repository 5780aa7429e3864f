//! Mutual authentication of two sites with their pairing secret.
//!
//! Each side sends a fresh 32-byte nonce and proves it holds the secret with a
//! keyed BLAKE3 MAC over both nonces, both site names and its role. Nothing
//! secret crosses the wire, a recorded handshake cannot be replayed (the other
//! side's nonce is new each time), and the client checks the server too, so a
//! stranger cannot pose as the recovery site and collect a VM's disks.

use std::io::{Read, Write};

use super::error::WireError;
use super::frame::{FrameReader, FrameWriter};
use super::message::{Message, PROTOCOL_VERSION, decode};

/// The key both sites derive from the pairing secret.
#[derive(Clone)]
pub struct PairingSecret {
    key: [u8; 32],
}

impl std::fmt::Debug for PairingSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairingSecret(..)")
    }
}

/// Shortest pairing secret accepted.
pub const MIN_SECRET_LEN: usize = 16;

/// A pairing secret too short to be one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the pairing secret has {length} characters; at least {MIN_SECRET_LEN} are needed")]
pub struct ShortSecret {
    pub length: usize,
}

impl PairingSecret {
    pub fn new(secret: &str) -> Result<Self, ShortSecret> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(ShortSecret {
                length: secret.len(),
            });
        }
        Ok(Self {
            key: blake3::derive_key("ferry 2026 site pairing v1", secret.as_bytes()),
        })
    }

    /// A key both ends already share, such as one exported from their TLS
    /// session.
    pub fn from_key(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn proof(&self, role: &str, nonces: [&[u8; 32]; 2], sites: [&str; 2]) -> blake3::Hash {
        let mut mac = blake3::Hasher::new_keyed(&self.key);
        mac.update(role.as_bytes());
        for nonce in nonces {
            mac.update(nonce);
        }
        for site in sites {
            mac.update(&(site.len() as u64).to_le_bytes());
            mac.update(site.as_bytes());
        }
        mac.finalize()
    }
}

fn nonce() -> Result<[u8; 32], WireError> {
    let mut nonce = [0u8; 32];
    getrandom::fill(&mut nonce).map_err(|e| WireError::Io(std::io::Error::other(e.to_string())))?;
    Ok(nonce)
}

fn send<W: Write>(w: &mut FrameWriter<W>, message: &Message<'_>) -> Result<(), WireError> {
    let mut buf = Vec::new();
    message.encode(&mut buf);
    w.write(message.kind(), &buf)?;
    w.flush()?;
    Ok(())
}

/// Authenticates as the connecting site; returns the peer's site name.
pub fn client<R: Read, W: Write>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    secret: &PairingSecret,
    site: &str,
) -> Result<String, WireError> {
    let ours = nonce()?;
    send(
        writer,
        &Message::ClientHello {
            version: PROTOCOL_VERSION,
            site,
            nonce: ours,
        },
    )?;
    let (kind, payload) = reader.read()?;
    let (peer, theirs) = match decode(kind, payload)? {
        Message::ServerHello {
            version,
            site: peer,
            nonce,
            proof,
        } => {
            check_version(version)?;
            let expected = secret.proof("server", [&ours, &nonce], [site, peer]);
            if expected != blake3::Hash::from_bytes(proof) {
                return Err(WireError::Auth(format!(
                    "site {peer:?} does not hold our pairing secret"
                )));
            }
            (peer.to_string(), nonce)
        }
        Message::Refused { reason } => return Err(WireError::Refused(reason.into())),
        other => return Err(unexpected("ServerHello", &other)),
    };
    let proof = secret.proof("client", [&theirs, &ours], [site, &peer]);
    send(
        writer,
        &Message::ClientProof {
            proof: *proof.as_bytes(),
        },
    )?;
    let (kind, payload) = reader.read()?;
    match decode(kind, payload)? {
        Message::Welcome => Ok(peer),
        Message::Refused { reason } => Err(WireError::Refused(reason.into())),
        other => Err(unexpected("Welcome", &other)),
    }
}

/// Authenticates a connecting site; returns its site name.
pub fn server<R: Read, W: Write>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    secret: &PairingSecret,
    site: &str,
) -> Result<String, WireError> {
    let (kind, payload) = reader.read()?;
    let (peer, theirs) = match decode(kind, payload)? {
        Message::ClientHello {
            version,
            site: peer,
            nonce,
        } => {
            check_version(version)?;
            (peer.to_string(), nonce)
        }
        other => return Err(unexpected("ClientHello", &other)),
    };
    let ours = nonce()?;
    let proof = secret.proof("server", [&theirs, &ours], [&peer, site]);
    send(
        writer,
        &Message::ServerHello {
            version: PROTOCOL_VERSION,
            site,
            nonce: ours,
            proof: *proof.as_bytes(),
        },
    )?;
    let (kind, payload) = reader.read()?;
    match decode(kind, payload)? {
        Message::ClientProof { proof } => {
            // blake3::Hash compares in constant time.
            let expected = secret.proof("client", [&ours, &theirs], [&peer, site]);
            if expected != blake3::Hash::from_bytes(proof) {
                return Err(WireError::Auth(format!(
                    "peer calling itself {peer:?} does not hold the pairing secret"
                )));
            }
        }
        other => return Err(unexpected("ClientProof", &other)),
    }
    send(writer, &Message::Welcome)?;
    Ok(peer)
}

fn check_version(version: u16) -> Result<(), WireError> {
    if version != PROTOCOL_VERSION {
        return Err(WireError::Refused(format!(
            "protocol version {version} is not supported (this site speaks {PROTOCOL_VERSION})"
        )));
    }
    Ok(())
}

pub(crate) fn unexpected(expected: &'static str, got: &Message<'_>) -> WireError {
    WireError::Unexpected {
        expected,
        got: got.name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::frame::MAX_HANDSHAKE_FRAME;
    use std::net::{TcpListener, TcpStream};

    fn run(
        client_secret: &str,
        server_secret: &str,
    ) -> (Result<String, WireError>, Result<String, WireError>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server_secret = PairingSecret::new(server_secret).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut r = FrameReader::new(stream.try_clone().unwrap(), MAX_HANDSHAKE_FRAME);
            let mut w = FrameWriter::new(stream);
            server(&mut r, &mut w, &server_secret, "site-b")
        });
        let stream = TcpStream::connect(addr).unwrap();
        let mut r = FrameReader::new(stream.try_clone().unwrap(), MAX_HANDSHAKE_FRAME);
        let mut w = FrameWriter::new(stream);
        let secret = PairingSecret::new(client_secret).unwrap();
        let client = client(&mut r, &mut w, &secret, "site-a");
        drop((r, w));
        (client, server.join().unwrap())
    }

    #[test]
    fn same_secret_authenticates_both_ways() {
        let (c, s) = run("correct horse battery", "correct horse battery");
        assert_eq!(c.unwrap(), "site-b");
        assert_eq!(s.unwrap(), "site-a");
    }

    #[test]
    fn wrong_secret_fails_on_both_sides() {
        let (c, s) = run("correct horse battery", "incorrect horse battery");
        assert!(matches!(c, Err(WireError::Auth(_))), "{c:?}");
        assert!(s.is_err());
    }

    #[test]
    fn short_secret_is_refused() {
        assert!(PairingSecret::new("short").is_err());
    }
}
