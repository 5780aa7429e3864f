//! Why a replication session failed.

use std::io;

/// A failed session. Every variant closes the connection; none of them has
/// changed a replica beyond an uncommitted redo log, which is discarded.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("the peer closed the connection")]
    Closed,
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("compressed frame rejected: {0}")]
    Compression(String),
    /// A block whose bytes do not match the hash the sender read: a bug or
    /// a corruption somewhere between the source and the redo log.
    #[error("block integrity: {0}")]
    Integrity(String),
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("the peer refused: {0}")]
    Refused(String),
    #[error("protocol: expected {expected}, got {got}")]
    Unexpected { expected: &'static str, got: String },
    /// Reading the protected VM's own disk failed (EIO, a short read): a
    /// fault of this site, not of the link, whatever its error kind.
    #[error("reading disk {disk} of the VM at its consistency point failed: {cause}")]
    SourceRead { disk: u16, cause: io::Error },
}

impl WireError {
    pub fn malformed(what: impl Into<String>) -> Self {
        Self::Malformed(what.into())
    }

    /// True for failures of the link rather than of either site: the peer is
    /// unreachable or went away.
    pub fn is_link_failure(&self) -> bool {
        match self {
            Self::Closed => true,
            Self::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::NotConnected
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::WouldBlock
                    | io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::HostUnreachable
                    | io::ErrorKind::NetworkUnreachable
            ),
            _ => false,
        }
    }
}
