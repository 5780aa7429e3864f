//! The commands behind `ferry status|vms|plans|runs|plan|run`: they fetch
//! through the typed client, print, and pick the exit code. Progress goes
//! to stderr and results to stdout, so a script can keep one and log the
//! other.

use ferry_api::call::Call;
use ferry_api::client::{Client, ClientError, Failure};
use ferry_api::types::{Plan, ReplicationInfo, Run, SiteInfo, VmInfo};
use serde::Serialize;

use super::follow;
use super::status::{self, SiteAnswer, SiteData};
use super::{date_time, runbook, table};
use crate::model::runs::{duration_text, run_look, worst_loss_text};
use crate::model::{compliance, lag_seconds};
use crate::ui::age;

/// Exit codes: see the module tour of [`super`].
pub const PROBLEM: u8 = 1;
pub const USAGE: u8 = 2;
pub const UNREACHABLE: u8 = 3;

/// How a command ended badly: a sentence for stderr and its exit code.
#[derive(Debug)]
pub struct Failed {
    pub message: String,
    pub code: u8,
}

impl Failed {
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: USAGE,
        }
    }

    pub(super) fn site(what: &str, e: &ClientError) -> Self {
        Self {
            message: sentence(what, e),
            code: UNREACHABLE,
        }
    }
}

/// Tables for people, JSON for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// `site-b refused to start a test of plan X: this needs the admin role`.
pub fn sentence(what: &str, e: &ClientError) -> String {
    match &e.failure {
        Failure::Unreachable { reason, .. } => {
            format!("{} could not be reached to {what}: {reason}", e.site)
        }
        Failure::Status {
            body: Some(body), ..
        } => format!("{} refused to {what}: {}", e.site, body.message),
        Failure::Status { status, .. } => {
            format!("{} answered HTTP {status} when asked to {what}", e.site)
        }
        Failure::Decode(why) => format!(
            "{} gave an answer ferry cannot read when asked to {what} ({why}); are both at the same version?",
            e.site
        ),
        failure @ Failure::Certificate { .. } => {
            format!("{} was not asked to {what}: {failure}", e.site)
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(super) fn print_json(value: &impl Serialize) -> Result<u8, Failed> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Failed {
        message: format!("cannot write JSON: {e}"),
        code: PROBLEM,
    })?;
    println!("{text}");
    Ok(0)
}

/// Each site's name as it calls itself, or why it did not answer.
pub(super) async fn identify(clients: &[Client]) -> Vec<Result<SiteInfo, ClientError>> {
    futures_util::future::join_all(clients.iter().map(|c| c.site_info())).await
}

async fn fetch(client: &Client) -> Result<SiteData, String> {
    let (info, replications, runs) =
        tokio::join!(client.site_info(), client.replications(), client.runs());
    let read = |what: &str, e: ClientError| match e.failure {
        Failure::Unreachable { reason, .. } => reason,
        _ => sentence(what, &e),
    };
    Ok(SiteData {
        info: info.map_err(|e| read("describe itself", e))?,
        replications: replications.map_err(|e| read("list its replications", e))?,
        runs: runs.map_err(|e| read("list its runs", e))?,
    })
}

pub async fn status(clients: &[Client], output: Output) -> Result<u8, Failed> {
    let replies = futures_util::future::join_all(clients.iter().map(fetch)).await;
    let answers: Vec<SiteAnswer> = clients
        .iter()
        .zip(replies)
        .map(|(c, reply)| SiteAnswer {
            label: c.site().to_string(),
            url: c.url().to_string(),
            reply,
        })
        .collect();
    let status = status::evaluate(&answers, now_ms());
    let code = if status.healthy {
        0
    } else if answers.iter().any(|a| a.reply.is_err()) {
        UNREACHABLE
    } else {
        PROBLEM
    };
    match output {
        Output::Json => {
            print_json(&status)?;
        }
        Output::Text => print!("{}", status::text(&status)),
    }
    Ok(code)
}

/// Waits until every site answers and sees its peer connected, or until
/// `deadline`; [`status`] then says what is still wrong. The sites are
/// other processes coming up: there is no channel to wait on but asking.
pub async fn wait_for_sites(clients: &[Client], deadline: std::time::Duration) {
    let start = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(200);
    while start.elapsed() < deadline {
        let infos = identify(clients).await;
        let linked = infos.iter().all(|i| {
            matches!(i, Ok(info) if info.peer.as_ref().is_some_and(|p| p.status == ferry_api::types::PeerStatus::Connected))
        });
        if linked {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(2));
    }
}

/// A VM as `ferry vms --output json` gives it.
#[derive(Serialize)]
struct VmRow<'a> {
    site: &'a str,
    vm: &'a VmInfo,
    replication: Option<&'a ReplicationInfo>,
}

