//! `score-<k>`: an instance's bytes changed and clean-point score, with the
//! VM's baseline as it stood after that instance, so the next cycle is
//! judged against what this one taught.

use std::io;
use std::path::PathBuf;

use xxhash_rust::xxh3::xxh3_64;

use super::super::clean_point::{
    Baseline, CycleSample, InstanceScore, looks_encrypted, sample_indices,
};
use super::super::durable;
use super::super::fs as layer_fs;
use super::super::redo_log::CommittedLog;
use super::Replica;

/// One instance's stored score and the baseline after it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ScoreRecord {
    pub score: InstanceScore,
    pub baseline: Baseline,
}

pub(super) fn score_name(instance: u64) -> String {
    format!("score-{instance}")
}

impl ScoreRecord {
    pub fn encode(&self) -> Vec<u8> {
        let (s, b) = (&self.score, &self.baseline);
        let body = format!(
            "ferry-score 1\nbytes_changed {}\nrate {}\nshare {}\nbaseline_rate {}\nbaseline_share {}\njump {}\nsuspicious {}\nlearned {} {} {} {}\n",
            s.bytes_changed,
            s.rate,
            s.share,
            s.baseline_rate,
            s.baseline_share,
            u8::from(s.jump),
            u8::from(s.suspicious),
            b.cycles,
            b.rate,
            b.share,
            b.suspicious_since.map_or("none".into(), |i| i.to_string()),
        );
        format!("{body}checksum {:016x}\n", xxh3_64(body.as_bytes())).into_bytes()
    }

    /// `None` when the file is not whole and valid.
    pub fn decode(text: &str) -> Option<Self> {
        let (body, sum) = text.rsplit_once("checksum ")?;
        if u64::from_str_radix(sum.trim(), 16).ok()? != xxh3_64(body.as_bytes()) {
            return None;
        }
        let mut lines = body.lines();
        if lines.next()? != "ferry-score 1" {
            return None;
        }
        let mut field = |name: &str| lines.next()?.strip_prefix(name)?.strip_prefix(' ');
        let score = InstanceScore {
            bytes_changed: field("bytes_changed")?.parse().ok()?,
            rate: field("rate")?.parse().ok()?,
            share: field("share")?.parse().ok()?,
            baseline_rate: field("baseline_rate")?.parse().ok()?,
            baseline_share: field("baseline_share")?.parse().ok()?,
            jump: field("jump")? == "1",
            suspicious: field("suspicious")? == "1",
        };
        let learned: Vec<&str> = field("learned")?.split(' ').collect();
        let [cycles, rate, share, since] = learned[..] else {
            return None;
        };
        let baseline = Baseline {
            cycles: cycles.parse().ok()?,
            rate: rate.parse().ok()?,
            share: share.parse().ok()?,
            suspicious_since: match since {
                "none" => None,
                n => Some(n.parse().ok()?),
            },
        };
        Some(Self { score, baseline })
    }
}

impl Replica {
    pub(super) fn score_path(&self, instance: u64) -> PathBuf {
        self.dir.join(score_name(instance))
    }

    /// Instance `instance`'s stored score; `None` when it has none (it was
    /// never scored, or a crash lost it before its state was recorded).
    pub fn score(&self, instance: u64) -> Option<ScoreRecord> {
        let bytes = layer_fs::read_all(&*self.layer, &self.score_path(instance)).ok()?;
        ScoreRecord::decode(&String::from_utf8(bytes).ok()?)
    }

    /// Scores the committed log against the baseline the base's instance
    /// left, and stores it beside the replica before the instance is
    /// recorded. The log's data was verified just before: the sample reads
    /// come from the page cache.
    pub(super) fn record_score(&self, log: &CommittedLog) -> io::Result<ScoreRecord> {
        let baseline = self
            .state
            .instance
            .and_then(|at| self.score(at))
            .map(|r| r.baseline)
            .unwrap_or_default();
        let data: Vec<_> = log.records.iter().filter(|r| r.data_at.is_some()).collect();
        let mut sample = CycleSample {
            bytes_changed: log.records.iter().map(|r| u64::from(r.len)).sum(),
            interval_ms: log
                .header
                .point_time_ms
                .saturating_sub(self.state.point_time_ms),
            ..CycleSample::default()
        };
        let mut buf = Vec::new();
        for i in sample_indices(data.len()) {
            log.read_data(data[i], &mut buf)?;
            sample.sampled += 1;
            sample.encrypted += u32::from(looks_encrypted(&buf));
        }
        let mut baseline = baseline;
        // The first instance is the whole disk, not a cycle's change.
        let score = if self.state.instance.is_none() {
            InstanceScore {
                bytes_changed: sample.bytes_changed,
                ..InstanceScore::default()
            }
        } else {
            baseline.score(log.header.instance, sample)
        };
        let record = ScoreRecord { score, baseline };
        durable::write_atomic_in(
            &*self.layer,
            &self.score_path(log.header.instance),
            &record.encode(),
        )?;
        Ok(record)
    }
}

impl Replica {
    /// The alarm for instance `instance` when its score is the first of a
    /// jump: what changed, against what baseline, and the newest kept
    /// instance before it, the recommended clean point.
    pub fn clean_point_alarm(&self, instance: u64) -> Option<String> {
        let score = self.score(instance)?.score;
        if !score.jump {
            return None;
        }
        let clean = self
            .kept()
            .ok()?
            .into_iter()
            .filter(|k| k.instance < instance && !k.score.is_some_and(|s| s.score.suspicious))
            .map(|k| k.instance)
            .max();
        let ratio = if score.baseline_rate > 0.0 {
            score.rate / score.baseline_rate
        } else {
            f64::INFINITY
        };
        Some(format!(
            "VM {}: instance {instance} looks like an encryption attack: {} bytes changed, {ratio:.0}x its usual change rate, {:.0}% of the sampled changed blocks look encrypted (usually {:.0}%); it and later instances are marked suspicious; {}",
            self.vm(),
            score.bytes_changed,
            score.share * 100.0,
            score.baseline_share * 100.0,
            clean.map_or(
                "no older instance is kept to recover to".to_string(),
                |k| format!("the recommended clean point is instance {k}")
            )
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_score_round_trips_and_a_flipped_byte_is_refused() {
        let record = ScoreRecord {
            score: InstanceScore {
                bytes_changed: 42,
                rate: 1.5,
                share: 0.25,
                baseline_rate: 2.0,
                baseline_share: 0.125,
                jump: true,
                suspicious: true,
            },
            baseline: Baseline {
                cycles: 9,
                rate: 3.0,
                share: 0.5,
                suspicious_since: Some(7),
            },
        };
        let text = String::from_utf8(record.encode()).unwrap();
        assert_eq!(ScoreRecord::decode(&text), Some(record));
        assert_eq!(ScoreRecord::decode(&text.replace("42", "43")), None);
    }
}
