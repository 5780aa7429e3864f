//! The redo log: blocks of one incoming instance, written beside the replica
//! before they may touch it.
//!
//! Layout: a header (instance, consistency point time, block size, disk
//! sizes), then one record per block (`Data` with its bytes, or `Zero` for a
//! block that becomes a hole), then a commit record. The commit record is
//! written only after everything before it is fsynced, and it carries a
//! checksum over the header and every record header (each of which carries a
//! checksum of its data), so a log is either provably whole or ignored.

use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::{Xxh3Default, xxh3_64};

use super::fs::{FileLayer, LayerFile, Open};
use super::geometry::Geometry;
use crate::crash::crash_point;

const MAGIC: &[u8; 8] = b"FERRYRDO";
const VERSION: u32 = 1;
const KIND_DATA: u8 = 1;
const KIND_ZERO: u8 = 2;
const KIND_COMMIT: u8 = 3;
const RECORD_HEADER: usize = 1 + 2 + 8 + 4 + 8;
/// Start kernel writeback every this many bytes so the final fsync is short.
const WRITEBACK_CHUNK: u64 = 8 << 20;

/// What an instance is: its number, its consistency point and the disk layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedoHeader {
    pub instance: u64,
    pub point_time_ms: u64,
    pub block_size: u32,
    pub disk_sizes: Vec<u64>,
}

/// One block of a committed log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedoRecord {
    pub disk: u16,
    pub block: u64,
    pub len: u32,
    /// Where the data starts in the log; `None` for a zero block.
    pub data_at: Option<u64>,
    pub data_sum: u64,
}

/// A log whose commit record checked out.
pub struct CommittedLog {
    pub header: RedoHeader,
    pub records: Vec<RedoRecord>,
    file: Box<dyn LayerFile>,
}

/// Bytes buffered before a write to the log.
const BUFFER: usize = 1 << 20;

/// Appends the blocks of one instance.
pub struct RedoLogWriter {
    layer: std::sync::Arc<dyn FileLayer>,
    path: PathBuf,
    file: Box<dyn LayerFile>,
    buf: Vec<u8>,
    /// Bytes of the log already handed to the file (`written - buf.len()`).
    flushed: u64,
    chain: Xxh3Default,
    instance: u64,
    records: u64,
    written: u64,
    writeback_from: u64,
    disk_count: usize,
}

fn encode_header(header: &RedoHeader) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + 8 * header.disk_sizes.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&header.instance.to_le_bytes());
    out.extend_from_slice(&header.point_time_ms.to_le_bytes());
    out.extend_from_slice(&header.block_size.to_le_bytes());
    out.extend_from_slice(&(header.disk_sizes.len() as u32).to_le_bytes());
    for size in &header.disk_sizes {
        out.extend_from_slice(&size.to_le_bytes());
    }
    let sum = xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

impl RedoLogWriter {
    /// Creates the log at `path`, replacing any earlier (uncommitted) one.
    pub fn create(
        layer: std::sync::Arc<dyn FileLayer>,
        path: &Path,
        header: &RedoHeader,
    ) -> io::Result<Self> {
        let file = layer.open(path, Open::Truncate)?;
        let bytes = encode_header(header);
        let mut chain = Xxh3Default::new();
        chain.update(&bytes);
        let mut buf = Vec::with_capacity(BUFFER);
        buf.extend_from_slice(&bytes);
        Ok(Self {
            layer,
            path: path.to_path_buf(),
            file,
            buf,
            flushed: 0,
            chain,
            instance: header.instance,
            records: 0,
            written: bytes.len() as u64,
            writeback_from: 0,
            disk_count: header.disk_sizes.len(),
        })
    }

