//! `ferry plan test|cleanup|migrate|recover|reprotect NAME`: the checks a
//! script or an operator must pass (the plan's name for a real failover, a
//! yes for a test), the start at the plan's recovery site, and with
//! `--wait` the run followed step by step through the site's events.

use std::io::IsTerminal;

use ferry_api::call::Call;
use ferry_api::client::{Client, ClientError};
use ferry_api::types::{Run, RunMode, RunRequest, SiteEvent};
use futures_util::StreamExt;

use super::commands::{Failed, PROBLEM, client_of, find_plan, sentence};
use super::follow::{self, Follower, Outcome};

/// What `ferry plan <mode> NAME` was asked.
pub struct RunOptions {
    pub mode: RunMode,
    pub confirm: Option<String>,
    pub yes: bool,
    pub wait: bool,
    pub no_sync: bool,
    pub force: bool,
    /// A test at chosen instances: by VM id, or by time for the plan.
    pub instances: std::collections::BTreeMap<String, String>,
    pub at_ms: Option<u64>,
}

pub async fn start_run(clients: &[Client], name: &str, o: RunOptions) -> Result<u8, Failed> {
    let plan = find_plan(clients, name).await?;
    let what = format!("{} of plan {}", o.mode.label(), plan.name);
    if o.mode.is_destructive() {
        if o.confirm.as_deref() != Some(plan.name.as_str()) {
            return Err(Failed::usage(format!(
                "a {what} is a real failover step: confirm it with --confirm {:?} (the plan's name, typed, as in the TUI){}",
                plan.name,
                o.confirm
                    .as_deref()
                    .map(|c| format!("; {c:?} is not the plan's name"))
                    .unwrap_or_default()
            )));
        }
    } else if !o.yes && !ask(&format!("Start a {what} at {}?", plan.recovery_site))? {
        return Err(Failed::usage(format!("the {what} was not started")));
    }
    if !plan.allowed.contains(&o.mode) {
        return Err(Failed {
            message: format!(
                "plan {} is {}: a {} is not allowed now ({})",
                plan.name,
                plan.state.label(),
                o.mode.label(),
                plan.next
            ),
            code: PROBLEM,
        });
    }
    let client = client_of(clients, &plan.recovery_site).await?;
    // Listen before starting, so no step of a quick run goes unseen.
    let events = if o.wait {
        Some(
            client
                .events()
                .await
                .map_err(|e| Failed::site("stream its events", &e))?
                .boxed(),
        )
    } else {
        None
    };
    let request = RunRequest {
        mode: o.mode,
        confirm: o.confirm.clone(),
        sync: (o.mode == RunMode::Test && o.no_sync).then_some(false),
        force: (o.mode == RunMode::Cleanup && o.force).then_some(true),
        instances: o.instances.clone(),
        at_ms: o.at_ms,
    };
    let run: Run = client
        .send_as(&Call::StartRun {
            plan_id: plan.id.clone(),
            request,
        })
        .await
        .map_err(|e| Failed::site(&format!("start a {what}"), &e))?;
    eprintln!("started {} ({what}) at {}", run.id, plan.recovery_site);
    let Some(events) = events else {
        println!("{}", run.id);
        return Ok(0);
    };
    let run = follow_run(client, run, events).await?;
    print!("{}", follow::report(&run));
    match follow::outcome(&run) {
        Outcome::Good => Ok(0),
        Outcome::Bad(why) => {
            eprintln!("ferry: {why}");
            Ok(PROBLEM)
        }
    }
}

/// Yes or no from the terminal; a script must say `--yes`.
fn ask(question: &str) -> Result<bool, Failed> {
    if !std::io::stdin().is_terminal() {
        return Err(Failed::usage(format!(
            "{question} There is no terminal to ask on: add --yes to go ahead"
        )));
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Failed::usage(format!("no answer: {e}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Prints each step as it changes until the run ends; reconnects when the
/// stream breaks (a site restart), catching up from the run's record.
async fn follow_run(
    client: &Client,
    mut run: Run,
    events: futures_util::stream::BoxStream<'static, Result<Option<SiteEvent>, ClientError>>,
) -> Result<Run, Failed> {
    let mut follower = Follower::default();
    let mut events = Some(events);
    let mut backoff = std::time::Duration::from_millis(250);
    loop {
        for line in follower.lines(&run) {
            eprintln!("{line}");
        }
        if run.state.is_finished() {
            return Ok(run);
        }
        let stream = match events.as_mut() {
            Some(stream) => stream,
            None => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                match client.events().await {
                    Ok(stream) => {
                        events = Some(stream.boxed());
                        if let Ok(now) = client.run(&run.id).await {
                            run = now;
                        }
                        continue;
                    }
                    Err(e) => {
                        eprintln!("{}; retrying", sentence("stream its events", &e));
                        continue;
                    }
                }
            }
        };
        match stream.next().await {
            Some(Ok(Some(SiteEvent::Run(update)))) if update.id == run.id => run = update,
            Some(Ok(Some(SiteEvent::Resync))) => {
                if let Ok(now) = client.run(&run.id).await {
                    run = now;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                eprintln!(
                    "lost the event stream of {}; the run goes on there, reconnecting",
                    client.site()
                );
                events = None;
            }
        }
    }
}