pub async fn vms(clients: &[Client], output: Output) -> Result<u8, Failed> {
    let mut sites = Vec::new();
    for client in clients {
        let (info, vms, replications) =
            tokio::join!(client.site_info(), client.vms(), client.replications());
        let info = info.map_err(|e| Failed::site("describe itself", &e))?;
        let vms = vms.map_err(|e| Failed::site("list its VMs", &e))?;
        let replications = replications.map_err(|e| Failed::site("list its replications", &e))?;
        sites.push((info.name, vms, replications));
    }
    let rows: Vec<VmRow> = sites
        .iter()
        .flat_map(|(site, vms, replications)| {
            vms.iter().map(move |vm| VmRow {
                site,
                vm,
                replication: replications.iter().find(|r| r.vm_id == vm.id),
            })
        })
        .collect();
    if output == Output::Json {
        return print_json(&rows);
    }
    let now = now_ms();
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let (state, rpo, lag) = match row.replication {
                None => ("not replicated".to_string(), "—".into(), "—".into()),
                Some(r) => {
                    let c = compliance(r, now);
                    (
                        format!(
                            "{} → {}",
                            r.state.replace('_', " "),
                            r.target_site.as_deref().unwrap_or("?")
                        ),
                        age(r.rpo_seconds as f64),
                        format!(
                            "{} {} {}",
                            c.symbol(),
                            lag_seconds(r, now).map_or("—".into(), age),
                            c.word()
                        ),
                    )
                }
            };
            vec![
                row.vm.name.clone(),
                row.site.to_string(),
                format!("{:?}", row.vm.power_state).to_lowercase(),
                state,
                rpo,
                lag,
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &["VM", "Site", "Power", "Replication", "RPO", "Lag"],
            &table_rows
        )
    );
    Ok(0)
}

/// Every plan once: the owner's copy wins over the copy its peer shows.
async fn all_plans(clients: &[Client]) -> Result<Vec<Plan>, Failed> {
    let mut best: std::collections::BTreeMap<String, (bool, Plan)> = Default::default();
    let mut reached = 0;
    let mut last_error = None;
    for (client, info) in clients.iter().zip(identify(clients).await) {
        let plans = match (info, client.plans().await) {
            (Ok(info), Ok(plans)) => plans
                .into_iter()
                .map(move |p| (p.recovery_site == info.name, p)),
            (Err(e), _) | (_, Err(e)) => {
                last_error = Some(e);
                continue;
            }
        };
        reached += 1;
        for (owned, plan) in plans {
            let better = match best.get(&plan.id) {
                None => true,
                Some((had_owner, had)) => (owned, plan.updated_ms) > (*had_owner, had.updated_ms),
            };
            if better {
                best.insert(plan.id.clone(), (owned, plan));
            }
        }
    }
    match (reached, last_error) {
        (0, Some(e)) => Err(Failed::site("list its plans", &e)),
        _ => Ok(best.into_values().map(|(_, p)| p).collect()),
    }
}

