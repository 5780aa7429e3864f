//! TLS 1.3 on the replication link: both sites present their self-signed
//! certificate and each accepts only the one it pinned at pairing. Frames
//! travel inside, so reading, injecting, reordering, replaying or truncating
//! them is caught by TLS's record protection and closes the connection.
//!
//! The link is blocking and used from two threads at once during a full
//! sync (one reads hashes, one writes blocks), so the TLS state sits behind
//! a mutex shared by a [`LinkReader`] and a [`LinkWriter`], each with its own
//! handle on the socket. Neither holds the lock while it waits on the socket.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard};

use ferry_api::pin::PinnedCert;
use rustls::pki_types::ServerName;

use crate::identity::{CERT_NAME, Fingerprint, Identity};

/// Both ends of the link as this site speaks it: its identity and the peer
/// certificate it pinned (none when unpaired: then nobody is accepted).
#[derive(Clone)]
pub struct LinkTls {
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
    pub own: Fingerprint,
    pub pinned: Option<Fingerprint>,
    /// Benches only: frames go over bare TCP (see [`LinkTls::plain_for_benches`]).
    plain: bool,
}

impl std::fmt::Debug for LinkTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plain = if self.plain { ", plain TCP" } else { "" };
        write!(
            f,
            "LinkTls(own {}, pinned {:?}{plain})",
            self.own, self.pinned
        )
    }
}

impl LinkTls {
    pub fn new(identity: &Identity, pinned: Option<Fingerprint>) -> Result<Self, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // One verifier for both ends: whichever side dials, each accepts
        // only the certificate it pinned at pairing.
        let verifier = PinnedCert::new(pinned);
        let chain = vec![identity.cert.clone()];
        let client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_client_auth_cert(chain.clone(), identity.key.clone_key())?;
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, identity.key.clone_key())?;
        // Every session is a fresh full handshake: nothing to resume, and no
        // post-handshake message the blocking reader would have to answer.
        server.send_tls13_tickets = 0;
        Ok(Self {
            client: Arc::new(client),
            server: Arc::new(server),
            own: identity.fingerprint,
            pinned,
            plain: false,
        })
    }

    /// Benches only: the same link with no TLS under the frames, so a bench
    /// can measure what TLS costs a whole cycle against an otherwise
    /// identical one. Nothing is encrypted or authenticated by certificate;
    /// no configuration reaches this (a site always builds its link with
    /// [`LinkTls::new`]).
    #[doc(hidden)]
    pub fn plain_for_benches(
        identity: &Identity,
        pinned: Option<Fingerprint>,
    ) -> Result<Self, rustls::Error> {
        Ok(Self {
            plain: true,
            ..Self::new(identity, pinned)?
        })
    }

    /// Runs the client side of the handshake on `tcp`.
    pub fn connect(&self, tcp: TcpStream) -> io::Result<(LinkReader, LinkWriter)> {
        if self.plain {
            return halves(tcp, None);
        }
        let name = ServerName::try_from(CERT_NAME).map_err(io::Error::other)?;
        let conn = rustls::ClientConnection::new(self.client.clone(), name).map_err(tls_error)?;
        handshake(tcp, conn.into())
    }

    /// Runs the server side of the handshake on `tcp`.
    pub fn accept(&self, tcp: TcpStream) -> io::Result<(LinkReader, LinkWriter)> {
        if self.plain {
            return halves(tcp, None);
        }
        let conn = rustls::ServerConnection::new(self.server.clone()).map_err(tls_error)?;
        handshake(tcp, conn.into())
    }
}

/// A TLS failure as an I/O error whose inner error says what TLS saw.
fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, LinkTlsError(e.to_string()))
}

/// Why TLS closed the link: a refused certificate, a record that failed its
/// integrity check, a session cut short.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {0}")]
pub struct LinkTlsError(pub String);

/// True when `e` is TLS refusing the peer or its records (as opposed to the
/// network failing): worth an alarm, since it means a stranger or a
/// tampered path.
pub fn is_tls_refusal(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<LinkTlsError>())
}

fn handshake(
    mut tcp: TcpStream,
    mut conn: rustls::Connection,
) -> io::Result<(LinkReader, LinkWriter)> {
    while conn.is_handshaking() {
        match conn.complete_io(&mut tcp) {
            Ok((0, 0)) if conn.is_handshaking() => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection during the TLS handshake",
                ));
            }
            Ok(_) => {}
            Err(e) => {
                // Tell the peer why, best effort, then report what TLS saw.
                let _ = conn.write_tls(&mut tcp);
                return Err(match e.into_inner() {
                    Some(inner) => match inner.downcast::<rustls::Error>() {
                        Ok(tls) => tls_error(*tls),
                        Err(other) => io::Error::new(io::ErrorKind::InvalidData, other),
                    },
                    None => io::Error::new(io::ErrorKind::InvalidData, "TLS handshake failed"),
                });
            }
        }
    }
    conn.set_buffer_limit(None);
    halves(tcp, Some(Arc::new(Mutex::new(conn))))
}

