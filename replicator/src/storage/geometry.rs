//! Block geometry: how a disk of a given size divides into fixed-size blocks.

/// The default replication block size: 64 KiB, as in the design.
pub const DEFAULT_BLOCK_SIZE: u32 = 64 * 1024;

/// The size of a disk and of its blocks. The last block may be short when the
/// disk size is not a multiple of the block size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub disk_size: u64,
    pub block_size: u32,
}

impl Geometry {
    pub fn new(disk_size: u64, block_size: u32) -> Self {
        assert!(
            Self::is_block_size(block_size),
            "block size must be a power of two of at least 512 bytes"
        );
        Self {
            disk_size,
            block_size,
        }
    }

    /// Whether `block_size` can divide a disk: what a file read back from
    /// disk must check before it makes a [`Geometry`] of it.
    pub fn is_block_size(block_size: u32) -> bool {
        block_size >= 512 && block_size.is_power_of_two()
    }

    pub fn block_count(&self) -> u64 {
        self.disk_size.div_ceil(u64::from(self.block_size))
    }

    pub fn block_offset(&self, block: u64) -> u64 {
        block * u64::from(self.block_size)
    }

    /// Length of `block` in bytes (the last block may be short).
    pub fn block_len(&self, block: u64) -> usize {
        let start = self.block_offset(block);
        (self.disk_size.saturating_sub(start)).min(u64::from(self.block_size)) as usize
    }

    /// The blocks touched by a write of `len` bytes at `offset`.
    pub fn blocks_touched(&self, offset: u64, len: usize) -> std::ops::Range<u64> {
        if len == 0 {
            return 0..0;
        }
        let bs = u64::from(self.block_size);
        let first = offset / bs;
        let last = (offset + len as u64 - 1) / bs;
        first..last + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_last_block() {
        let g = Geometry::new(100_000, 65536);
        assert_eq!(g.block_count(), 2);
        assert_eq!(g.block_len(0), 65536);
        assert_eq!(g.block_len(1), 100_000 - 65536);
    }

    #[test]
    fn touched_blocks_span_boundaries() {
        let g = Geometry::new(1 << 20, 65536);
        assert_eq!(g.blocks_touched(65535, 2), 0..2);
        assert_eq!(g.blocks_touched(65536, 65536), 1..2);
        assert_eq!(g.blocks_touched(10, 0), 0..0);
    }
}
