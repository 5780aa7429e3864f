//! An NBD client for QEMU's export of a consistency point, on a unix socket.
//!
//! Written here rather than taken from a crate: ferry needs a small, blocking
//! subset (the sender's cycle runs on a blocking thread) and the maintained
//! Rust NBD crates are servers or bind libnbd (a C library to install). The
//! subset: the fixed newstyle handshake, `OPT_STRUCTURED_REPLY`,
//! `OPT_SET_META_CONTEXT` (for `qemu:dirty-bitmap:NAME`), `OPT_GO`, then
//! `CMD_READ`, `CMD_BLOCK_STATUS` and `CMD_DISC`, one request at a time.
//! Spec: <https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md>.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
const OPT_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;

const FLAG_FIXED_NEWSTYLE: u16 = 1;
const FLAG_NO_ZEROES: u16 = 2;

const OPT_GO: u32 = 7;
const OPT_STRUCTURED_REPLY: u32 = 8;
const OPT_SET_META_CONTEXT: u32 = 10;

const REP_ACK: u32 = 1;
const REP_INFO: u32 = 3;
const REP_META_CONTEXT: u32 = 4;
const REP_ERROR_BIT: u32 = 1 << 31;
const INFO_EXPORT: u16 = 0;

const CMD_READ: u16 = 0;
const CMD_DISC: u16 = 2;
const CMD_BLOCK_STATUS: u16 = 7;

const REPLY_FLAG_DONE: u16 = 1;
const REPLY_TYPE_NONE: u16 = 0;
const REPLY_TYPE_OFFSET_DATA: u16 = 1;
const REPLY_TYPE_OFFSET_HOLE: u16 = 2;
const REPLY_TYPE_BLOCK_STATUS: u16 = 5;
const REPLY_TYPE_ERROR_BIT: u16 = 1 << 15;

/// QEMU answers a request at once; a socket quiet this long is a stuck QEMU.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest chunk a reply may carry: QEMU's limit is 32 MiB.
const MAX_CHUNK: u32 = 64 << 20;
/// Largest range asked of `BLOCK_STATUS` at once (the length is 32 bits).
const STATUS_SPAN: u64 = 1 << 30;

/// A failed NBD exchange, naming the socket.
#[derive(Debug, thiserror::Error)]
pub enum NbdError {
    #[error("NBD at {}: {source}", socket.display())]
    Io { socket: PathBuf, source: io::Error },
    #[error("NBD at {}: {what}", socket.display())]
    Protocol { socket: PathBuf, what: String },
    #[error("NBD at {}: {request} failed with errno {errno}: {message}", socket.display())]
    Server {
        socket: PathBuf,
        request: String,
        errno: u32,
        message: String,
    },
}

/// A run of bytes with the same status in a meta context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub offset: u64,
    pub length: u64,
    /// For `qemu:dirty-bitmap:*`, bit 0 set means dirty.
    pub flags: u32,
}

/// A connected NBD export, ready for reads.
pub struct NbdClient {
    socket: PathBuf,
    reader: BufReader<UnixStream>,
    writer: BufWriter<UnixStream>,
    size: u64,
    /// Meta contexts the server agreed to, with the ids it gave them.
    contexts: Vec<(String, u32)>,
    next_cookie: u64,
}

impl NbdClient {
    /// Connects to `export` on `socket`, with the meta contexts `contexts`
    /// (e.g. `qemu:dirty-bitmap:tmp`) for `BLOCK_STATUS`.
    pub fn connect(socket: &Path, export: &str, contexts: &[&str]) -> Result<Self, NbdError> {
        let io_error = |source| NbdError::Io {
            socket: socket.to_path_buf(),
            source,
        };
        let stream = UnixStream::connect(socket).map_err(io_error)?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .map_err(io_error)?;
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .map_err(io_error)?;
        let write_half = stream.try_clone().map_err(io_error)?;
        let mut client = Self {
            socket: socket.to_path_buf(),
            reader: BufReader::with_capacity(1 << 20, stream),
            writer: BufWriter::new(write_half),
            size: 0,
            contexts: Vec::new(),
            next_cookie: 1,
        };
        client.handshake(export, contexts)?;
        Ok(client)
    }

