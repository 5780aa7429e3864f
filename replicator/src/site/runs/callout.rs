//! Command callouts: `sh -c` on this host with the run in its environment,
//! killed at its timeout, the tail of its output kept.

use super::error::CommandError;
use super::*;

/// The last 4 KiB of a callout's output, as text (bytes that are not
/// UTF-8 shown as U+FFFD), marked with `…` when cut.
pub fn tail(text: &[u8]) -> String {
    let start = text.len().saturating_sub(OUTPUT_TAIL);
    let mut s = String::from_utf8_lossy(&text[start..]).to_string();
    if start > 0 {
        s.insert(0, '…');
    }
    s
}

/// What a callout inherits of the site's own environment; the rest (tokens,
/// credentials the site was started with) stays with the site.
const INHERITED: [&str; 3] = ["PATH", "HOME", "LANG"];

/// Runs a command callout on this host: `sh -c`, with the run's context in
/// an otherwise minimal environment, killed at its timeout. Ok is the
/// output's tail.
pub(super) async fn run_command(
    command: &str,
    timeout: u64,
    env: &[(&str, String)],
) -> Result<String, CommandError> {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .env_clear();
    for key in INHERITED {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().map_err(CommandError::Start)?;
    match tokio::time::timeout(Duration::from_secs(timeout), child.wait_with_output()).await {
        Err(_) => Err(CommandError::TimedOut { seconds: timeout }),
        Ok(Err(e)) => Err(CommandError::Wait(e)),
        Ok(Ok(out)) => {
            let mut all = out.stdout;
            all.extend_from_slice(&out.stderr);
            let text = tail(&all);
            if out.status.success() {
                Ok(text)
            } else {
                Err(CommandError::Exited {
                    status: out.status,
                    tail: text,
                })
            }
        }
    }
}
