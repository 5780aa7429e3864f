//! Block contents: the hash used to compare blocks across sites, and zero
//! detection so that all-zero blocks stay holes.
//!
//! Blocks are compared with XXH3-128: at tens of GB/s it keeps a full sync
//! bound by the disk, not the CPU, and 128 bits make an accidental collision
//! across even exabytes of blocks vanishingly unlikely. It is not a defence
//! against a guest that crafts collisions on purpose; such a guest can only
//! make its own replica differ from its own disk.

use xxhash_rust::xxh3::xxh3_128;

/// The hash of one block's contents.
pub type BlockHash = [u8; 16];

pub fn hash_block(data: &[u8]) -> BlockHash {
    xxh3_128(data).to_le_bytes()
}

/// The hash of an all-zero block of `len` bytes (what a hole hashes to).
pub fn zero_hash(len: usize) -> BlockHash {
    thread_local! {
        static ZEROS: Vec<u8> = vec![0; 1 << 20];
    }
    ZEROS.with(|zeros| {
        if len <= zeros.len() {
            hash_block(&zeros[..len])
        } else {
            hash_block(&vec![0; len])
        }
    })
}

/// True when every byte of `data` is zero.
pub fn is_zero(data: &[u8]) -> bool {
    let mut chunks = data.chunks_exact(64);
    for chunk in &mut chunks {
        let mut acc = 0u64;
        for word in chunk.chunks_exact(8) {
            acc |= u64::from_ne_bytes(word.try_into().unwrap_or([0; 8]));
        }
        if acc != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_detection() {
        let mut block = vec![0u8; 65536 + 3];
        assert!(is_zero(&block));
        block[65538] = 1;
        assert!(!is_zero(&block));
        block[65538] = 0;
        block[100] = 1;
        assert!(!is_zero(&block));
    }

    #[test]
    fn zero_hash_matches_hash_of_zeros() {
        assert_eq!(zero_hash(65536), hash_block(&[0; 65536]));
        assert_ne!(zero_hash(65536), zero_hash(512));
    }
}
