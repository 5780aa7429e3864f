//! `ferry status`: both sites, the link between them, RPO compliance and
//! the worst lag per site, and the runs in progress, in a few lines; the
//! exit code says whether all is well, so a NOC check or cron can use it.

use ferry_api::types::{PeerStatus, ReplicationInfo, Run, SiteInfo};
use serde::Serialize;

use crate::model::runs::{progress, run_look};
use crate::model::{Compliance, compliance, lag_seconds};
use crate::ui::age;

/// What one site answered, or why it did not.
#[derive(Debug, Clone)]
pub struct SiteAnswer {
    /// The name in the config, else the URL.
    pub label: String,
    pub url: String,
    pub reply: Result<SiteData, String>,
}

#[derive(Debug, Clone)]
pub struct SiteData {
    pub info: SiteInfo,
    pub replications: Vec<ReplicationInfo>,
    pub runs: Vec<Run>,
}

/// The whole picture, as printed and as `--output json` gives it.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub sites: Vec<SiteStatus>,
    pub running: Vec<RunningRun>,
    /// Every site reachable, linked to its peer, and every VM within RPO.
    pub healthy: bool,
    /// Why not, in sentences.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SiteStatus {
    pub name: String,
    pub url: String,
    pub reachable: bool,
    pub error: Option<String>,
    pub peer: Option<String>,
    pub peer_status: Option<PeerStatus>,
    /// VMs replicating from this site, by compliance.
    pub ok: usize,
    pub at_risk: usize,
    pub violated: usize,
    pub pending: usize,
    /// The VM with the largest lag against its RPO.
    pub worst_vm: Option<String>,
    pub worst_lag_seconds: Option<f64>,
    pub worst_rpo_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunningRun {
    pub id: String,
    pub plan: String,
    pub mode: String,
    pub site: String,
    pub state: String,
    pub steps_done: usize,
    pub steps: usize,
}

/// A replication whose protected VM has been recovered elsewhere is over,
/// not out of its RPO.
fn counts(r: &ReplicationInfo) -> bool {
    !matches!(r.state.as_str(), "ended" | "recovered")
}

pub fn evaluate(answers: &[SiteAnswer], now_ms: u64) -> Status {
    let mut sites = Vec::new();
    let mut running = Vec::new();
    let mut problems = Vec::new();
    for answer in answers {
        let data = match &answer.reply {
            Ok(data) => data,
            Err(why) => {
                problems.push(format!("{} is unreachable: {why}", answer.label));
                sites.push(SiteStatus::unreachable(answer, why));
                continue;
            }
        };
        let mut site = SiteStatus::unreachable(answer, "");
        site.name = data.info.name.clone();
        site.reachable = true;
        site.error = None;
        if let Some(peer) = &data.info.peer {
            site.peer = Some(peer.name.clone());
            site.peer_status = Some(peer.status);
            if peer.status == PeerStatus::Unreachable {
                problems.push(format!(
                    "{} cannot reach its peer {}{}",
                    site.name,
                    peer.name,
                    peer.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ));
            }
        } else {
            problems.push(format!("{} is not paired with a peer site", site.name));
        }
        let mut worst: Option<(f64, &ReplicationInfo, f64)> = None;
        for r in data.replications.iter().filter(|r| counts(r)) {
            match compliance(r, now_ms) {
                Compliance::Ok => site.ok += 1,
                Compliance::AtRisk => site.at_risk += 1,
                Compliance::Violated => {
                    site.violated += 1;
                    problems.push(format!(
                        "{} on {} is outside its RPO of {}: lag {}",
                        r.vm,
                        site.name,
                        age(r.rpo_seconds as f64),
                        lag_seconds(r, now_ms).map_or("unknown".into(), age)
                    ));
                }
                Compliance::Unknown => site.pending += 1,
            }
            if let Some(lag) = lag_seconds(r, now_ms) {
                let ratio = lag / r.rpo_seconds.max(1) as f64;
                if worst.is_none_or(|(w, _, _)| ratio > w) {
                    worst = Some((ratio, r, lag));
                }
            }
        }
        if let Some((_, r, lag)) = worst {
            site.worst_vm = Some(r.vm.clone());
            site.worst_lag_seconds = Some(lag);
            site.worst_rpo_seconds = Some(r.rpo_seconds);
        }
        for run in data.runs.iter().filter(|r| !r.state.is_finished()) {
            let (done, all) = progress(run);
            running.push(RunningRun {
                id: run.id.clone(),
                plan: run.plan_name.clone(),
                mode: run.mode.label().into(),
                site: data.info.name.clone(),
                state: run_look(run.state).1.into(),
                steps_done: done,
                steps: all,
            });
        }
        sites.push(site);
    }
    running.sort_by(|a, b| a.id.cmp(&b.id));
    running.dedup_by(|a, b| a.id == b.id);
    Status {
        healthy: problems.is_empty(),
        sites,
        running,
        problems,
    }
}

impl SiteStatus {
    fn unreachable(answer: &SiteAnswer, why: &str) -> Self {
        Self {
            name: answer.label.clone(),
            url: answer.url.clone(),
            reachable: false,
            error: Some(why.to_string()),
            peer: None,
            peer_status: None,
            ok: 0,
            at_risk: 0,
            violated: 0,
            pending: 0,
            worst_vm: None,
            worst_lag_seconds: None,
            worst_rpo_seconds: None,
        }
    }
}

