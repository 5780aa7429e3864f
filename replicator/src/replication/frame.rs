//! Frames on the replication wire: a 4-byte big-endian length, a kind byte, a
//! flags byte, then the payload. A frame over the reader's limit is refused
//! before anything is allocated for it; a compressed payload (zstd) states
//! its decompressed size, which must be under the limit too and is enforced
//! while decompressing, so a compression bomb costs nothing.

use std::io::{self, BufWriter, Read, Write};

use super::error::WireError;

/// Largest frame after authentication: a batch of blocks.
pub const MAX_FRAME: usize = 8 << 20;
/// Largest frame before authentication: only the small handshake fits.
pub const MAX_HANDSHAKE_FRAME: usize = 1024;

const FLAG_ZSTD: u8 = 1;

/// Reads frames, counting the bytes that came off the wire.
pub struct FrameReader<R> {
    inner: R,
    limit: usize,
    raw: Vec<u8>,
    plain: Vec<u8>,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
    bytes: u64,
}

impl<R: Read> FrameReader<R> {
    pub fn new(inner: R, limit: usize) -> Self {
        Self {
            inner,
            limit,
            raw: Vec::new(),
            plain: Vec::new(),
            decompressor: None,
            bytes: 0,
        }
    }

    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Reads the next frame: its kind and its (decompressed) payload.
    pub fn read(&mut self) -> Result<(u8, &[u8]), WireError> {
        let mut head = [0u8; 6];
        match self.inner.read_exact(&mut head[..1]) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(WireError::Closed),
            other => other?,
        }
        self.inner.read_exact(&mut head[1..])?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let (kind, flags) = (head[4], head[5]);
        if len < 2 {
            return Err(WireError::malformed(format!(
                "frame length {len} is too short"
            )));
        }
        let payload_len = len - 2;
        if payload_len > self.limit {
            return Err(WireError::TooLarge {
                len: payload_len,
                max: self.limit,
            });
        }
        if flags & !FLAG_ZSTD != 0 {
            return Err(WireError::malformed(format!(
                "unknown frame flags {flags:#x}"
            )));
        }
        self.raw.resize(payload_len, 0);
        self.inner.read_exact(&mut self.raw)?;
        self.bytes += 4 + len as u64;
        if flags & FLAG_ZSTD == 0 {
            return Ok((kind, &self.raw));
        }
        let (size, data) = self
            .raw
            .split_first_chunk::<4>()
            .ok_or_else(|| WireError::Compression("no decompressed size".into()))?;
        let size = u32::from_be_bytes(*size) as usize;
        if size > self.limit {
            return Err(WireError::Compression(format!(
                "claims {size} bytes decompressed, over the {}-byte limit",
                self.limit
            )));
        }
        let decompressor = match &mut self.decompressor {
            Some(d) => d,
            none => none.insert(zstd::bulk::Decompressor::new().map_err(WireError::Io)?),
        };
        self.plain.clear();
        self.plain.reserve(size);
        let got = decompressor
            .decompress_to_buffer(data, &mut self.plain)
            .map_err(|e| WireError::Compression(e.to_string()))?;
        if got != size {
            return Err(WireError::Compression(format!(
                "decompressed to {got} bytes, but claimed {size}"
            )));
        }
        Ok((kind, &self.plain))
    }
}

/// Writes frames through a buffer, counting the bytes put on the wire.
pub struct FrameWriter<W: Write> {
    inner: BufWriter<W>,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    packed: Vec<u8>,
    bytes: u64,
}

