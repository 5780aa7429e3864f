//! A fixed-size bit set of blocks: the dirty bitmap of change tracking.

/// One bit per block. Cheap to copy: a 1 TiB disk at 64 KiB blocks is 2 MiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    words: Vec<u64>,
    len: u64,
}

impl Bitmap {
    pub fn new(len: u64) -> Self {
        Self {
            words: vec![0; len.div_ceil(64) as usize],
            len,
        }
    }

    pub fn full(len: u64) -> Self {
        let mut bitmap = Self::new(len);
        bitmap.words.iter_mut().for_each(|w| *w = u64::MAX);
        bitmap.clear_tail();
        bitmap
    }

    /// Rebuilds a bitmap from its words, as persisted by [`Bitmap::words`].
    pub fn from_words(len: u64, words: Vec<u64>) -> Option<Self> {
        if words.len() != len.div_ceil(64) as usize {
            return None;
        }
        let mut bitmap = Self { words, len };
        bitmap.clear_tail();
        Some(bitmap)
    }

    fn clear_tail(&mut self) {
        let rem = self.len % 64;
        if rem != 0
            && let Some(last) = self.words.last_mut()
        {
            *last &= (1u64 << rem) - 1;
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    pub fn words(&self) -> &[u64] {
        &self.words
    }

    pub fn set(&mut self, bit: u64) {
        debug_assert!(bit < self.len);
        self.words[(bit / 64) as usize] |= 1 << (bit % 64);
    }

    pub fn clear(&mut self, bit: u64) {
        self.words[(bit / 64) as usize] &= !(1 << (bit % 64));
    }

    pub fn get(&self, bit: u64) -> bool {
        bit < self.len && self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0
    }

    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Sets every bit that is set in `other` (same length).
    pub fn union_with(&mut self, other: &Bitmap) {
        debug_assert_eq!(self.len, other.len);
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    /// The set bits in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &word)| {
            let mut w = word;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let bit = w.trailing_zeros();
                w &= w - 1;
                Some(i as u64 * 64 + u64::from(bit))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_iterate_count() {
        let mut b = Bitmap::new(130);
        for bit in [0, 63, 64, 129] {
            b.set(bit);
        }
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![0, 63, 64, 129]);
        assert_eq!(b.count(), 4);
        b.clear(63);
        assert!(!b.get(63));
        assert!(!b.get(500));
    }

    #[test]
    fn full_has_exactly_len_bits() {
        let b = Bitmap::full(70);
        assert_eq!(b.count(), 70);
        assert_eq!(b.iter().last(), Some(69));
    }

    #[test]
    fn from_words_rejects_wrong_length_and_masks_tail() {
        assert!(Bitmap::from_words(70, vec![0]).is_none());
        let b = Bitmap::from_words(70, vec![u64::MAX, u64::MAX]).unwrap();
        assert_eq!(b.count(), 70);
    }
}