/// Every run once: the executing site's copy wins.
async fn all_runs(clients: &[Client]) -> Result<Vec<Run>, Failed> {
    let mut best: std::collections::BTreeMap<String, Run> = Default::default();
    let mut reached = 0;
    let mut last_error = None;
    for (client, info) in clients.iter().zip(identify(clients).await) {
        let (info, runs) = match (info, client.runs().await) {
            (Ok(info), Ok(runs)) => (info, runs),
            (Err(e), _) | (_, Err(e)) => {
                last_error = Some(e);
                continue;
            }
        };
        reached += 1;
        for run in runs {
            if !best.contains_key(&run.id) || run.recovery_site == info.name {
                best.insert(run.id.clone(), run);
            }
        }
    }
    if let (0, Some(e)) = (reached, last_error) {
        return Err(Failed::site("list its runs", &e));
    }
    let mut runs: Vec<Run> = best.into_values().collect();
    runs.sort_by_key(|r| std::cmp::Reverse(r.started_ms));
    Ok(runs)
}

pub async fn plans(clients: &[Client], output: Output) -> Result<u8, Failed> {
    let plans = all_plans(clients).await?;
    if output == Output::Json {
        return print_json(&plans);
    }
    let rows: Vec<Vec<String>> = plans
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                format!("{} → {}", p.protected_site, p.recovery_site),
                p.state.label().to_string(),
                p.vms.len().to_string(),
                p.next.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(&["Plan", "Direction", "State", "VMs", "Next"], &rows)
    );
    Ok(0)
}

pub async fn runs(clients: &[Client], output: Output) -> Result<u8, Failed> {
    let runs = all_runs(clients).await?;
    if output == Output::Json {
        return print_json(&runs);
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let (symbol, word, _) = run_look(r.state);
            vec![
                r.id.clone(),
                r.plan_name.clone(),
                r.mode.label().to_string(),
                format!("{symbol} {word}"),
                date_time(r.started_ms),
                r.ended_ms.map_or("running".into(), |e| {
                    duration_text(e.saturating_sub(r.started_ms))
                }),
                r.rto_seconds.map_or("—".into(), |s| format!("{s:.1} s")),
                worst_loss_text(r),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &[
                "Run",
                "Plan",
                "Mode",
                "State",
                "Started (UTC)",
                "Took",
                "RTO",
                "Worst data loss"
            ],
            &rows
        )
    );
    Ok(0)
}

/// The plan named `name` (or with that id), from either site.
pub(super) async fn find_plan(clients: &[Client], name: &str) -> Result<Plan, Failed> {
    let plans = all_plans(clients).await?;
    let mut matching: Vec<&Plan> = plans.iter().filter(|p| p.name == name).collect();
    if matching.is_empty() {
        matching = plans.iter().filter(|p| p.id == name).collect();
    }
    match matching.as_slice() {
        [plan] => Ok((*plan).clone()),
        [] => Err(Failed {
            message: format!(
                "no recovery plan is named {name:?}; the plans are: {}",
                if plans.is_empty() {
                    "none yet".to_string()
                } else {
                    plans
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            code: USAGE,
        }),
        many => Err(Failed {
            message: format!(
                "{} plans are named {name:?}; name one by its id: {}",
                many.len(),
                many.iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            code: USAGE,
        }),
    }
}

/// The client of the site that calls itself `name`.
pub(super) async fn client_of<'a>(clients: &'a [Client], name: &str) -> Result<&'a Client, Failed> {
    let infos = identify(clients).await;
    for (client, info) in clients.iter().zip(&infos) {
        if matches!(info, Ok(i) if i.name == name) {
            return Ok(client);
        }
    }
    let why = infos
        .iter()
        .filter_map(|i| i.as_ref().err())
        .map(|e| sentence("describe itself", e))
        .collect::<Vec<_>>();
    Err(Failed {
        message: format!(
            "{name} executes this plan's runs, but none of the configured sites is {name}{}",
            if why.is_empty() {
                String::new()
            } else {
                format!(" ({})", why.join("; "))
            }
        ),
        code: UNREACHABLE,
    })
}

/// The run with `id` (`latest`: the newest), from the site that executes
/// it when it answers.
async fn find_run(clients: &[Client], id: &str) -> Result<Run, Failed> {
    let runs = all_runs(clients).await?;
    if id == "latest" {
        return runs.into_iter().next().ok_or_else(|| Failed {
            message: "no run yet at any configured site".into(),
            code: USAGE,
        });
    }
    runs.into_iter().find(|r| r.id == id).ok_or_else(|| Failed {
        message: format!("no run {id} at any configured site (`ferry runs` lists them)"),
        code: USAGE,
    })
}

pub async fn run_show(clients: &[Client], id: &str, output: Output) -> Result<u8, Failed> {
    let run = find_run(clients, id).await?;
    match output {
        Output::Json => print_json(&run),
        Output::Text => {
            print!("{}", follow::report(&run));
            Ok(0)
        }
    }
}

/// `ferry run export ID --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Json,
    Md,
}

