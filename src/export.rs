//! A run's record for the change ticket: the run as the API gives it
//! (JSON) and a Markdown report with its steps, per-VM results and RTO.
//! Rendering is pure; [`write`] puts both files in the current directory,
//! or in ferry's data directory when that cannot be written.

use std::path::{Path, PathBuf};

use ferry_api::types::Run;

use crate::model::runs::{duration_text, elapsed_ms, loss_text, run_look, step_look_in};
use crate::ui::clock;

pub fn json(run: &Run) -> String {
    serde_json::to_string_pretty(run).unwrap_or_default()
}

/// `1m05s` from milliseconds; `—` when unknown.
fn took(ms: Option<u64>) -> String {
    ms.map_or("—".into(), duration_text)
}

/// `|` would end a table cell; newlines would end the row.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn when(ms: Option<u64>) -> String {
    ms.map_or("—".into(), |ms| {
        format!("{} UTC", crate::ui::date_time(ms))
    })
}

pub fn markdown(run: &Run) -> String {
    let (_, state, _) = run_look(run.state);
    let mut out = format!(
        "# Run {id}: {mode} of plan {plan}\n\n\
         | | |\n|---|---|\n\
         | Result | {state} |\n\
         | Direction | {from} → {to} |\n\
         | Started | {started} UTC by {by} |\n\
         | Ended | {ended} |\n\
         | Duration | {duration} |\n\
         | RTO | {rto} |\n",
        id = run.id,
        mode = run.mode.label(),
        plan = cell(&run.plan_name),
        from = run.protected_site,
        to = run.recovery_site,
        started = crate::ui::date_time(run.started_ms),
        by = cell(&run.started_by),
        ended = run.ended_ms.map_or("still running".into(), |e| format!(
            "{} UTC",
            crate::ui::date_time(e)
        )),
        duration = took(run.ended_ms.map(|e| e.saturating_sub(run.started_ms))),
        rto = run.rto_seconds.map_or("—".into(), |r| format!("{r:.1} s")),
    );
    if !run.message.is_empty() {
        out.push_str(&format!("| Message | {} |\n", cell(&run.message)));
    }
    out.push_str("\n## Steps\n\n| # | Step | State | Started | Took | Message |\n|---|---|---|---|---|---|\n");
    for (i, s) in run.steps.iter().enumerate() {
        let (symbol, word, _) = step_look_in(run, s.state);
        out.push_str(&format!(
            "| {} | {} | {symbol} {word} | {} | {} | {} |\n",
            i + 1,
            cell(&s.name),
            when(s.started_ms),
            took(s.ended_ms.and(elapsed_ms(s.started_ms, s.ended_ms, 0))),
            cell(&s.message),
        ));
        for v in &s.vms {
            let (symbol, word, _) = step_look_in(run, v.state);
            out.push_str(&format!(
                "| | ↳ {} | {symbol} {word} | {} | {} | {} |\n",
                cell(&v.vm),
                when(v.started_ms),
                took(v.ended_ms.and(elapsed_ms(v.started_ms, v.ended_ms, 0))),
                cell(&v.message),
            ));
        }
    }
    out.push_str("\n## VMs\n\n| VM | Priority | Result | Data loss | Verified | Heartbeat | Message |\n|---|---|---|---|---|---|---|\n");
    for v in &run.vms {
        let (symbol, word, _) = step_look_in(run, v.result);
        let verified = match v.verified {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "—",
        };
        out.push_str(&format!(
            "| {} | {} | {symbol} {word} | {} | {verified} | {} | {} |\n",
            cell(&v.vm),
            v.priority,
            loss_text(v),
            v.heartbeat_ms.map_or("—".into(), |h| format!(
                "{} (+{:.1} s)",
                clock(h),
                h.saturating_sub(run.started_ms) as f64 / 1000.0
            )),
            cell(&v.message),
        ));
    }
    out
}

/// Where exports go: here, unless here cannot be written.
fn dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from(".")];
    if let Some(d) = directories::ProjectDirs::from("dev", "ferry", "ferry") {
        dirs.push(d.data_local_dir().join("runs"));
    }
    dirs
}

/// A file of the export that could not be written, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {error}", path.display())]
struct WriteError {
    path: PathBuf,
    error: std::io::Error,
}

/// Writes `ferry-run-<id>.json` and `.md`; returns the status line.
pub fn write(run: &Run) -> String {
    let mut last_error = None;
    for dir in dirs() {
        match write_in(&dir, run) {
            Ok(md) => {
                let shown = std::fs::canonicalize(&md).unwrap_or(md);
                return format!("exported run {} to {} and .json", run.id, shown.display());
            }
            Err(e) => last_error = Some(e),
        }
    }
    let why = last_error.map_or_else(String::new, |e| e.to_string());
    format!("run {} not exported: {why}", run.id)
}

fn write_in(dir: &Path, run: &Run) -> Result<PathBuf, WriteError> {
    let at = |path: &Path| {
        let path = path.to_path_buf();
        move |error| WriteError { path, error }
    };
    std::fs::create_dir_all(dir).map_err(at(dir))?;
    let base = dir.join(format!("ferry-run-{}", run.id));
    let json_path = base.with_extension("json");
    let md_path = base.with_extension("md");
    std::fs::write(&json_path, json(run)).map_err(at(&json_path))?;
    std::fs::write(&md_path, markdown(run)).map_err(at(&md_path))?;
    Ok(md_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::runs::fixture as runs_fixture;

    #[test]
    fn markdown_has_the_steps_the_vms_and_the_rto() {
        let run = runs_fixture::finished();
        let md = markdown(&run);
        assert!(
            md.starts_with("# Run run-7: disaster recovery of plan Tier-1\n"),
            "{md}"
        );
        assert!(md.contains("| Result | succeeded with warnings |"), "{md}");
        assert!(md.contains("| RTO | 42.5 s |"), "{md}");
        assert!(
            md.contains("| 1 | Synchronize storage | ▲ warning |"),
            "{md}"
        );
        assert!(md.contains("| | ↳ db-01 | ✔ done |"), "{md}");
        assert!(
            md.contains("| db-01 | 1 | ✔ done | 3.2 s of 15 s RPO | yes |"),
            "{md}"
        );
        assert!(md.contains("| db-02 | 1 | ✖ error | — | NO |"), "{md}");
        assert!(md.contains("a \\| b"), "pipes escaped: {md}");
        let back: Run = serde_json::from_str(&json(&run)).unwrap();
        assert_eq!(back, run);
    }

    #[test]
    fn write_puts_both_files_beside_each_other() {
        let tmp = tempfile::tempdir().unwrap();
        let run = runs_fixture::finished();
        let md = write_in(tmp.path(), &run).unwrap();
        assert_eq!(md, tmp.path().join("ferry-run-run-7.md"));
        let json_text = std::fs::read_to_string(tmp.path().join("ferry-run-run-7.json")).unwrap();
        assert!(json_text.contains("\"rto_seconds\": 42.5"));
        assert!(std::fs::read_to_string(md).unwrap().contains("## VMs"));
    }
}
