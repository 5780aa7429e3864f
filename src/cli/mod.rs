//! `ferry` as a command for scripts and runbooks, on the same typed client
//! and config as the TUI:
//!
//! - [`status`]: both sites, the link, RPO compliance, runs in progress;
//!   the exit code tells a NOC check or cron whether all is well.
//! - [`lists`]: `ferry vms|plans|runs` as tables or JSON.
//! - [`follow`]: a run followed step by step, its report and its verdict.
//! - [`start`]: a plan run started, and followed with `--wait`.
//! - [`runbook`]: a plan as a printable runbook.
//! - [`alarms`]: `ferry alarms` and `ferry alarm ack SITE#ID`.
//! - [`pair`]: two sites paired, each pinning the other's certificate.
//! - [`table`]: plain-text tables.
//!
//! Exit codes, for every command: 0 all well; 1 the check found a problem
//! or the run failed (or lost more than an RPO); 2 bad usage or config;
//! 3 a site could not be reached or refused the request.

pub mod alarms;
pub mod args;
pub mod commands;
pub mod follow;
pub mod pair;
pub mod runbook;
pub mod start;
pub mod status;
pub mod table;

/// How long one request to a site may take before it counts as no answer.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `2026-12-01 14:03:07` (UTC): the UI's dates, so both read alike.
pub use crate::ui::date_time;

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(super::date_time(0), "1970-01-01 00:00:00");
        assert_eq!(super::date_time(1_796_083_387_000), "2026-12-01 00:03:07");
        assert_eq!(super::date_time(951_782_400_000), "2000-02-29 00:00:00");
    }
}
