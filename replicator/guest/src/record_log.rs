//! The guest's record log: an append-only ring of 512-byte records on its
//! first disk, each with a sequence number, a timestamp, its checksum and the
//! checksum of the record before it. Verifying it tells whether a disk is
//! crash-consistent (an intact prefix of what the guest wrote) and how recent
//! its last write was. Pure: reads go through a closure, so a live disk and a
//! replica file are verified the same way.

use std::io;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

pub const RECORD: usize = 512;
const MAGIC: &[u8; 4] = b"FRG1";
/// The log starts after a first block left for a boot sector.
pub const LOG_START: u64 = 4096;

/// Where the log lives on a disk of `disk_size` bytes: the first half.
pub fn log_slots(disk_size: u64) -> u64 {
    ((disk_size / 2).saturating_sub(LOG_START) / RECORD as u64).max(1)
}

pub fn slot_offset(slot: u64) -> u64 {
    LOG_START + slot * RECORD as u64
}

/// The record with sequence number `seq` (1-based) and where it goes.
pub fn encode(seq: u64, time_ms: u64, prev_sum: u64, slots: u64) -> (u64, [u8; RECORD]) {
    let mut r = [0u8; RECORD];
    r[..4].copy_from_slice(MAGIC);
    r[4..12].copy_from_slice(&seq.to_le_bytes());
    r[12..20].copy_from_slice(&time_ms.to_le_bytes());
    r[20..28].copy_from_slice(&prev_sum.to_le_bytes());
    for (i, b) in r[28..RECORD - 8].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_add(i as u8);
    }
    let sum = xxh3_64(&r[..RECORD - 8]);
    r[RECORD - 8..].copy_from_slice(&sum.to_le_bytes());
    (slot_offset((seq - 1) % slots), r)
}

pub fn checksum(record: &[u8; RECORD]) -> u64 {
    u64::from_le_bytes(record[RECORD - 8..].try_into().unwrap_or([0; 8]))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Blank,
    Torn,
    Record {
        seq: u64,
        time_ms: u64,
        prev_sum: u64,
        sum: u64,
    },
}

fn parse(r: &[u8]) -> Slot {
    if r.iter().all(|&b| b == 0) {
        return Slot::Blank;
    }
    let sum = u64::from_le_bytes(r[RECORD - 8..].try_into().unwrap_or([0; 8]));
    if &r[..4] != MAGIC || xxh3_64(&r[..RECORD - 8]) != sum {
        return Slot::Torn;
    }
    let field = |i: usize| u64::from_le_bytes(r[i..i + 8].try_into().unwrap_or([0; 8]));
    Slot::Record {
        seq: field(4),
        time_ms: field(12),
        prev_sum: field(20),
        sum,
    }
}

/// What a boot-time check of the record log found. The API shows it as is
/// (ferry-api re-exports it) and the guest agent sends it in its boot message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// True when the log is an intact prefix: no torn, missing or
    /// out-of-order record.
    pub ok: bool,
    /// The newest intact record (0 when the log is empty).
    pub last_seq: u64,
    pub last_time_ms: Option<u64>,
    /// Records checked.
    pub records: u64,
    pub problem: Option<String>,
    /// Checksum of the newest record, which the next record chains to.
    /// The writer keeps it to append; it never crosses the wire.
    #[serde(skip)]
    pub head_sum: u64,
}