fn peer_word(status: Option<PeerStatus>) -> &'static str {
    match status {
        Some(PeerStatus::Connected) => "● connected",
        Some(PeerStatus::Unreachable) => "✖ unreachable",
        Some(PeerStatus::Unknown) => "○ not checked yet",
        None => "○ not paired",
    }
}

/// The lines `ferry status` prints.
pub fn text(status: &Status) -> String {
    let mut out = String::new();
    for s in &status.sites {
        if !s.reachable {
            out.push_str(&format!(
                "{}  ✖ unreachable at {}: {}\n",
                s.name,
                s.url,
                s.error.as_deref().unwrap_or("")
            ));
            continue;
        }
        out.push_str(&format!(
            "{}  ● reachable at {}   peer {} {}\n",
            s.name,
            s.url,
            s.peer.as_deref().unwrap_or("—"),
            peer_word(s.peer_status)
        ));
        let protected = s.ok + s.at_risk + s.violated + s.pending;
        if protected == 0 {
            out.push_str("    no VMs replicate from here\n");
            continue;
        }
        out.push_str(&format!(
            "    {protected} VMs replicate from here: ✔ {} ok  ▲ {} at risk  ✖ {} violated  … {} pending\n",
            s.ok, s.at_risk, s.violated, s.pending
        ));
        if let (Some(vm), Some(lag), Some(rpo)) =
            (&s.worst_vm, s.worst_lag_seconds, s.worst_rpo_seconds)
        {
            out.push_str(&format!(
                "    worst lag {} of RPO {} ({vm})\n",
                age(lag),
                age(rpo as f64)
            ));
        }
    }
    if status.running.is_empty() {
        out.push_str("runs  none in progress\n");
    }
    for r in &status.running {
        out.push_str(&format!(
            "run   {} {} of {} at {}: {}, {}/{} steps\n",
            r.id, r.mode, r.plan, r.site, r.state, r.steps_done, r.steps
        ));
    }
    if status.healthy {
        out.push_str("OK: every site reachable and paired, every VM within its RPO\n");
    } else {
        for p in &status.problems {
            out.push_str(&format!("PROBLEM: {p}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::replication;
    use ferry_api::types::PeerInfo;

    const NOW: u64 = 1_700_000_000_000;

    fn site(name: &str, peer: &str, replications: Vec<ReplicationInfo>) -> SiteAnswer {
        SiteAnswer {
            label: name.into(),
            url: format!("http://{name}"),
            reply: Ok(SiteData {
                info: SiteInfo {
                    name: name.into(),
                    role: ferry_api::types::Role::Admin,
                    peer: Some(PeerInfo {
                        name: peer.into(),
                        url: format!("http://{peer}"),
                        status: PeerStatus::Connected,
                        last_contact_ms: Some(NOW),
                        error: None,
                        fingerprint: None,
                    }),
                    vm_count: replications.len(),
                    replicated_count: replications.len(),
                    fingerprint: None,
                    replication: None,
                },
                replications,
                runs: Vec::new(),
            }),
        }
    }

    #[test]
    fn all_within_rpo_and_both_sites_up_is_healthy() {
        let a = site(
            "site-a",
            "site-b",
            vec![
                replication("db-01", 15, Some(5_000), NOW),
                replication("web-01", 300, Some(250_000), NOW),
            ],
        );
        let b = site("site-b", "site-a", vec![]);
        let status = evaluate(&[a, b], NOW);
        assert!(status.healthy, "{:?}", status.problems);
        assert_eq!((status.sites[0].ok, status.sites[0].at_risk), (1, 1));
        assert_eq!(status.sites[0].worst_vm.as_deref(), Some("web-01"));
        let text = text(&status);
        assert!(
            text.contains("worst lag 4m10s of RPO 5m00s (web-01)"),
            "{text}"
        );
        assert!(text.ends_with("OK: every site reachable and paired, every VM within its RPO\n"));
    }

    #[test]
    fn a_violation_or_a_dead_site_is_a_problem_named_in_a_sentence() {
        let a = site(
            "site-a",
            "site-b",
            vec![replication("db-01", 15, Some(40_000), NOW)],
        );
        let b = SiteAnswer {
            label: "site-b".into(),
            url: "http://site-b".into(),
            reply: Err("connection refused".into()),
        };
        let status = evaluate(&[a, b], NOW);
        assert!(!status.healthy);
        assert_eq!(
            status.problems,
            vec![
                "db-01 on site-a is outside its RPO of 15s: lag 40s".to_string(),
                "site-b is unreachable: connection refused".to_string(),
            ]
        );
        assert!(
            text(&status).contains("site-b  ✖ unreachable at http://site-b: connection refused")
        );
    }

    #[test]
    fn an_ended_replication_is_not_a_violation() {
        let mut ended = replication("db-01", 15, Some(400_000), NOW);
        ended.state = "ended".into();
        let status = evaluate(&[site("site-a", "site-b", vec![ended])], NOW);
        assert!(status.healthy, "{:?}", status.problems);
    }
}