impl<W: Write> FrameWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner: BufWriter::with_capacity(1 << 20, inner),
            compressor: None,
            packed: Vec::new(),
            bytes: 0,
        }
    }

    /// Compresses large payloads with zstd from now on.
    pub fn enable_compression(&mut self) -> io::Result<()> {
        self.compressor = Some(zstd::bulk::Compressor::new(1)?);
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Queues one frame. Payloads that do not shrink are sent as they are.
    pub fn write(&mut self, kind: u8, payload: &[u8]) -> io::Result<()> {
        if let Some(compressor) = &mut self.compressor
            && payload.len() >= 4096
        {
            self.packed.clear();
            self.packed
                .reserve(zstd::zstd_safe::compress_bound(payload.len()));
            let packed = compressor.compress_to_buffer(payload, &mut self.packed);
            if packed.is_ok_and(|n| n + 4 < payload.len()) {
                let size = (payload.len() as u32).to_be_bytes();
                let packed = std::mem::take(&mut self.packed);
                let written = self.put(kind, FLAG_ZSTD, &size, &packed);
                self.packed = packed;
                return written;
            }
        }
        self.put(kind, 0, &[], payload)
    }

    fn put(&mut self, kind: u8, flags: u8, prefix: &[u8], payload: &[u8]) -> io::Result<()> {
        let body = prefix.len() + payload.len();
        let len = u32::try_from(body + 2)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame over 4 GiB"))?;
        self.inner.write_all(&len.to_be_bytes())?;
        self.inner.write_all(&[kind, flags])?;
        self.inner.write_all(prefix)?;
        self.inner.write_all(payload)?;
        self.bytes += 6 + body as u64;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(compress: bool, payload: &[u8]) -> (u8, Vec<u8>, u64) {
        let mut wire = Vec::new();
        {
            let mut w = FrameWriter::new(&mut wire);
            if compress {
                w.enable_compression().unwrap();
            }
            w.write(9, payload).unwrap();
            w.flush().unwrap();
        }
        let len = wire.len() as u64;
        let mut r = FrameReader::new(&wire[..], MAX_FRAME);
        let (kind, got) = r.read().unwrap();
        (kind, got.to_vec(), len)
    }

    #[test]
    fn plain_and_compressed_roundtrip() {
        let payload = vec![7u8; 100_000];
        let (kind, got, plain_len) = roundtrip(false, &payload);
        assert_eq!((kind, got.as_slice()), (9, payload.as_slice()));
        let (_, got, packed_len) = roundtrip(true, &payload);
        assert_eq!(got, payload);
        assert!(packed_len < plain_len / 10);
    }

    #[test]
    fn oversized_frame_is_refused_before_reading_it() {
        let mut wire = ((MAX_HANDSHAKE_FRAME + 3) as u32).to_be_bytes().to_vec();
        wire.extend_from_slice(&[1, 0]);
        let mut r = FrameReader::new(&wire[..], MAX_HANDSHAKE_FRAME);
        assert!(matches!(r.read(), Err(WireError::TooLarge { .. })));
    }

    #[test]
    fn compression_bomb_is_refused() {
        let bomb = zstd::bulk::compress(&vec![0u8; 64 << 20], 3).unwrap();
        // A compressed frame whose payload claims `size` bytes unpacked.
        let claiming = |size: u32| {
            let mut payload = size.to_be_bytes().to_vec();
            payload.extend_from_slice(&bomb);
            let mut wire = ((payload.len() + 2) as u32).to_be_bytes().to_vec();
            wire.extend_from_slice(&[1, FLAG_ZSTD]);
            wire.extend_from_slice(&payload);
            wire
        };
        // Claims a small size but expands far past it; claims a huge size.
        for size in [1024, u32::MAX] {
            let wire = claiming(size);
            let mut r = FrameReader::new(&wire[..], MAX_FRAME);
            assert!(matches!(r.read(), Err(WireError::Compression(_))), "{size}");
        }
    }

    #[test]
    fn truncated_frame_is_an_error_and_clean_end_is_closed() {
        let mut r = FrameReader::new(&[][..], MAX_FRAME);
        assert!(matches!(r.read(), Err(WireError::Closed)));
        let wire = [0, 0, 0, 10, 1, 0, 1, 2];
        let mut r = FrameReader::new(&wire[..], MAX_FRAME);
        assert!(matches!(r.read(), Err(WireError::Io(_))));
    }
}
