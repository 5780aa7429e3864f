//! Callouts as text, one per line, so a list of them can be edited in a
//! text area:
//!
//! ```text
//! pre command 120s: /opt/dr/check-db --fast
//! pre prompt: Confirm the storage array is promoted
//! post command: /opt/dr/smoke-test
//! ```
//!
//! `pre` runs before the power-on step, `post` after it; a command's
//! timeout is optional (300 s when left out). Blank lines and lines that
//! start with `#` are skipped.

use ferry_api::types::{Callout, DEFAULT_CALLOUT_TIMEOUT};

use super::error::{CalloutError, EditError};

/// The longest timeout the editor accepts: a day.
const MAX_TIMEOUT: u64 = 86_400;

/// Writes the pre and post callouts as lines.
pub fn to_text(pre: &[Callout], post: &[Callout]) -> Vec<String> {
    let line = |when: &str, c: &Callout| match c {
        Callout::Command {
            command,
            timeout_seconds,
        } if *timeout_seconds == DEFAULT_CALLOUT_TIMEOUT => format!("{when} command: {command}"),
        Callout::Command {
            command,
            timeout_seconds,
        } => format!("{when} command {timeout_seconds}s: {command}"),
        Callout::Prompt { message } => format!("{when} prompt: {message}"),
    };
    pre.iter()
        .map(|c| line("pre", c))
        .chain(post.iter().map(|c| line("post", c)))
        .collect()
}

/// Reads lines back into (pre, post); an error names the line and why.
pub fn parse(lines: &[String]) -> Result<(Vec<Callout>, Vec<Callout>), EditError> {
    let (mut pre, mut post) = (Vec::new(), Vec::new());
    for (n, line) in lines.iter().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |why: CalloutError| EditError::Callout { line: n + 1, why };
        let (head, text) = line
            .split_once(':')
            .ok_or_else(|| fail(CalloutError::NoColon))?;
        let text = text.trim();
        let words: Vec<&str> = head.split_whitespace().collect();
        let list = match words.first() {
            Some(&"pre") => &mut pre,
            Some(&"post") => &mut post,
            _ => return Err(fail(CalloutError::NoWhen)),
        };
        if text.is_empty() {
            return Err(fail(CalloutError::NothingAfterColon));
        }
        let callout = match words[1..] {
            ["prompt"] => Callout::Prompt {
                message: text.to_string(),
            },
            ["command"] => Callout::Command {
                command: text.to_string(),
                timeout_seconds: DEFAULT_CALLOUT_TIMEOUT,
            },
            ["command", timeout] => Callout::Command {
                command: text.to_string(),
                timeout_seconds: super::check::seconds(timeout, MAX_TIMEOUT)
                    .map_err(|e| fail(CalloutError::Timeout(e)))?,
            },
            _ => return Err(fail(CalloutError::NoKind)),
        };
        list.push(callout);
    }
    Ok((pre, post))
}

/// `2 pre, 1 post` or `none`.
pub fn summary(pre: &[Callout], post: &[Callout]) -> String {
    match (pre.len(), post.len()) {
        (0, 0) => "none".into(),
        (a, b) => format!("{a} pre, {b} post"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors_name_the_line() {
        let lines: Vec<String> = [
            "# checks",
            "pre command 120s: /opt/check --fast",
            "pre prompt: storage promoted?",
            "",
            "post command: /opt/smoke",
        ]
        .map(String::from)
        .into();
        let (pre, post) = parse(&lines).unwrap();
        assert_eq!(
            pre,
            [
                Callout::Command {
                    command: "/opt/check --fast".into(),
                    timeout_seconds: 120
                },
                Callout::Prompt {
                    message: "storage promoted?".into()
                }
            ]
        );
        assert_eq!(to_text(&pre, &post)[2], "post command: /opt/smoke");
        assert_eq!(parse(&to_text(&pre, &post)).unwrap(), (pre, post));
        let bad = ["pre prompt: ok".to_string(), "later command: x".to_string()];
        assert!(
            parse(&bad)
                .unwrap_err()
                .to_string()
                .starts_with("line 2: start with")
        );
        let bad = ["pre command 0s: x".to_string()];
        assert!(parse(&bad).unwrap_err().to_string().contains("timeout"));
    }
}