    fn record(&mut self, kind: u8, disk: u16, block: u64, len: u32, sum: u64) -> io::Result<()> {
        if usize::from(disk) >= self.disk_count {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "block for disk {disk}, but the instance has {} disks",
                    self.disk_count
                ),
            ));
        }
        let mut head = [0u8; RECORD_HEADER];
        head[0] = kind;
        head[1..3].copy_from_slice(&disk.to_le_bytes());
        head[3..11].copy_from_slice(&block.to_le_bytes());
        head[11..15].copy_from_slice(&len.to_le_bytes());
        head[15..23].copy_from_slice(&sum.to_le_bytes());
        self.chain.update(&head);
        self.write(&head)?;
        self.records += 1;
        self.written += RECORD_HEADER as u64;
        Ok(())
    }

    pub fn append_data(&mut self, disk: u16, block: u64, data: &[u8]) -> io::Result<()> {
        self.record(KIND_DATA, disk, block, data.len() as u32, xxh3_64(data))?;
        self.write(data)?;
        self.written += data.len() as u64;
        crash_point("redo.append");
        if self.written - self.writeback_from >= WRITEBACK_CHUNK {
            self.flush()?;
            self.file.start_writeback(self.writeback_from, 0);
            self.writeback_from = self.written;
        }
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.buf.len() + bytes.len() > BUFFER {
            self.flush()?;
        }
        if bytes.len() >= BUFFER {
            self.file.write_all_at(bytes, self.flushed)?;
            self.flushed += bytes.len() as u64;
        } else {
            self.buf.extend_from_slice(bytes);
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.write_all_at(&self.buf, self.flushed)?;
        self.flushed += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    pub fn append_zero(&mut self, disk: u16, block: u64, len: u32) -> io::Result<()> {
        self.record(KIND_ZERO, disk, block, len, 0)
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    /// Makes the records and the log's directory entry durable, then
    /// writes and syncs the commit record. After this returns the instance
    /// is complete. On any failure the log is removed (best effort): after
    /// a failed fsync its page cache may show a commit record or records
    /// that never reached the disk, and nothing of it may be trusted.
    pub fn commit(mut self) -> io::Result<()> {
        let result = self.commit_inner();
        if result.is_err() {
            let _ = super::durable::remove_durably_in(&*self.layer, &self.path);
        }
        result
    }

    fn commit_inner(&mut self) -> io::Result<()> {
        self.flush()?;
        self.file.sync_data()?;
        // The log is created afresh each cycle: its name must be durable
        // before the instance is acknowledged.
        self.layer
            .sync_dir(self.path.parent().unwrap_or(Path::new(".")))?;
        crash_point("redo.before-commit");
        let mut commit = Vec::with_capacity(33);
        commit.push(KIND_COMMIT);
        commit.extend_from_slice(&self.instance.to_le_bytes());
        commit.extend_from_slice(&self.records.to_le_bytes());
        commit.extend_from_slice(&self.chain.digest().to_le_bytes());
        let sum = xxh3_64(&commit);
        commit.extend_from_slice(&sum.to_le_bytes());
        self.write(&commit)?;
        self.flush()?;
        self.file.sync_data()?;
        crash_point("redo.after-commit");
        Ok(())
    }
}

/// Reads the log at `path`. `Ok(None)` when it is not committed (torn,
/// partial or never finished): such a log is discarded, never applied.
pub fn read_committed(layer: &dyn FileLayer, path: &Path) -> io::Result<Option<CommittedLog>> {
    let file = layer.open(path, Open::Read)?;
    let mut reader = BufReader::with_capacity(
        1 << 16,
        Cursor {
            file: &*file,
            pos: 0,
        },
    );
    let Some(header) = read_header(&mut reader)? else {
        return Ok(None);
    };
    let mut chain = Xxh3Default::new();
    chain.update(&encode_header(&header));
    let mut records = Vec::new();
    let mut pos = reader.stream_position()?;
    loop {
        let mut kind = [0u8; 1];
        if !read_full(&mut reader, &mut kind)? {
            return Ok(None);
        }
        if kind[0] == KIND_COMMIT {
            let mut rest = [0u8; 32];
            if !read_full(&mut reader, &mut rest)? {
                return Ok(None);
            }
            let mut fields = vec![KIND_COMMIT];
            fields.extend_from_slice(&rest[..24]);
            let field = |i: usize| u64::from_le_bytes(rest[i..i + 8].try_into().unwrap_or([0; 8]));
            let whole = xxh3_64(&fields) == field(24)
                && field(0) == header.instance
                && field(8) == records.len() as u64
                && field(16) == chain.digest();
            drop(reader);
            return Ok(whole.then_some(CommittedLog {
                header,
                records,
                file,
            }));
        }
        let mut head = [0u8; RECORD_HEADER];
        head[0] = kind[0];
        if !read_full(&mut reader, &mut head[1..])? {
            return Ok(None);
        }
        chain.update(&head);
        let record = RedoRecord {
            disk: u16::from_le_bytes([head[1], head[2]]),
            block: u64::from_le_bytes(head[3..11].try_into().unwrap_or([0; 8])),
            len: u32::from_le_bytes(head[11..15].try_into().unwrap_or([0; 4])),
            data_at: (head[0] == KIND_DATA).then_some(pos + RECORD_HEADER as u64),
            data_sum: u64::from_le_bytes(head[15..23].try_into().unwrap_or([0; 8])),
        };
        let known_kind = head[0] == KIND_DATA || head[0] == KIND_ZERO;
        if !known_kind
            || usize::from(record.disk) >= header.disk_sizes.len()
            || record.len > header.block_size
        {
            return Ok(None);
        }
        pos += RECORD_HEADER as u64;
        if record.data_at.is_some() {
            reader.seek_relative(i64::from(record.len))?;
            pos += u64::from(record.len);
        }
        records.push(record);
    }
}

fn read_header(reader: &mut impl Read) -> io::Result<Option<RedoHeader>> {
    let mut fixed = [0u8; 36];
    if !read_full(reader, &mut fixed)? || &fixed[..8] != MAGIC {
        return Ok(None);
    }
    let u32_at = |i: usize| u32::from_le_bytes(fixed[i..i + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |i: usize| u64::from_le_bytes(fixed[i..i + 8].try_into().unwrap_or([0; 8]));
    let disks = u32_at(32) as usize;
    if u32_at(8) != VERSION || disks > 4096 || !Geometry::is_block_size(u32_at(28)) {
        return Ok(None);
    }
    let mut rest = vec![0u8; disks * 8 + 8];
    if !read_full(reader, &mut rest)? {
        return Ok(None);
    }
    let header = RedoHeader {
        instance: u64_at(12),
        point_time_ms: u64_at(20),
        block_size: u32_at(28),
        disk_sizes: rest[..disks * 8]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect(),
    };
    let encoded = encode_header(&header);
    Ok((encoded[36..] == rest[..]).then_some(header))
}

/// Sequential reads over a [`LayerFile`].
struct Cursor<'a> {
    file: &'a dyn LayerFile,
    pos: u64,
}

impl Read for Cursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Cursor<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.file.size()?.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}

/// Fills `buf`; false at a clean or torn end of file.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

impl CommittedLog {
    /// Reads every data record and checks it against its checksum, so that
    /// a log is known whole before its first byte touches the base disks.
    pub fn verify(&self) -> io::Result<()> {
        let mut buf = Vec::with_capacity(self.header.block_size as usize);
        for record in self.records.iter().filter(|r| r.data_at.is_some()) {
            self.read_data(record, &mut buf)?;
        }
        Ok(())
    }

    /// Reads a data record's bytes, checking them against their checksum.
    pub fn read_data(&self, record: &RedoRecord, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.resize(record.len as usize, 0);
        if let Some(at) = record.data_at {
            self.file.read_exact_at(buf, at)?;
            if xxh3_64(buf) != record.data_sum {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "redo log of instance {} is corrupt: block {} of disk {} fails its checksum",
                        self.header.instance, record.block, record.disk
                    ),
                ));
            }
        } else {
            buf.fill(0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::fs::real;

    fn header() -> RedoHeader {
        RedoHeader {
            instance: 7,
            point_time_ms: 1234,
            block_size: 4096,
            disk_sizes: vec![1 << 20, 1 << 20],
        }
    }

    fn write(path: &Path) -> u64 {
        let mut log = RedoLogWriter::create(real(), path, &header()).unwrap();
        log.append_data(0, 3, &[5; 4096]).unwrap();
        log.append_zero(1, 9, 4096).unwrap();
        log.append_data(1, 2, &[6; 4096]).unwrap();
        log.commit().unwrap();
        std::fs::metadata(path).unwrap().len()
    }

    #[test]
    fn committed_log_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("redo.log");
        write(&path);
        let log = read_committed(&*real(), &path).unwrap().unwrap();
        assert_eq!(log.header, header());
        assert_eq!(log.records.len(), 3);
        let mut buf = Vec::new();
        log.read_data(&log.records[2], &mut buf).unwrap();
        assert_eq!(buf, vec![6; 4096]);
        log.read_data(&log.records[1], &mut buf).unwrap();
        assert_eq!(buf, vec![0; 4096]);
    }

    #[test]
    fn every_truncation_is_uncommitted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("redo.log");
        let len = write(&path);
        let bytes = std::fs::read(&path).unwrap();
        for cut in (0..len).step_by(97).chain([len - 1]) {
            std::fs::write(&path, &bytes[..cut as usize]).unwrap();
            assert!(
                read_committed(&*real(), &path).unwrap().is_none(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn flipped_header_bit_is_uncommitted_and_flipped_data_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("redo.log");
        write(&path);
        let bytes = std::fs::read(&path).unwrap();
        let mut bad = bytes.clone();
        bad[60] ^= 0x10; // inside the first record header
        std::fs::write(&path, &bad).unwrap();
        assert!(read_committed(&*real(), &path).unwrap().is_none());

        let mut bad = bytes.clone();
        bad[100] ^= 0x10; // inside the first block's data
        std::fs::write(&path, &bad).unwrap();
        let log = read_committed(&*real(), &path).unwrap().unwrap();
        assert!(log.read_data(&log.records[0], &mut Vec::new()).is_err());
    }
}
