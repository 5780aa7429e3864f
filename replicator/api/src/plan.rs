//! Checking a recovery plan, resolving every VM's settings, and the start
//! order: priority 1 first, and within a priority every VM after the VMs it
//! depends on.

use std::collections::{BTreeMap, HashSet};

use crate::Invalid;
use crate::mapping::check_nic_address;
use crate::model::{Callout, IpCustomization, PlanSpec, PlanVm};

pub const MAX_NAME: usize = 64;
const MAX_TIMEOUT: u64 = 24 * 3600;
const MAX_TEXT: usize = 4096;

/// What a plan needs to know of each VM in its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub nic_count: usize,
}

/// Checks a name for a group or plan.
pub fn check_name(field: &str, name: &str) -> Result<(), Invalid> {
    if name.trim().is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(Invalid::new(
            field,
            format!(
                "is {} characters long; at most {MAX_NAME}",
                name.chars().count()
            ),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Invalid::new(field, "must not contain control characters"));
    }
    Ok(())
}

fn check_callouts(field: &str, callouts: &[Callout]) -> Result<(), Invalid> {
    for (i, callout) in callouts.iter().enumerate() {
        let field = format!("{field}[{i}]");
        match callout {
            Callout::Command {
                command,
                timeout_seconds,
            } => {
                if command.trim().is_empty() {
                    return Err(Invalid::new(
                        &format!("{field}.command"),
                        "must not be empty",
                    ));
                }
                if command.len() > MAX_TEXT {
                    return Err(Invalid::new(
                        &format!("{field}.command"),
                        format!("is longer than {MAX_TEXT} bytes"),
                    ));
                }
                if !(1..=MAX_TIMEOUT).contains(timeout_seconds) {
                    return Err(Invalid::new(
                        &format!("{field}.timeout_seconds"),
                        format!("{timeout_seconds} is outside 1..={MAX_TIMEOUT}"),
                    ));
                }
            }
            Callout::Prompt { message } => {
                if message.trim().is_empty() {
                    return Err(Invalid::new(
                        &format!("{field}.message"),
                        "must not be empty",
                    ));
                }
                if message.len() > MAX_TEXT {
                    return Err(Invalid::new(
                        &format!("{field}.message"),
                        format!("is longer than {MAX_TEXT} bytes"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Checks a plan against the VMs of its groups (`members`, by id).
pub fn validate(spec: &PlanSpec, members: &BTreeMap<String, Member>) -> Result<(), Invalid> {
    check_name("name", &spec.name)?;
    if spec.description.len() > MAX_TEXT {
        return Err(Invalid::new(
            "description",
            format!("is longer than {MAX_TEXT} bytes"),
        ));
    }
    if spec.groups.is_empty() {
        return Err(Invalid::new(
            "groups",
            "a plan needs at least one protection group",
        ));
    }
    let mut seen = HashSet::new();
    for (i, group) in spec.groups.iter().enumerate() {
        if !seen.insert(group) {
            return Err(Invalid::new(
                &format!("groups[{i}]"),
                format!("group {group} is listed twice"),
            ));
        }
    }
    check_callouts("pre_power_on", &spec.pre_power_on)?;
    check_callouts("post_power_on", &spec.post_power_on)?;
    let mut listed = HashSet::new();
    for (i, vm) in spec.vms.iter().enumerate() {
        let field = format!("vms[{i}]");
        let Some(member) = members.get(&vm.vm_id) else {
            return Err(Invalid::new(
                &format!("{field}.vm_id"),
                format!("{} is not in any of the plan's protection groups", vm.vm_id),
            ));
        };
        if !listed.insert(vm.vm_id.as_str()) {
            return Err(Invalid::new(
                &format!("{field}.vm_id"),
                format!("{} has settings twice", member.name),
            ));
        }
        if !(1..=5).contains(&vm.priority) {
            return Err(Invalid::new(
                &format!("{field}.priority"),
                format!("{} is outside 1..=5", vm.priority),
            ));
        }
        if !(1..=MAX_TIMEOUT).contains(&vm.heartbeat_timeout_seconds) {
            return Err(Invalid::new(
                &format!("{field}.heartbeat_timeout_seconds"),
                format!(
                    "{} is outside 1..={MAX_TIMEOUT}",
                    vm.heartbeat_timeout_seconds
                ),
            ));
        }
        check_callouts(&format!("{field}.pre_power_on"), &vm.pre_power_on)?;
        check_callouts(&format!("{field}.post_power_on"), &vm.post_power_on)?;
        if let IpCustomization::Manual { nics } = &vm.ip_customization {
            let mut seen = HashSet::new();
            for (j, nic) in nics.iter().enumerate() {
                let nic_field = format!("{field}.ip_customization.nics[{j}]");
                if !seen.insert(nic.nic) {
                    return Err(Invalid::new(
                        &format!("{nic_field}.nic"),
                        format!("NIC {} is listed twice", nic.nic),
                    ));
                }
                check_nic_address(&nic_field, nic, Some(member.nic_count))?;
            }
        }
    }
    let resolved = resolve(spec, members);
    let priority: BTreeMap<&str, u8> = resolved
        .iter()
        .map(|v| (v.vm_id.as_str(), v.priority))
        .collect();
    let name = |id: &str| members.get(id).map_or(id.to_string(), |m| m.name.clone());
    for (i, vm) in spec.vms.iter().enumerate() {
        let field = format!("vms[{i}].depends_on");
        let mut seen = HashSet::new();
        for dep in &vm.depends_on {
            let Some(&dep_priority) = priority.get(dep.as_str()) else {
                return Err(Invalid::new(&field, format!("{dep} is not in the plan")));
            };
            if dep == &vm.vm_id {
                return Err(Invalid::new(
                    &field,
                    format!("{} depends on itself", name(dep)),
                ));
            }
            if !seen.insert(dep) {
                return Err(Invalid::new(
                    &field,
                    format!("{} is listed twice", name(dep)),
                ));
            }
            if dep_priority != vm.priority {
                return Err(Invalid::new(
                    &field,
                    format!(
                        "{} (priority {}) → {} (priority {dep_priority}): dependencies must stay within one priority",
                        name(&vm.vm_id),
                        vm.priority,
                        name(dep)
                    ),
                ));
            }
        }
    }
    if let Err(cycle) = order(&resolved) {
        let first = spec
            .vms
            .iter()
            .position(|v| cycle.contains(&v.vm_id))
            .unwrap_or(0);
        let chain: Vec<String> = cycle.iter().map(|id| name(id)).collect();
        return Err(Invalid::new(
            &format!("vms[{first}].depends_on"),
            format!("dependency cycle: {}", chain.join(" → ")),
        ));
    }
    Ok(())
}

/// Every member with its settings: the spec's, or the defaults.
pub fn resolve(spec: &PlanSpec, members: &BTreeMap<String, Member>) -> Vec<PlanVm> {
    members
        .keys()
        .map(|id| {
            spec.vms
                .iter()
                .find(|v| &v.vm_id == id)
                .cloned()
                .unwrap_or_else(|| PlanVm::new(id))
        })
        .collect()
}

/// VM ids per priority 1..=5, each in an order where every VM comes after
/// the VMs it depends on (ties by id). A cycle comes back as its chain,
/// first VM repeated at the end.
pub fn order(vms: &[PlanVm]) -> Result<Vec<Vec<String>>, Vec<String>> {
    let by_id: BTreeMap<&str, &PlanVm> = vms.iter().map(|v| (v.vm_id.as_str(), v)).collect();
    let mut out = vec![Vec::new(); 5];
    for priority in 1..=5u8 {
        let mut done: HashSet<&str> = HashSet::new();
        let members: Vec<&str> = by_id
            .values()
            .filter(|v| v.priority == priority)
            .map(|v| v.vm_id.as_str())
            .collect();
        while done.len() < members.len() {
            let ready = members.iter().find(|id| {
                !done.contains(**id)
                    && by_id[**id]
                        .depends_on
                        .iter()
                        .all(|d| done.contains(d.as_str()) || !by_id.contains_key(d.as_str()))
            });
            match ready {
                Some(id) => {
                    done.insert(id);
                    out[usize::from(priority) - 1].push((*id).to_string());
                }
                None => {
                    let start = members.iter().find(|id| !done.contains(**id)).copied();
                    return Err(find_cycle(&by_id, start.unwrap_or_default(), &done));
                }
            }
        }
    }
    Ok(out)
}

fn find_cycle(by_id: &BTreeMap<&str, &PlanVm>, start: &str, done: &HashSet<&str>) -> Vec<String> {
    let mut path: Vec<&str> = vec![start];
    loop {
        let last = path[path.len() - 1];
        let next = by_id[last]
            .depends_on
            .iter()
            .map(String::as_str)
            .find(|d| by_id.contains_key(d) && !done.contains(d));
        let Some(next) = next else {
            return path.into_iter().map(str::to_string).collect();
        };
        if let Some(at) = path.iter().position(|p| *p == next) {
            let mut cycle: Vec<String> = path[at..].iter().map(|s| s.to_string()).collect();
            cycle.push(next.to_string());
            return cycle;
        }
        path.push(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[&str]) -> BTreeMap<String, Member> {
        ids.iter()
            .map(|id| {
                (
                    id.to_string(),
                    Member {
                        name: id.trim_start_matches("a.").to_string(),
                        nic_count: 1,
                    },
                )
            })
            .collect()
    }

    fn vm(id: &str, priority: u8, deps: &[&str]) -> PlanVm {
        PlanVm {
            priority,
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            ..PlanVm::new(id)
        }
    }

    fn spec(vms: Vec<PlanVm>) -> PlanSpec {
        PlanSpec {
            name: "web".into(),
            description: String::new(),
            groups: vec!["pg-1".into()],
            vms,
            pre_power_on: vec![],
            post_power_on: vec![],
        }
    }

    #[test]
    fn start_order_follows_priority_then_dependencies() {
        let m = members(&["a.app", "a.db", "a.web", "a.cache"]);
        let s = spec(vec![
            vm("a.db", 1, &[]),
            vm("a.web", 3, &["a.app"]),
            vm("a.app", 3, &["a.cache"]),
        ]);
        validate(&s, &m).unwrap();
        let order = order(&resolve(&s, &m)).unwrap();
        assert_eq!(order[0], vec!["a.db"]);
        assert_eq!(order[2], vec!["a.cache", "a.app", "a.web"]);
        assert!(order[1].is_empty() && order[3].is_empty() && order[4].is_empty());
    }

    #[test]
    fn a_cycle_is_refused_with_its_chain() {
        let m = members(&["a.x", "a.y", "a.z"]);
        let s = spec(vec![
            vm("a.x", 3, &["a.y"]),
            vm("a.y", 3, &["a.z"]),
            vm("a.z", 3, &["a.x"]),
        ]);
        let err = validate(&s, &m).unwrap_err();
        assert_eq!(err.field, "vms[0].depends_on");
        assert!(err.message.contains("x → y → z → x"), "{}", err.message);
    }

    #[test]
    fn a_cross_priority_dependency_is_refused_with_both_ends() {
        let m = members(&["a.db", "a.web"]);
        let s = spec(vec![vm("a.db", 1, &[]), vm("a.web", 3, &["a.db"])]);
        let err = validate(&s, &m).unwrap_err();
        assert_eq!(err.field, "vms[1].depends_on");
        assert!(
            err.message.contains("web (priority 3) → db (priority 1)"),
            "{}",
            err.message
        );
    }

    #[test]
    fn every_setting_is_checked() {
        let m = members(&["a.db", "a.web"]);
        let cases: Vec<(PlanSpec, &str)> = vec![
            (
                PlanSpec {
                    name: " ".into(),
                    ..spec(vec![])
                },
                "name",
            ),
            (
                PlanSpec {
                    groups: vec![],
                    ..spec(vec![])
                },
                "groups",
            ),
            (spec(vec![vm("a.ghost", 3, &[])]), "vms[0].vm_id"),
            (spec(vec![vm("a.db", 6, &[])]), "vms[0].priority"),
            (
                spec(vec![vm("a.db", 3, &[]), vm("a.db", 3, &[])]),
                "vms[1].vm_id",
            ),
            (spec(vec![vm("a.db", 3, &["a.db"])]), "vms[0].depends_on"),
            (spec(vec![vm("a.db", 3, &["a.nope"])]), "vms[0].depends_on"),
            (
                spec(vec![PlanVm {
                    heartbeat_timeout_seconds: 0,
                    ..PlanVm::new("a.db")
                }]),
                "vms[0].heartbeat_timeout_seconds",
            ),
            (
                spec(vec![PlanVm {
                    pre_power_on: vec![Callout::Command {
                        command: "".into(),
                        timeout_seconds: 5,
                    }],
                    ..PlanVm::new("a.db")
                }]),
                "vms[0].pre_power_on[0].command",
            ),
            (
                PlanSpec {
                    post_power_on: vec![Callout::Prompt { message: "".into() }],
                    ..spec(vec![])
                },
                "post_power_on[0].message",
            ),
            (
                spec(vec![PlanVm {
                    ip_customization: IpCustomization::Manual {
                        nics: vec![crate::model::NicAddress {
                            nic: 1,
                            ipv4: Some("10.0.0.1/24".into()),
                            ..Default::default()
                        }],
                    },
                    ..PlanVm::new("a.db")
                }]),
                "vms[0].ip_customization.nics[0].nic",
            ),
        ];
        for (i, (s, field)) in cases.into_iter().enumerate() {
            let err = validate(&s, &m).expect_err(&format!("case {i}"));
            assert_eq!(err.field, field, "case {i}: {}", err.message);
        }
    }
}