    /// The export's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn protocol(&self, what: impl Into<String>) -> NbdError {
        NbdError::Protocol {
            socket: self.socket.clone(),
            what: what.into(),
        }
    }

    fn io(&self, source: io::Error) -> NbdError {
        NbdError::Io {
            socket: self.socket.clone(),
            source,
        }
    }

    fn handshake(&mut self, export: &str, contexts: &[&str]) -> Result<(), NbdError> {
        let magic = self.read_u64()?;
        let opt = self.read_u64()?;
        if magic != NBDMAGIC || opt != IHAVEOPT {
            return Err(self.protocol("not a newstyle NBD server"));
        }
        let flags = self.read_u16()?;
        if flags & FLAG_FIXED_NEWSTYLE == 0 || flags & FLAG_NO_ZEROES == 0 {
            return Err(self.protocol(format!("handshake flags {flags:#x} lack fixed newstyle")));
        }
        self.put(&u32::from(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes())?;

        self.send_option(OPT_STRUCTURED_REPLY, &[])?;
        let (kind, _) = self.option_reply(OPT_STRUCTURED_REPLY)?;
        if kind != REP_ACK {
            return Err(self.protocol("structured replies refused"));
        }

        if !contexts.is_empty() {
            let mut data = name_bytes(export);
            data.extend_from_slice(&(contexts.len() as u32).to_be_bytes());
            for context in contexts {
                data.extend_from_slice(&name_bytes(context));
            }
            self.send_option(OPT_SET_META_CONTEXT, &data)?;
            loop {
                let (kind, data) = self.option_reply(OPT_SET_META_CONTEXT)?;
                match kind {
                    REP_META_CONTEXT if data.len() >= 4 => {
                        let id = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                        let name = String::from_utf8_lossy(&data[4..]).into_owned();
                        self.contexts.push((name, id));
                    }
                    REP_ACK => break,
                    other => return Err(self.protocol(format!("meta context reply {other}"))),
                }
            }
            if let Some(missing) = contexts
                .iter()
                .find(|c| !self.contexts.iter().any(|(name, _)| name == *c))
            {
                return Err(self.protocol(format!("the export has no meta context {missing}")));
            }
        }

        let mut data = name_bytes(export);
        data.extend_from_slice(&0u16.to_be_bytes());
        self.send_option(OPT_GO, &data)?;
        loop {
            let (kind, data) = self.option_reply(OPT_GO)?;
            match kind {
                REP_INFO if data.len() >= 2 => {
                    if u16::from_be_bytes([data[0], data[1]]) == INFO_EXPORT && data.len() >= 12 {
                        self.size = u64::from_be_bytes(data[2..10].try_into().unwrap_or([0; 8]));
                    }
                }
                REP_ACK => return Ok(()),
                other => return Err(self.protocol(format!("reply {other} to GO"))),
            }
        }
    }

    fn send_option(&mut self, option: u32, data: &[u8]) -> Result<(), NbdError> {
        let mut out = Vec::with_capacity(16 + data.len());
        out.extend_from_slice(&IHAVEOPT.to_be_bytes());
        out.extend_from_slice(&option.to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(data);
        self.put(&out)?;
        self.flush()
    }

    /// One reply to `option`: its type and data. An error reply is an error.
    fn option_reply(&mut self, option: u32) -> Result<(u32, Vec<u8>), NbdError> {
        let magic = self.read_u64()?;
        let replied_to = self.read_u32()?;
        let kind = self.read_u32()?;
        let len = self.read_u32()?;
        if magic != OPT_REPLY_MAGIC || replied_to != option {
            return Err(self.protocol(format!("bad reply to option {option}")));
        }
        if len > MAX_CHUNK {
            return Err(self.protocol(format!("option reply of {len} bytes")));
        }
        let data = self.read_vec(len as usize)?;
        if kind & REP_ERROR_BIT != 0 {
            return Err(NbdError::Server {
                socket: self.socket.clone(),
                request: format!("option {option}"),
                errno: kind & !REP_ERROR_BIT,
                message: String::from_utf8_lossy(&data).into_owned(),
            });
        }
        Ok((kind, data))
    }

    fn request(&mut self, kind: u16, offset: u64, length: u32) -> Result<u64, NbdError> {
        let cookie = self.next_cookie;
        self.next_cookie += 1;
        let mut out = [0u8; 28];
        out[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        out[6..8].copy_from_slice(&kind.to_be_bytes());
        out[8..16].copy_from_slice(&cookie.to_be_bytes());
        out[16..24].copy_from_slice(&offset.to_be_bytes());
        out[24..28].copy_from_slice(&length.to_be_bytes());
        self.put(&out)?;
        self.flush()?;
        Ok(cookie)
    }

    /// Reads `buf.len()` bytes at `offset` of the export.
    pub fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), NbdError> {
        let end = offset + buf.len() as u64;
        if end > self.size || buf.len() > MAX_CHUNK as usize {
            return Err(self.protocol(format!(
                "read of {} bytes at {offset} beyond the export's {} bytes",
                buf.len(),
                self.size
            )));
        }
        let cookie = self.request(CMD_READ, offset, buf.len() as u32)?;
        let mut covered = 0u64;
        self.chunks(cookie, "read", |this, kind, payload| {
            let at = |chunk_offset: u64, len: u64| {
                (chunk_offset >= offset && chunk_offset + len <= end)
                    .then(|| (chunk_offset - offset) as usize)
            };
            match kind {
                REPLY_TYPE_OFFSET_DATA if payload.len() >= 8 => {
                    let chunk_offset = be_u64(&payload[..8]);
                    let data = &payload[8..];
                    let start = at(chunk_offset, data.len() as u64)
                        .ok_or_else(|| this.protocol("read data outside the request"))?;
                    buf[start..start + data.len()].copy_from_slice(data);
                    covered += data.len() as u64;
                }
                REPLY_TYPE_OFFSET_HOLE if payload.len() >= 12 => {
                    let chunk_offset = be_u64(&payload[..8]);
                    let len = u64::from(be_u32(&payload[8..12]));
                    let start = at(chunk_offset, len)
                        .ok_or_else(|| this.protocol("read hole outside the request"))?;
                    buf[start..start + len as usize].fill(0);
                    covered += len;
                }
                other => return Err(this.protocol(format!("chunk type {other} in a read"))),
            }
            Ok(())
        })?;
        if covered != buf.len() as u64 {
            return Err(self.protocol(format!(
                "read of {} bytes at {offset} answered {covered}",
                buf.len()
            )));
        }
        Ok(())
    }

    /// The extents of `context` over the whole export, in order.
    pub fn block_status(&mut self, context: &str) -> Result<Vec<Extent>, NbdError> {
        let id = self
            .contexts
            .iter()
            .find(|(name, _)| name == context)
            .map(|(_, id)| *id)
            .ok_or_else(|| self.protocol(format!("meta context {context} not negotiated")))?;
        let mut extents: Vec<Extent> = Vec::new();
        let mut offset = 0;
        while offset < self.size {
            let length = (self.size - offset).min(STATUS_SPAN) as u32;
            let cookie = self.request(CMD_BLOCK_STATUS, offset, length)?;
            let mut got = Vec::new();
            self.chunks(cookie, "block status", |this, kind, payload| {
                if kind != REPLY_TYPE_BLOCK_STATUS || payload.len() < 4 || payload.len() % 8 != 4 {
                    return Err(this.protocol(format!("chunk type {kind} in a block status")));
                }
                if be_u32(&payload[..4]) == id {
                    got.extend(
                        payload[4..]
                            .chunks_exact(8)
                            .map(|d| (be_u32(d), be_u32(&d[4..]))),
                    );
                }
                Ok(())
            })?;
            if got.is_empty() {
                return Err(self.protocol(format!("no extents at {offset}")));
            }
            for (length, flags) in got {
                let length = u64::from(length).min(self.size - offset);
                if length == 0 {
                    break;
                }
                match extents.last_mut() {
                    Some(last) if last.flags == flags && last.offset + last.length == offset => {
                        last.length += length;
                    }
                    _ => extents.push(Extent {
                        offset,
                        length,
                        flags,
                    }),
                }
                offset += length;
            }
        }
        Ok(extents)
    }

    /// Ends the session politely (the server closes its side).
    pub fn disconnect(mut self) -> Result<(), NbdError> {
        self.request(CMD_DISC, 0, 0).map(drop)
    }

    /// Reads the reply chunks of `cookie` until the last, passing each
    /// payload to `each`; an error chunk becomes [`NbdError::Server`].
    fn chunks(
        &mut self,
        cookie: u64,
        request: &str,
        mut each: impl FnMut(&Self, u16, &[u8]) -> Result<(), NbdError>,
    ) -> Result<(), NbdError> {
        loop {
            let magic = self.read_u32()?;
            if magic == SIMPLE_REPLY_MAGIC {
                // Only allowed for errors once structured replies are on.
                let errno = self.read_u32()?;
                let _cookie = self.read_u64()?;
                return Err(self.server_error(request, errno, String::new()));
            }
            if magic != STRUCTURED_REPLY_MAGIC {
                return Err(self.protocol(format!("reply magic {magic:#x}")));
            }
            let flags = self.read_u16()?;
            let kind = self.read_u16()?;
            let reply_cookie = self.read_u64()?;
            let len = self.read_u32()?;
            if reply_cookie != cookie || len > MAX_CHUNK + 8 {
                return Err(self.protocol(format!("reply to {reply_cookie}, waiting for {cookie}")));
            }
            let payload = self.read_vec(len as usize)?;
            if kind & REPLY_TYPE_ERROR_BIT != 0 {
                let errno = payload.get(..4).map_or(0, be_u32);
                let message = payload.get(6..).map_or_else(String::new, |m| {
                    let n = payload
                        .get(4..6)
                        .map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
                    String::from_utf8_lossy(&m[..n.min(m.len())]).into_owned()
                });
                return Err(self.server_error(request, errno, message));
            }
            if kind != REPLY_TYPE_NONE {
                each(self, kind, &payload)?;
            }
            if flags & REPLY_FLAG_DONE != 0 {
                return Ok(());
            }
        }
    }

    fn server_error(&self, request: &str, errno: u32, message: String) -> NbdError {
        NbdError::Server {
            socket: self.socket.clone(),
            request: request.to_string(),
            errno,
            message,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), NbdError> {
        self.writer.write_all(bytes).map_err(|e| self.io(e))
    }

    fn flush(&mut self) -> Result<(), NbdError> {
        self.writer.flush().map_err(|e| self.io(e))
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), NbdError> {
        self.reader.read_exact(buf).map_err(|e| NbdError::Io {
            socket: self.socket.clone(),
            source: e,
        })
    }

    fn read_vec(&mut self, len: usize) -> Result<Vec<u8>, NbdError> {
        let mut v = vec![0; len];
        self.read_exact(&mut v)?;
        Ok(v)
    }

    fn read_u16(&mut self) -> Result<u16, NbdError> {
        let mut b = [0; 2];
        self.read_exact(&mut b)?;
        Ok(u16::from_be_bytes(b))
    }

    fn read_u32(&mut self) -> Result<u32, NbdError> {
        let mut b = [0; 4];
        self.read_exact(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    fn read_u64(&mut self) -> Result<u64, NbdError> {
        let mut b = [0; 8];
        self.read_exact(&mut b)?;
        Ok(u64::from_be_bytes(b))
    }
}

/// A string as NBD sends it: 32-bit length, then the bytes.
fn name_bytes(name: &str) -> Vec<u8> {
    let mut out = (name.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(name.as_bytes());
    out
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().unwrap_or([0; 8]))
}

#[cfg(test)]
#[path = "nbd_tests.rs"]
mod tests;
