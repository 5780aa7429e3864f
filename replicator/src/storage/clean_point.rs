//! Clean-point scoring: how much of each instance changed, how much of that
//! looks encrypted, both against the VM's own learned baseline, so that the
//! first instance of an encryption attack is flagged and the newest instance
//! before it can be recommended.
//!
//! Pure: the caller feeds each cycle's [`CycleSample`] to the VM's
//! [`Baseline`] in instance order and stores what comes back.
//!
//! How the baseline learns a VM that always writes incompressible data
//! (compressed backups, an encrypted file system): the first
//! [`LEARNING_CYCLES`] cycles only teach it (no alarm), and it keeps a
//! moving average of the encrypted-looking share as well as of the change
//! rate. A jump is a change rate [`RATE_JUMP`] times the baseline with at
//! least [`SHARE_MIN`] of the sample looking encrypted *and* that share well
//! above the baseline's ([`SHARE_JUMP`]); for a VM whose baseline is already
//! mostly encrypted-looking, the share cannot jump, so only a rate of
//! [`RATE_JUMP_LEARNED`] times its baseline alarms.

/// Cycles that only teach the baseline.
pub const LEARNING_CYCLES: u32 = 8;
/// Change rate, against the baseline's, that a jump needs.
pub const RATE_JUMP: f64 = 10.0;
/// The same for a VM whose baseline share is at least [`SHARE_MIN`].
pub const RATE_JUMP_LEARNED: f64 = 50.0;
/// Share of sampled changed blocks looking encrypted that a jump needs.
pub const SHARE_MIN: f64 = 0.5;
/// How far above the baseline's share that share must be.
pub const SHARE_JUMP: f64 = 0.3;
/// Weight of a new cycle in the moving averages.
const ALPHA: f64 = 0.2;
/// Changed data blocks sampled per cycle.
pub const SAMPLE_BLOCKS: usize = 64;
/// Bits of byte entropy per byte above which a block looks encrypted:
/// random and compressed data measure 7.9 and more; text, code and
/// databases well under 7.
const ENCRYPTED_BITS: f64 = 7.2;

/// What one cycle changed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CycleSample {
    /// Bytes of every block the instance changed (data and zeroed).
    pub bytes_changed: u64,
    /// Time from the previous instance's point to this one's.
    pub interval_ms: u64,
    /// Changed data blocks examined, and those of them that look encrypted.
    pub sampled: u32,
    pub encrypted: u32,
}

/// The score of one instance as stored and shown.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct InstanceScore {
    pub bytes_changed: u64,
    /// Bytes changed per second of the interval.
    pub rate: f64,
    /// Share of the sampled changed blocks that look encrypted.
    pub share: f64,
    /// The baseline it was judged against (before this cycle).
    pub baseline_rate: f64,
    pub baseline_share: f64,
    /// This cycle is the first of a jump: the alarm is raised for it.
    pub jump: bool,
    /// This instance or an earlier one since the last acknowledged jump
    /// looks attacked.
    pub suspicious: bool,
}

/// A VM's learned normal, carried from cycle to cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Baseline {
    pub cycles: u32,
    pub rate: f64,
    pub share: f64,
    /// The first instance of the jump that marked later ones suspicious.
    pub suspicious_since: Option<u64>,
}

impl CycleSample {
    fn share(&self) -> f64 {
        if self.sampled == 0 {
            0.0
        } else {
            f64::from(self.encrypted) / f64::from(self.sampled)
        }
    }

    fn rate(&self) -> f64 {
        self.bytes_changed as f64 * 1000.0 / self.interval_ms.max(1) as f64
    }
}

