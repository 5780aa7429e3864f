//! What the operator reads when something is refused: sentences with the
//! domain's words, never an API path, a doubled field prefix (`vms: vms:`)
//! or a Rust range (`1..=86400`).

/// A refusal as a sentence: the field, in words, then the reason.
pub fn sentence(field: Option<&str>, message: &str) -> String {
    let mut message = message.trim();
    if let Some(field) = field.filter(|f| !f.is_empty()) {
        // Sites and checks sometimes put the field in the message too.
        let leaf = super::leaf(field);
        loop {
            let stripped = [field, leaf]
                .iter()
                .filter(|p| !p.is_empty())
                .find_map(|p| message.strip_prefix(p)?.strip_prefix(": "));
            match stripped {
                Some(rest) => message = rest.trim_start(),
                None => break,
            }
        }
        return format!("{}: {}", field_words(field), ranges(message));
    }
    ranges(message)
}

/// A field path as the operator knows it: `vms[2].heartbeat_timeout_seconds`
/// reads `heartbeat timeout`, `vms` reads `VMs`.
pub fn field_words(field: &str) -> String {
    let leaf = super::leaf(field);
    let leaf = if leaf.is_empty() { field } else { leaf };
    match leaf {
        "vms" => "VMs".into(),
        "vm_id" => "VM".into(),
        "depends_on" => "dependencies".into(),
        "heartbeat_timeout_seconds" => "heartbeat timeout".into(),
        "timeout_seconds" => "timeout".into(),
        "rpo_seconds" => "RPO".into(),
        "pre_power_on" | "post_power_on" => "callouts".into(),
        other => other.replace('_', " "),
    }
}

/// `1..=86400` reads `1 to 86400`, `0..10` reads `0 to 9`.
pub fn ranges(message: &str) -> String {
    message
        .split(' ')
        .map(|word| range_word(word).unwrap_or_else(|| word.to_string()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One word holding a numeric range, with whatever is around it kept.
fn range_word(word: &str) -> Option<String> {
    let (at, inclusive) = match word.find("..=") {
        Some(i) => (i, true),
        None => (word.find("..")?, false),
    };
    let (head, rest) = word.split_at(at);
    let rest = &rest[if inclusive { 3 } else { 2 }..];
    let prefix = head.trim_end_matches(|c: char| c.is_ascii_digit());
    let start = &head[prefix.len()..];
    let tail = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    let end = &rest[..rest.len() - tail.len()];
    if start.is_empty() || end.is_empty() {
        return None;
    }
    let end = if inclusive {
        end.to_string()
    } else {
        end.parse::<u64>().ok()?.checked_sub(1)?.to_string()
    };
    Some(format!("{prefix}{start} to {end}{tail}"))
}

/// What a VM action did, named: `paused db-02`, or why not, as a sentence:
/// `site-a refused to pause app-01: this needs the admin role`.
pub fn vm_action(site: &str, verb: &str, vm: &str, outcome: Result<(), VmRefusal>) -> String {
    match outcome {
        Ok(()) => match verb {
            "pause" => format!("paused {vm}"),
            "resume" => format!("resumed {vm}"),
            "sync" => format!("started a sync of {vm}"),
            "acknowledge" => format!("acknowledged {vm}"),
            other => format!("{other}: done for {vm}"),
        },
        Err(VmRefusal::Refused(why)) if why.trim().is_empty() => {
            format!("{site} refused to {verb} {vm}")
        }
        Err(VmRefusal::Refused(why)) => format!("{site} refused to {verb} {vm}: {}", ranges(&why)),
        Err(VmRefusal::Unreachable(why)) => {
            format!("could not reach {site} to {verb} {vm}: {why}")
        }
    }
}

/// Why a VM action did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmRefusal {
    /// The site answered no, with its reason.
    Refused(String),
    /// The site did not answer.
    Unreachable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_sentences() {
        assert_eq!(
            sentence(Some("vms"), "vms: a protection group needs at least one VM"),
            "VMs: a protection group needs at least one VM"
        );
        assert_eq!(
            sentence(
                Some("vms[1].heartbeat_timeout_seconds"),
                "0 is outside 1..=86400"
            ),
            "heartbeat timeout: 0 is outside 1 to 86400"
        );
        assert_eq!(
            sentence(None, "priority 7 is outside 1..=5."),
            "priority 7 is outside 1 to 5."
        );
        assert_eq!(ranges("a..b and 1..10"), "a..b and 1 to 9");
        assert_eq!(
            vm_action(
                "site-a",
                "pause",
                "app-01",
                Err(VmRefusal::Refused("this needs the admin role".into()))
            ),
            "site-a refused to pause app-01: this needs the admin role"
        );
        assert_eq!(
            vm_action("site-a", "pause", "db-02", Ok(())),
            "paused db-02"
        );
    }
}
