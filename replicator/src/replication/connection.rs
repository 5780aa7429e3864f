//! One authenticated replication connection: a frame reader and writer over
//! a TLS session with the pinned peer, with typed send and receive.

use std::io;
use std::net::TcpStream;
use std::time::Duration;

use super::error::WireError;
use super::frame::{FrameReader, FrameWriter, MAX_FRAME, MAX_HANDSHAKE_FRAME};
use super::handshake::{self, PairingSecret, unexpected};
use super::message::{Message, decode};
use super::tls::{LinkReader, LinkTls, LinkWriter};

/// The exporter label that binds the framed handshake to its TLS session.
const SESSION_LABEL: &[u8] = b"EXPORTER-ferry-replication-v1";

/// How long a handshake may take before the connection is dropped, so a
/// silent or slow stranger cannot hold a session slot.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long either side waits for the next frame mid-cycle.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Connection {
    pub reader: FrameReader<LinkReader>,
    pub writer: FrameWriter<LinkWriter>,
    scratch: Vec<u8>,
    /// The authenticated peer's site name.
    pub peer: String,
}

impl Connection {
    /// Readies `stream` for a handshake: its timeouts bound the TLS
    /// handshake too, so a silent stranger cannot hold a session slot.
    fn prepare(stream: &TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
        stream.set_write_timeout(Some(IDLE_TIMEOUT))
    }

    fn new((reader, writer): (LinkReader, LinkWriter)) -> Self {
        Self {
            reader: FrameReader::new(reader, MAX_HANDSHAKE_FRAME),
            writer: FrameWriter::new(writer),
            scratch: Vec::new(),
            peer: String::new(),
        }
    }

    /// The framed handshake inside TLS exchanges versions and site names;
    /// its proofs are keyed by the TLS session itself, so they only bind
    /// the names to this session (the pinned certificates authenticate).
    fn session_key(&self) -> Result<PairingSecret, WireError> {
        Ok(PairingSecret::from_key(
            self.reader.get_ref().export(SESSION_LABEL)?,
        ))
    }

    fn authenticated(mut self, peer: String) -> io::Result<Self> {
        self.peer = peer;
        self.reader.set_limit(MAX_FRAME);
        self.reader
            .get_ref()
            .tcp()
            .set_read_timeout(Some(IDLE_TIMEOUT))?;
        Ok(self)
    }

    /// Connects to a peer's replication listener and authenticates: the
    /// peer must present the certificate `tls` pins.
    pub fn connect(addr: &str, tls: &LinkTls, site: &str) -> Result<Self, WireError> {
        let addrs = std::net::ToSocketAddrs::to_socket_addrs(addr)?;
        let mut last = io::Error::new(
            io::ErrorKind::NotFound,
            format!("{addr} resolves to nothing"),
        );
        for candidate in addrs {
            match TcpStream::connect_timeout(&candidate, HANDSHAKE_TIMEOUT) {
                Ok(stream) => {
                    Self::prepare(&stream)?;
                    let mut conn = Self::new(tls.connect(stream)?);
                    let secret = conn.session_key()?;
                    let peer =
                        handshake::client(&mut conn.reader, &mut conn.writer, &secret, site)?;
                    return Ok(conn.authenticated(peer)?);
                }
                Err(e) => last = e,
            }
        }
        Err(WireError::Io(last))
    }

    /// Authenticates a peer that connected to us: it must present the
    /// certificate `tls` pins, or the connection ends before any frame.
    pub fn accept(stream: TcpStream, tls: &LinkTls, site: &str) -> Result<Self, WireError> {
        Self::prepare(&stream)?;
        let mut conn = Self::new(tls.accept(stream)?);
        let secret = conn.session_key()?;
        let peer = handshake::server(&mut conn.reader, &mut conn.writer, &secret, site)?;
        Ok(conn.authenticated(peer)?)
    }

    /// Queues a message (see [`Connection::flush`]).
    pub fn send(&mut self, message: &Message<'_>) -> Result<(), WireError> {
        self.scratch.clear();
        message.encode(&mut self.scratch);
        self.writer.write(message.kind(), &self.scratch)?;
        Ok(())
    }

    pub fn send_now(&mut self, message: &Message<'_>) -> Result<(), WireError> {
        self.send(message)?;
        self.flush()
    }

    pub fn flush(&mut self) -> Result<(), WireError> {
        Ok(self.writer.flush()?)
    }

    /// Receives the next message; a `Refused` from the peer becomes an error.
    pub fn recv(&mut self) -> Result<Message<'_>, WireError> {
        recv(&mut self.reader)
    }

    /// Tells the peer why we are closing, best effort.
    pub fn refuse(&mut self, reason: &str) {
        let _ = self.send_now(&Message::Refused { reason });
    }

    /// A site-to-site call: sends `body` and waits up to `timeout` for the
    /// reply's body.
    pub fn call(&mut self, body: &[u8], timeout: Duration) -> Result<Vec<u8>, WireError> {
        self.send_now(&Message::Control { body })?;
        self.set_read_timeout(timeout)?;
        match self.recv()? {
            Message::ControlReply { body } => Ok(body.to_vec()),
            other => Err(unexpected("ControlReply", &other)),
        }
    }

    /// Bytes both ways so far, frame headers included.
    pub fn wire_bytes(&self) -> u64 {
        self.reader.bytes() + self.writer.bytes()
    }

    pub fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.reader.get_ref().tcp().set_read_timeout(Some(timeout))
    }
}

pub fn recv(reader: &mut FrameReader<LinkReader>) -> Result<Message<'_>, WireError> {
    let (kind, payload) = reader.read()?;
    match decode(kind, payload)? {
        Message::Refused { reason } => Err(WireError::Refused(reason.to_string())),
        message => Ok(message),
    }
}

/// Receives a message and insists it is `Committed`/`Consolidated`/... for
/// `instance`, via `pick`.
pub fn expect_instance(
    conn: &mut Connection,
    name: &'static str,
    instance: u64,
    pick: fn(&Message<'_>) -> Option<u64>,
) -> Result<(), WireError> {
    let message = conn.recv()?;
    match pick(&message) {
        Some(got) if got == instance => Ok(()),
        Some(got) => Err(WireError::malformed(format!(
            "{name} for instance {got}, expected {instance}"
        ))),
        None => Err(unexpected(name, &message)),
    }
}
