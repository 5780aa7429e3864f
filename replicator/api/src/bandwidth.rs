//! A site's cap on replication bandwidth: one rate for all its VMs, with
//! time windows (say 50 MiB/s on weekdays 08:00–18:00, unlimited otherwise).
//! Pure, so the site enforces and the TUI checks the same rules.
//!
//! Times are **UTC**, like every time ferry shows. A window covers `from`
//! up to but not including `to` on each of its days (`to` may be `24:00`);
//! a window across midnight is two windows. The first window that matches
//! the moment gives the cap; outside every window `mib_per_second` does.
//! A cap of `None` is unlimited.

use serde::{Deserialize, Serialize};

use crate::Invalid;

/// The highest cap ferry accepts: 100 GiB/s, past any link it drives.
pub const MAX_MIB_PER_SECOND: u32 = 102_400;
/// At most this many windows, so a schedule stays readable.
pub const MAX_WINDOWS: usize = 32;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The cap as configured (site.toml's `[bandwidth]`, and the API's body).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BandwidthPolicy {
    /// The cap outside every window, MiB/s; absent is unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mib_per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<BandwidthWindow>,
}

/// A cap that holds on some days between two times of day (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BandwidthWindow {
    /// Day names or ranges, comma-separated: `mon-fri`, `sat,sun`, `daily`.
    pub days: String,
    /// `HH:MM`, UTC.
    pub from: String,
    /// `HH:MM`, UTC, after `from`; `24:00` is the end of the day.
    pub to: String,
    /// The cap inside the window, MiB/s; absent is unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mib_per_second: Option<u32>,
}

/// A checked policy, ready to answer "what is the cap now".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BandwidthSchedule {
    default: Option<u32>,
    windows: Vec<Window>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Window {
    /// Bit 0 is Monday.
    days: u8,
    from_minute: u32,
    to_minute: u32,
    cap: Option<u32>,
}

/// The cap in force at a moment, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapInForce {
    /// MiB/s; `None` is unlimited.
    pub mib_per_second: Option<u32>,
    /// The index of the window that set it; `None` is the default.
    pub window: Option<usize>,
}

impl CapInForce {
    /// Bytes per second, `None` when unlimited.
    pub fn bytes_per_second(&self) -> Option<u64> {
        self.mib_per_second.map(|m| u64::from(m) << 20)
    }
}

/// `GET /site/bandwidth`: the policy, the cap in force now and the rate
/// the site's senders are drawing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandwidthInfo {
    pub policy: BandwidthPolicy,
    pub now: CapInForce,
    /// Replication bytes sent per second, over the last few seconds.
    pub rate_bytes_per_second: u64,
}

fn check_cap(field: &str, cap: Option<u32>) -> Result<(), Invalid> {
    match cap {
        Some(c) if c == 0 || c > MAX_MIB_PER_SECOND => Err(Invalid::new(
            field,
            format!(
                "a cap of {c} MiB/s is outside 1 to {MAX_MIB_PER_SECOND} MiB/s (leave it out for no cap)"
            ),
        )),
        _ => Ok(()),
    }
}

fn parse_day(field: &str, name: &str) -> Result<u32, Invalid> {
    DAY_NAMES
        .iter()
        .position(|d| d.eq_ignore_ascii_case(name.trim()))
        .map(|i| i as u32)
        .ok_or_else(|| {
            Invalid::new(
                field,
                format!(
                    "{:?} is not a day: use mon, tue, wed, thu, fri, sat, sun, a range such as mon-fri, or daily",
                    name.trim()
                ),
            )
        })
}

fn parse_days(field: &str, text: &str) -> Result<u8, Invalid> {
    if text.trim().eq_ignore_ascii_case("daily") {
        return Ok(0x7f);
    }
    let mut days = 0u8;
    for item in text.split(',') {
        let (first, last) = match item.split_once('-') {
            Some((a, b)) => (parse_day(field, a)?, parse_day(field, b)?),
            None => {
                let d = parse_day(field, item)?;
                (d, d)
            }
        };
        if last < first {
            return Err(Invalid::new(
                field,
                format!(
                    "the range {:?} runs backwards (weeks start on mon)",
                    item.trim()
                ),
            ));
        }
        for d in first..=last {
            days |= 1 << d;
        }
    }
    Ok(days)
}

/// Minutes since midnight of `HH:MM`; `24:00` only where `end` allows it.
fn parse_time(field: &str, text: &str, end: bool) -> Result<u32, Invalid> {
    let bad = || {
        Invalid::new(
            field,
            format!(
                "{text:?} is not a time of day: use HH:MM in UTC, 00:00 to 23:59 (24:00 as an end)"
            ),
        )
    };
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    let minute = h * 60 + m;
    if m >= 60 || minute > 24 * 60 || (minute == 24 * 60 && !end) {
        return Err(bad());
    }
    Ok(minute)
}

impl BandwidthPolicy {
    /// Checks every field, naming the first that is wrong and why.
    pub fn validate(&self) -> Result<BandwidthSchedule, Invalid> {
        check_cap("mib_per_second", self.mib_per_second)?;
        if self.windows.len() > MAX_WINDOWS {
            return Err(Invalid::new(
                "windows",
                format!("{} windows, at most {MAX_WINDOWS}", self.windows.len()),
            ));
        }
        let mut windows = Vec::with_capacity(self.windows.len());
        for (i, w) in self.windows.iter().enumerate() {
            let field = |name: &str| format!("windows[{i}].{name}");
            check_cap(&field("mib_per_second"), w.mib_per_second)?;
            let days = parse_days(&field("days"), &w.days)?;
            let from_minute = parse_time(&field("from"), &w.from, false)?;
            let to_minute = parse_time(&field("to"), &w.to, true)?;
            if to_minute <= from_minute {
                return Err(Invalid::new(
                    &field("to"),
                    format!(
                        "{} is not after {} (a window across midnight is two windows)",
                        w.to, w.from
                    ),
                ));
            }
            windows.push(Window {
                days,
                from_minute,
                to_minute,
                cap: w.mib_per_second,
            });
        }
        Ok(BandwidthSchedule {
            default: self.mib_per_second,
            windows,
        })
    }
}

impl BandwidthSchedule {
    /// The cap at `unix_ms` (milliseconds since the Unix epoch, UTC).
    pub fn cap_at(&self, unix_ms: u64) -> CapInForce {
        let days_since_epoch = unix_ms / 86_400_000;
        // 1970-01-01 was a Thursday: Monday is 0.
        let weekday = ((days_since_epoch + 3) % 7) as u32;
        let minute = ((unix_ms % 86_400_000) / 60_000) as u32;
        let hit = self.windows.iter().position(|w| {
            w.days & (1 << weekday) != 0 && w.from_minute <= minute && minute < w.to_minute
        });
        match hit {
            Some(i) => CapInForce {
                mib_per_second: self.windows[i].cap,
                window: Some(i),
            },
            None => CapInForce {
                mib_per_second: self.default,
                window: None,
            },
        }
    }

    /// Whether any cap can ever apply.
    pub fn is_unlimited(&self) -> bool {
        self.default.is_none() && self.windows.iter().all(|w| w.cap.is_none())
    }
}

impl std::fmt::Display for CapInForce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.mib_per_second {
            Some(m) => write!(f, "{m} MiB/s")?,
            None => write!(f, "unlimited")?,
        }
        match self.window {
            Some(i) => write!(f, " (window {})", i + 1),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
#[path = "bandwidth_tests.rs"]
mod tests;
