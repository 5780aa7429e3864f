//! Wall-clock times as people read them, in UTC: one spelling for the TUI,
//! the CLI and the site's own listings.

/// `2026-12-01 05:45:22` (UTC): a moment in a list of days, not only of
/// hours.
pub fn date_time(ms: u64) -> String {
    format!("{} {}", date(ms), clock(ms))
}

/// `2026-12-01` (UTC), from days since 1970 by the civil calendar.
pub fn date(ms: u64) -> String {
    let days = (ms / 86_400_000) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// `HH:MM:SS` (UTC) of a wall-clock time in ms.
pub fn clock(ms: u64) -> String {
    let s = (ms / 1000) % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_known_moment_reads_in_utc() {
        assert_eq!(super::date_time(1_764_567_922_000), "2025-12-01 05:45:22");
        assert_eq!(super::date_time(0), "1970-01-01 00:00:00");
    }
}