pub async fn run_export(clients: &[Client], id: &str, format: ExportFormat) -> Result<u8, Failed> {
    let run = find_run(clients, id).await?;
    match format {
        ExportFormat::Json => println!("{}", crate::export::json(&run)),
        ExportFormat::Md => print!("{}", crate::export::markdown(&run)),
    }
    Ok(0)
}

/// Acknowledges a run's prompt, or cancels the run, at its executing site.
pub async fn run_call(clients: &[Client], id: &str, cancel: bool) -> Result<u8, Failed> {
    let run = find_run(clients, id).await?;
    let client = client_of(clients, &run.recovery_site).await?;
    let (call, what) = if cancel {
        (
            Call::CancelRun {
                run_id: run.id.clone(),
            },
            format!("cancel run {id}"),
        )
    } else {
        (
            Call::AckRun {
                run_id: run.id.clone(),
            },
            format!("acknowledge the prompt of run {id}"),
        )
    };
    client
        .send(&call)
        .await
        .map_err(|e| Failed::site(&what, &e))?;
    eprintln!(
        "{}",
        if cancel {
            format!("asked run {id} to stop at its next safe point")
        } else {
            format!("acknowledged the prompt of run {id}")
        }
    );
    Ok(0)
}

pub async fn plan_runbook(clients: &[Client], name: &str) -> Result<u8, Failed> {
    let plan = find_plan(clients, name).await?;
    let mut groups = Vec::new();
    let mut mappings = Vec::new();
    let mut vms = Vec::new();
    let mut runs = Vec::new();
    for (client, info) in clients.iter().zip(identify(clients).await) {
        let Ok(info) = info else { continue };
        if info.name == plan.recovery_site {
            groups = client
                .groups()
                .await
                .map_err(|e| Failed::site("list its protection groups", &e))?;
            mappings = client
                .mappings()
                .await
                .map_err(|e| Failed::site("list its mappings", &e))?;
            runs = client
                .runs()
                .await
                .map_err(|e| Failed::site("list its runs", &e))?;
        }
        if info.name == plan.protected_site {
            vms = client.vms().await.unwrap_or_default();
        }
    }
    // In the plan's own order, as its editor lists them.
    let groups: Vec<_> = plan
        .groups
        .iter()
        .filter_map(|id| groups.iter().find(|g| &g.id == id))
        .collect();
    let mapping = mappings
        .iter()
        .find(|m| m.spec.from_site == plan.protected_site && m.spec.to_site == plan.recovery_site)
        .map(|m| &m.spec);
    let sources = runbook::Sources {
        plan: &plan,
        groups,
        mappings: mapping,
        vms: &vms,
        runs: runs.iter().filter(|r| r.plan_id == plan.id).collect(),
    };
    print!("{}", runbook::markdown(&sources));
    Ok(0)
}
