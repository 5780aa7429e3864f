//! `ferry plan runbook NAME`: a recovery plan as the printable runbook an
//! operator takes into a change meeting before it runs: VMs by priority
//! with their dependencies, callouts and prompts, where each VM lands and
//! which addresses change, the mappings in force, and the last test's RTO.

use ferry_api::placement::customize;
use ferry_api::types::{
    Callout, IpCustomization, MappingSpec, Plan, ProtectionGroup, Run, RunMode, RunState, VmInfo,
};

/// What the runbook is made of, as fetched from the sites.
pub struct Sources<'a> {
    pub plan: &'a Plan,
    pub groups: Vec<&'a ProtectionGroup>,
    /// The mappings from the plan's protected site to its recovery site.
    pub mappings: Option<&'a MappingSpec>,
    /// The protected site's VMs (their NICs), when it answered.
    pub vms: &'a [VmInfo],
    /// The plan's runs, any order.
    pub runs: Vec<&'a Run>,
}

/// `|` would end a table cell; newlines would end the row.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn callout(c: &Callout) -> String {
    match c {
        Callout::Command {
            command,
            timeout_seconds,
        } => format!(
            "command `{}` (timeout {timeout_seconds} s)",
            command.replace('`', "'")
        ),
        Callout::Prompt { message } => {
            format!("prompt: “{message}” (the run waits for an operator)")
        }
    }
}

pub fn markdown(s: &Sources) -> String {
    let plan = s.plan;
    let name = |vm_id: &str| {
        s.groups
            .iter()
            .flat_map(|g| &g.vms)
            .find(|v| v.vm_id == vm_id)
            .map_or_else(
                || vm_id.rsplit('.').next().unwrap_or(vm_id).to_string(),
                |v| v.vm.clone(),
            )
    };
    let mut out = format!("# Runbook: recovery plan {}\n\n", cell(&plan.name));
    if !plan.description.is_empty() {
        out.push_str(&format!("{}\n\n", plan.description));
    }
    out.push_str(&format!(
        "| | |\n|---|---|\n\
         | Direction | {} → {} (runs execute at {}) |\n\
         | State | {} |\n\
         | Next | {} |\n\
         | Groups | {} |\n\
         | Last test | {} |\n",
        plan.protected_site,
        plan.recovery_site,
        plan.recovery_site,
        plan.state.label(),
        cell(&plan.next),
        cell(
            &s.groups
                .iter()
                .map(|g| format!("{} ({} VMs)", g.name, g.vms.len()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        last_test(&s.runs),
    ));

    section_callouts(
        &mut out,
        "Before the first power-on (plan)",
        &plan.pre_power_on,
    );
    for (i, wave) in plan.start_order.iter().enumerate() {
        if wave.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "\n## Priority {}\n\n| # | VM | Starts after | Power on | Heartbeat timeout | Lands in | Addresses at {} |\n|---|---|---|---|---|---|---|\n",
            i + 1,
            plan.recovery_site
        ));
        for (n, vm_id) in wave.iter().enumerate() {
            let Some(settings) = plan.vms.iter().find(|v| &v.vm_id == vm_id) else {
                continue;
            };
            let after = if settings.depends_on.is_empty() {
                "—".to_string()
            } else {
                settings
                    .depends_on
                    .iter()
                    .map(|d| name(d))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} s | {} | {} |\n",
                n + 1,
                cell(&name(vm_id)),
                cell(&after),
                if settings.power_on {
                    "yes"
                } else {
                    "no (left off)"
                },
                settings.heartbeat_timeout_seconds,
                cell(&landing(s, vm_id)),
                cell(&addresses(s, vm_id, &settings.ip_customization)),
            ));
        }
        let mut callouts = Vec::new();
        for vm_id in wave {
            let Some(settings) = plan.vms.iter().find(|v| &v.vm_id == vm_id) else {
                continue;
            };
            for (when, list) in [
                ("before", &settings.pre_power_on),
                ("after", &settings.post_power_on),
            ] {
                for c in list {
                    callouts.push(format!(
                        "- {} {when} power-on: {}\n",
                        name(vm_id),
                        callout(c)
                    ));
                }
            }
        }
        if !callouts.is_empty() {
            out.push_str("\nCallouts and prompts:\n\n");
            out.extend(callouts);
        }
    }
    section_callouts(
        &mut out,
        "After the last power-on (plan)",
        &plan.post_power_on,
    );
    mappings(&mut out, plan, s.mappings);
    out
}