/// The two halves of a link over `tcp`, inside `tls` unless it is a bench's
/// plain link.
fn halves(
    tcp: TcpStream,
    tls: Option<Arc<Mutex<rustls::Connection>>>,
) -> io::Result<(LinkReader, LinkWriter)> {
    let reader = LinkReader {
        tls: tls.clone(),
        tcp: tcp.try_clone()?,
        raw: vec![0; 64 << 10],
        pending: 0..0,
    };
    let writer = LinkWriter {
        tls,
        tcp,
        out: Vec::new(),
    };
    Ok((reader, writer))
}

fn lock(tls: &Mutex<rustls::Connection>) -> MutexGuard<'_, rustls::Connection> {
    tls.lock().unwrap_or_else(|e| e.into_inner())
}

/// The reading half of a link: decrypts and checks records as they come.
pub struct LinkReader {
    /// None only on a bench's plain link.
    tls: Option<Arc<Mutex<rustls::Connection>>>,
    tcp: TcpStream,
    raw: Vec<u8>,
    /// Bytes of `raw` read off the socket but not yet handed to TLS.
    pending: std::ops::Range<usize>,
}

impl LinkReader {
    /// The socket, for timeouts and shutdown.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Key material bound to this session (RFC 8446 exporter).
    pub fn export(&self, label: &[u8]) -> io::Result<[u8; 32]> {
        match &self.tls {
            Some(tls) => lock(tls)
                .export_keying_material([0u8; 32], label, None)
                .map_err(tls_error),
            // A bench's plain link has no session to bind the handshake to.
            None => Ok([0u8; 32]),
        }
    }

    /// A bench's plain link: serves the socket's bytes through the same
    /// 64 KiB buffer the TLS path reads into.
    fn read_plain(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pending.is_empty() {
            let n = self.tcp.read(&mut self.raw)?;
            self.pending = 0..n;
        }
        let n = out.len().min(self.pending.len());
        out[..n].copy_from_slice(&self.raw[self.pending.start..self.pending.start + n]);
        self.pending.start += n;
        Ok(n)
    }
}

impl Read for LinkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let shared = match &self.tls {
            Some(shared) => shared,
            None => return self.read_plain(out),
        };
        loop {
            {
                let mut tls = lock(shared);
                match tls.reader().read(out) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // The socket closed without TLS's close_notify: the
                    // session was cut short, which a clean end never is.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            LinkTlsError("the connection ended without a TLS close_notify".into()),
                        ));
                    }
                    Err(e) => return Err(e),
                }
                if !self.pending.is_empty() {
                    let mut slice = &self.raw[self.pending.clone()];
                    let taken = tls.read_tls(&mut slice)?;
                    self.pending.start += taken;
                    tls.process_new_packets().map_err(|e| {
                        let _ = tls.write_tls(&mut &self.tcp);
                        tls_error(e)
                    })?;
                    continue;
                }
            }
            let n = self.tcp.read(&mut self.raw)?;
            if n == 0 {
                let mut tls = lock(shared);
                tls.read_tls(&mut &[][..])?;
                tls.process_new_packets().map_err(tls_error)?;
                continue;
            }
            self.pending = 0..n;
        }
    }
}

/// The writing half of a link: encrypts under the lock, sends outside it.
pub struct LinkWriter {
    /// None only on a bench's plain link.
    tls: Option<Arc<Mutex<rustls::Connection>>>,
    tcp: TcpStream,
    out: Vec<u8>,
}

impl Write for LinkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(shared) = &self.tls else {
            return self.tcp.write(buf);
        };
        let n = {
            let mut tls = lock(shared);
            let n = tls.writer().write(buf)?;
            self.out.clear();
            while tls.wants_write() {
                tls.write_tls(&mut self.out)?;
            }
            n
        };
        self.tcp.write_all(&self.out)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

impl Drop for LinkWriter {
    /// Ends the session with close_notify, so the peer can tell a clean
    /// end from a cut connection.
    fn drop(&mut self) {
        let Some(shared) = &self.tls else {
            return;
        };
        let mut tls = lock(shared);
        tls.send_close_notify();
        self.out.clear();
        while tls.wants_write() {
            if tls.write_tls(&mut self.out).is_err() {
                return;
            }
        }
        drop(tls);
        let _ = self.tcp.write_all(&self.out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Duration;

    /// A bench's plain link never gets through to a site's TLS end: frames
    /// where a ClientHello belongs are refused as TLS, not read.
    #[test]
    fn a_plain_link_is_refused_by_a_tls_end() {
        let (a, b) = (
            Identity::ephemeral().unwrap(),
            Identity::ephemeral().unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let site = LinkTls::new(&b, Some(a.fingerprint)).unwrap();
        let accepting = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            site.accept(tcp).map(|_| ())
        });
        let plain = LinkTls::plain_for_benches(&a, Some(b.fingerprint)).unwrap();
        let (_reader, mut writer) = plain.connect(TcpStream::connect(addr).unwrap()).unwrap();
        // A 5-byte frame as the plain link sends it: length, kind, flags.
        writer
            .write_all(&[0, 0, 0, 7, 1, 0, b'h', b'e', b'l', b'l', b'o'])
            .unwrap();
        writer.flush().unwrap();
        let refused = accepting
            .join()
            .unwrap()
            .expect_err("a TLS end refuses frames");
        assert!(is_tls_refusal(&refused), "{refused}");
    }
}