/// Verifies the log on a disk of `disk_size` bytes read through `read_at`.
pub fn verify(
    disk_size: u64,
    mut read_at: impl FnMut(&mut [u8], u64) -> io::Result<()>,
) -> io::Result<Verification> {
    let slots = log_slots(disk_size);
    let mut parsed = Vec::with_capacity(slots as usize);
    let mut buf = vec![0u8; 1 << 20];
    let mut slot = 0;
    while slot < slots {
        let n = (slots - slot).min((buf.len() / RECORD) as u64);
        let chunk = &mut buf[..n as usize * RECORD];
        read_at(chunk, slot_offset(slot))?;
        parsed.extend(chunk.chunks_exact(RECORD).map(parse));
        slot += n;
    }
    let fail = |problem: String, last: Option<(u64, u64)>| Verification {
        ok: false,
        last_seq: last.map_or(0, |l| l.0),
        last_time_ms: last.map(|l| l.1),
        records: 0,
        problem: Some(problem),
        head_sum: 0,
    };
    let head = parsed.iter().filter_map(|s| match s {
        Slot::Record { seq, .. } => Some(*seq),
        _ => None,
    });
    let Some(head) = head.max() else {
        return Ok(match parsed.iter().position(|s| *s == Slot::Torn) {
            Some(at) => fail(format!("torn record at slot {at} of an empty log"), None),
            None => Verification {
                ok: true,
                last_seq: 0,
                last_time_ms: None,
                records: 0,
                problem: None,
                head_sum: 0,
            },
        });
    };
    let oldest = head.saturating_sub(slots - 1).max(1);
    let mut next: Option<(u64, u64, u64)> = None; // (seq, prev_sum, time) of the record after
    let mut head_info = (0, 0, 0); // (time, sum, seq)
    for seq in (oldest..=head).rev() {
        let at = (seq - 1) % slots;
        match parsed[at as usize] {
            Slot::Record {
                seq: found,
                time_ms,
                prev_sum,
                sum,
            } if found == seq => {
                if let Some((later, later_prev, later_time)) = next {
                    if later_prev != sum {
                        return Ok(fail(
                            format!("record {later} does not chain to record {seq}"),
                            Some((head, head_info.0)),
                        ));
                    }
                    if time_ms > later_time {
                        return Ok(fail(
                            format!("record {seq} is newer than record {later}"),
                            Some((head, head_info.0)),
                        ));
                    }
                } else {
                    head_info = (time_ms, sum, seq);
                }
                next = Some((seq, prev_sum, time_ms));
            }
            other => {
                let what = match other {
                    Slot::Blank => "missing".to_string(),
                    Slot::Torn => "torn".to_string(),
                    Slot::Record { seq: found, .. } => format!("out of order (holds {found})"),
                };
                return Ok(fail(
                    format!("record {seq} at slot {at} is {what}, below newer record {head}"),
                    Some((head, head_info.0)),
                ));
            }
        }
    }
    // Slots never reached by the log yet must still be blank.
    if head < slots
        && let Some(at) = parsed[head as usize..]
            .iter()
            .position(|s| *s != Slot::Blank)
    {
        return Ok(fail(
            format!(
                "slot {} beyond the newest record {head} is not blank",
                head as usize + at
            ),
            Some((head, head_info.0)),
        ));
    }
    Ok(Verification {
        ok: true,
        last_seq: head,
        last_time_ms: Some(head_info.0),
        records: head - oldest + 1,
        problem: None,
        head_sum: head_info.1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u64 = 64 * 1024; // 56 slots

    fn disk_with(records: u64) -> Vec<u8> {
        let slots = log_slots(SIZE);
        let mut disk = vec![0u8; SIZE as usize];
        let mut prev = 0;
        for seq in 1..=records {
            let (at, r) = encode(seq, 1000 + seq, prev, slots);
            prev = checksum(&r);
            disk[at as usize..at as usize + RECORD].copy_from_slice(&r);
        }
        disk
    }

    fn check(disk: &[u8]) -> Verification {
        verify(SIZE, |buf, at| {
            buf.copy_from_slice(&disk[at as usize..at as usize + buf.len()]);
            Ok(())
        })
        .unwrap()
    }

    #[test]
    fn intact_logs_verify_including_after_wrapping() {
        assert_eq!(check(&disk_with(0)).last_seq, 0);
        let v = check(&disk_with(10));
        assert!(
            v.ok && v.last_seq == 10 && v.last_time_ms == Some(1010),
            "{v:?}"
        );
        let v = check(&disk_with(200)); // wraps the 56-slot ring
        assert!(
            v.ok && v.last_seq == 200 && v.records == log_slots(SIZE),
            "{v:?}"
        );
    }

    #[test]
    fn torn_missing_and_reordered_records_fail() {
        let mut torn = disk_with(10);
        torn[slot_offset(4) as usize + 100] ^= 1;
        assert!(check(&torn).problem.unwrap().contains("torn"));

        let mut missing = disk_with(10);
        let at = slot_offset(3) as usize;
        missing[at..at + RECORD].fill(0);
        assert!(check(&missing).problem.unwrap().contains("missing"));

        let mut swapped = disk_with(10);
        let (a, b) = (slot_offset(2) as usize, slot_offset(3) as usize);
        let copy = swapped[a..a + RECORD].to_vec();
        swapped.copy_within(b..b + RECORD, a);
        swapped[b..b + RECORD].copy_from_slice(&copy);
        assert!(!check(&swapped).ok);

        let mut stray = disk_with(10);
        let (_, r) = encode(3, 5, 0, log_slots(SIZE));
        let at = slot_offset(20) as usize;
        stray[at..at + RECORD].copy_from_slice(&r);
        assert!(check(&stray).problem.unwrap().contains("not blank"));
    }
}