fn last_test(runs: &[&Run]) -> String {
    let test = runs
        .iter()
        .filter(|r| r.mode == RunMode::Test && r.state.is_finished())
        .max_by_key(|r| r.started_ms);
    match test {
        None => "never tested".into(),
        Some(run) => format!(
            "{} at {} UTC: {}{}",
            run.id,
            crate::cli::date_time(run.started_ms),
            match run.state {
                RunState::Succeeded => "succeeded",
                RunState::SucceededWithWarnings => "succeeded with warnings",
                RunState::Failed => "failed",
                RunState::Cancelled => "cancelled",
                _ => "interrupted",
            },
            run.rto_seconds
                .map(|r| format!(", RTO {r:.1} s"))
                .unwrap_or_default()
        ),
    }
}

fn section_callouts(out: &mut String, title: &str, list: &[Callout]) {
    if list.is_empty() {
        return;
    }
    out.push_str(&format!("\n## {title}\n\n"));
    for c in list {
        out.push_str(&format!("- {}\n", callout(c)));
    }
}

/// `folder / pool / datastore`, or why it has no placeholder.
fn landing(s: &Sources, vm_id: &str) -> String {
    let vm = s
        .groups
        .iter()
        .flat_map(|g| &g.vms)
        .find(|v| v.vm_id == vm_id);
    match vm.and_then(|v| v.placeholder.as_ref()) {
        Some(p) => format!(
            "{} / {} / {} on {}",
            p.folder,
            p.resource_pool,
            p.datastore,
            p.networks.join(", ")
        ),
        None => vm.map_or("not in a group".into(), |v| v.status.clone()),
    }
}

/// Each NIC's address before → after, as the run will set it.
fn addresses(s: &Sources, vm_id: &str, mode: &IpCustomization) -> String {
    let Some(vm) = s.vms.iter().find(|v| v.id == vm_id) else {
        return "unknown (protected site not reached)".into();
    };
    let placeholder = s
        .groups
        .iter()
        .flat_map(|g| &g.vms)
        .find(|v| v.vm_id == vm_id)
        .and_then(|v| v.placeholder.as_ref());
    let rules = s
        .mappings
        .map(|m| m.ip_rules.as_slice())
        .unwrap_or_default();
    let mut parts = Vec::new();
    for (i, nic) in vm.nics.iter().enumerate() {
        let before = nic.ip.clone().unwrap_or_else(|| "dhcp".into());
        let target = placeholder
            .and_then(|p| p.networks.get(i))
            .map_or(nic.network.as_str(), String::as_str);
        let after = match mode {
            IpCustomization::Off => before.clone(),
            IpCustomization::Manual { nics } => {
                customize(nic, target, &[], nics.iter().find(|n| n.nic == i))
                    .ip
                    .unwrap_or_else(|| "dhcp".into())
            }
            IpCustomization::Auto => {
                let fixed = s
                    .mappings
                    .and_then(|m| m.ip_overrides.iter().find(|o| o.vm_id == vm_id))
                    .and_then(|o| o.nics.iter().find(|n| n.nic == i));
                customize(nic, target, rules, fixed)
                    .ip
                    .unwrap_or_else(|| "dhcp".into())
            }
        };
        parts.push(if after == before {
            format!("nic{i} {before} (kept)")
        } else {
            format!("nic{i} {before} → {after}")
        });
    }
    if parts.is_empty() {
        "no NICs".into()
    } else {
        parts.join("; ")
    }
}

fn mappings(out: &mut String, plan: &Plan, mappings: Option<&MappingSpec>) {
    out.push_str(&format!(
        "\n## Mappings {} → {}\n\n",
        plan.protected_site, plan.recovery_site
    ));
    let Some(m) = mappings else {
        out.push_str("None yet: no VM of this plan can be placed.\n");
        return;
    };
    out.push_str("| Kind | At the protected site | At the recovery site |\n|---|---|---|\n");
    for (kind, pairs) in [
        ("network", &m.networks),
        ("test network", &m.test_networks),
        ("folder", &m.folders),
        ("resource pool", &m.resource_pools),
        ("datastore", &m.datastores),
    ] {
        for p in pairs {
            out.push_str(&format!(
                "| {kind} | {} | {} |\n",
                cell(&p.source),
                cell(&p.target)
            ));
        }
    }
    if !m.ip_rules.is_empty() {
        out.push_str("\n| IP rule: from subnet | gateway | to subnet | gateway | DNS |\n|---|---|---|---|---|\n");
        for r in &m.ip_rules {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                r.from_subnet,
                r.from_gateway.as_deref().unwrap_or("—"),
                r.to_subnet,
                r.to_gateway.as_deref().unwrap_or("—"),
                if r.dns.is_empty() {
                    "—".into()
                } else {
                    r.dns.join(", ")
                }
            ));
        }
    }
}
