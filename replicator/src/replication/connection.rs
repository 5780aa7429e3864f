//! One authenticated replication connection: a frame reader and writer over
//! a TCP stream, with typed send and receive.

use std::io;
use std::net::TcpStream;
use std::time::Duration;

use super::error::WireError;
use super::frame::{FrameReader, FrameWriter, MAX_FRAME, MAX_HANDSHAKE_FRAME};
use super::handshake::{self, PairingSecret, unexpected};
use super::message::{Message, decode};

/// How long a handshake may take before the connection is dropped, so a
/// silent or slow stranger cannot hold a session slot.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long either side waits for the next frame mid-cycle.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Connection {
    pub reader: FrameReader<TcpStream>,
    pub writer: FrameWriter<TcpStream>,
    scratch: Vec<u8>,
    /// The authenticated peer's site name.
    pub peer: String,
}

impl Connection {
    fn new(stream: TcpStream) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
        stream.set_write_timeout(Some(IDLE_TIMEOUT))?;
        Ok(Self {
            reader: FrameReader::new(stream.try_clone()?, MAX_HANDSHAKE_FRAME),
            writer: FrameWriter::new(stream),
            scratch: Vec::new(),
            peer: String::new(),
        })
    }

    fn authenticated(mut self, peer: String) -> io::Result<Self> {
        self.peer = peer;
        self.reader.set_limit(MAX_FRAME);
        self.reader.get_ref().set_read_timeout(Some(IDLE_TIMEOUT))?;
        Ok(self)
    }

    /// Connects to a peer's replication listener and authenticates.
    pub fn connect(addr: &str, secret: &PairingSecret, site: &str) -> Result<Self, WireError> {
        let addrs = std::net::ToSocketAddrs::to_socket_addrs(addr)?;
        let mut last = io::Error::new(
            io::ErrorKind::NotFound,
            format!("{addr} resolves to nothing"),
        );
        for candidate in addrs {
            match TcpStream::connect_timeout(&candidate, HANDSHAKE_TIMEOUT) {
                Ok(stream) => {
                    let mut conn = Self::new(stream)?;
                    let peer = handshake::client(&mut conn.reader, &mut conn.writer, secret, site)?;
                    return Ok(conn.authenticated(peer)?);
                }
                Err(e) => last = e,
            }
        }
        Err(WireError::Io(last))
    }

    /// Authenticates a peer that connected to us.
    pub fn accept(
        stream: TcpStream,
        secret: &PairingSecret,
        site: &str,
    ) -> Result<Self, WireError> {
        let mut conn = Self::new(stream)?;
        let peer = handshake::server(&mut conn.reader, &mut conn.writer, secret, site)?;
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
        self.reader.get_ref().set_read_timeout(Some(timeout))
    }
}

pub fn recv(reader: &mut FrameReader<TcpStream>) -> Result<Message<'_>, WireError> {
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