impl Baseline {
    /// Scores `instance` and learns from it; a suspicious cycle is not
    /// learned, so an attack never becomes the VM's normal.
    pub fn score(&mut self, instance: u64, sample: CycleSample) -> InstanceScore {
        let (rate, share) = (sample.rate(), sample.share());
        let learned = self.cycles >= LEARNING_CYCLES;
        let ratio = if self.rate > 0.0 {
            rate / self.rate
        } else {
            f64::INFINITY
        };
        let jump = learned
            && share >= SHARE_MIN
            && if self.share >= SHARE_MIN {
                ratio >= RATE_JUMP_LEARNED
            } else {
                ratio >= RATE_JUMP && share - self.share >= SHARE_JUMP
            };
        let score = InstanceScore {
            bytes_changed: sample.bytes_changed,
            rate,
            share,
            baseline_rate: self.rate,
            baseline_share: self.share,
            jump: jump && self.suspicious_since.is_none(),
            suspicious: jump || self.suspicious_since.is_some(),
        };
        if jump && self.suspicious_since.is_none() {
            self.suspicious_since = Some(instance);
        }
        if !score.suspicious {
            if self.cycles == 0 {
                (self.rate, self.share) = (rate, share);
            } else {
                self.rate += ALPHA * (rate - self.rate);
                self.share += ALPHA * (share - self.share);
            }
            self.cycles = self.cycles.saturating_add(1);
        }
        score
    }
}

/// Whether a block looks encrypted: its byte entropy is that of random
/// data. Shannon entropy over the byte histogram costs one pass and no
/// allocation, cheaper than a trial compression and as telling for
/// encrypted or already compressed blocks.
pub fn looks_encrypted(block: &[u8]) -> bool {
    if block.len() < 256 {
        return false;
    }
    let mut counts = [0u32; 256];
    for &b in block {
        counts[usize::from(b)] += 1;
    }
    let n = block.len() as f64;
    let bits: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum();
    bits >= ENCRYPTED_BITS
}

/// Indices of at most [`SAMPLE_BLOCKS`] of `count` items, evenly spread.
pub fn sample_indices(count: usize) -> impl Iterator<Item = usize> {
    let take = count.min(SAMPLE_BLOCKS);
    (0..take).map(move |i| i * count / take.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cycle(bytes: u64, encrypted: u32) -> CycleSample {
        CycleSample {
            bytes_changed: bytes,
            interval_ms: 60_000,
            sampled: 64,
            encrypted,
        }
    }

    #[test]
    fn entropy_tells_random_from_structured_blocks() {
        let mut x = 0x1234_5678_9abc_def1u64;
        let random: Vec<u8> = (0..65536)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(looks_encrypted(&random));
        let text: Vec<u8> = b"seq 42 ts 1700000000 sum 9f3a "
            .iter()
            .copied()
            .cycle()
            .take(65536)
            .collect();
        assert!(!looks_encrypted(&text));
        assert!(!looks_encrypted(&[0; 4096]));
    }

    #[test]
    fn a_jump_to_encrypted_writes_alarms_once_and_marks_what_follows() {
        let mut baseline = Baseline::default();
        for n in 1..=20 {
            let s = baseline.score(n, cycle(10 << 20, 2));
            assert!(!s.suspicious, "instance {n} is normal");
        }
        let attack = baseline.score(21, cycle(200 << 20, 60));
        assert!(attack.jump && attack.suspicious);
        let after = baseline.score(22, cycle(10 << 20, 2));
        assert!(!after.jump, "one alarm per jump");
        assert!(after.suspicious, "later instances stay suspicious");
        assert_eq!(baseline.suspicious_since, Some(21));
    }

    #[test]
    fn a_vm_always_writing_compressed_data_stops_alarming_once_learned() {
        // Compressed backups: every block incompressible, bursts of 20x.
        let burst = |n: u64| {
            if n.is_multiple_of(5) {
                200 << 20
            } else {
                10 << 20
            }
        };
        let mut learned = Baseline::default();
        for n in 1..=60 {
            let s = learned.score(n, cycle(burst(n), 64));
            assert!(!s.suspicious, "instance {n} alarmed: {s:?}");
        }
        // The same bursts on a VM that writes compressible data alarm.
        let mut plain = Baseline::default();
        for n in 1..=LEARNING_CYCLES as u64 {
            plain.score(n, cycle(10 << 20, 3));
        }
        assert!(plain.score(9, cycle(200 << 20, 64)).jump);
        // And a real attack on the compressed-data VM still alarms.
        assert!(learned.score(61, cycle(10 << 30, 64)).jump);
    }

    #[test]
    fn nothing_alarms_while_learning() {
        let mut baseline = Baseline::default();
        assert!(!baseline.score(1, cycle(1 << 30, 64)).suspicious);
        assert!(!baseline.score(2, cycle(1 << 20, 0)).suspicious);
    }
}
