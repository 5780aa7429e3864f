//! The command line of the scripted commands (`ferry status`, `ferry plan
//! test NAME --wait`, …): parsed here, then run by [`super::commands`].

use clap::{Args, Subcommand};

use super::commands::{self, ExportFormat, Failed, Output};
use super::pair;
use super::start::{self, RunOptions};
use ferry_api::Client;
use ferry_api::types::RunMode;

#[derive(Subcommand)]
pub enum Scripted {
    /// Both sites, the link, RPO compliance, the worst lag and the runs in
    /// progress. Exit 0 when every site is reachable and paired and every
    /// VM is within its RPO; 1 when a VM is not; 3 when a site is unreachable.
    Status {
        #[command(flatten)]
        output: OutputArg,
        /// First wait up to this many seconds for every site to answer and
        /// see its peer (after starting or restarting a site).
        #[arg(long, value_name = "SECONDS")]
        wait: Option<u64>,
    },
    /// Every VM of both sites with its replication, RPO and lag.
    Vms(OutputArg),
    /// Every recovery plan with its direction, state and next step.
    Plans(OutputArg),
    /// Every run of both sites, newest first.
    Runs(OutputArg),
    /// Both sites' alarms, newest first, with who acknowledged them.
    Alarms(OutputArg),
    /// Acknowledge an alarm at its site.
    #[command(subcommand)]
    Alarm(AlarmCommand),
    /// Run a recovery plan, or print its runbook.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Show, export, acknowledge or cancel one run.
    #[command(subcommand)]
    Run(RunCommand),
    /// Pair the two sites: show both certificate fingerprints, ask to
    /// confirm them, then have each site pin the other's (admin role on
    /// both). Exit 1 if a fingerprint is not the expected one or a site
    /// pins another certificate (without --replace).
    Pair(PairArgs),
}

#[derive(Args)]
pub struct PairArgs {
    /// Do not ask (for scripts): needs both --expect-fingerprint flags.
    #[arg(long, short)]
    yes: bool,
    /// The first site's certificate fingerprint (`sha256:…`), as read
    /// from the site itself.
    #[arg(long, value_name = "FINGERPRINT")]
    expect_fingerprint: Option<String>,
    /// The second site's certificate fingerprint.
    #[arg(long, value_name = "FINGERPRINT")]
    expect_peer_fingerprint: Option<String>,
    /// Re-pair with a certificate other than the one a site pins now.
    #[arg(long)]
    replace: bool,
}

#[derive(Args)]
pub struct OutputArg {
    /// `text` tables for people, `json` for scripts.
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Subcommand)]
pub enum PlanCommand {
    /// Test the plan: test copies at the recovery site while replication
    /// goes on (operator role).
    Test {
        #[command(flatten)]
        run: RunArgs,
        /// Do not synchronize storage first: test from the newest instance.
        #[arg(long)]
        no_sync: bool,
        /// Test VM_ID at a kept instance (`ferry`'s VM details list them);
        /// repeatable: `--instance site-a.db-01=42`.
        #[arg(long, value_name = "VM_ID=ID")]
        instance: Vec<String>,
        /// Test every VM at its newest kept instance at or before this
        /// time, in ms since the Unix epoch.
        #[arg(long, value_name = "MS")]
        at: Option<u64>,
    },
    /// Power off and remove the plan's test copies (operator role).
    Cleanup {
        #[command(flatten)]
        run: RunArgs,
        /// Go on past errors and report what was left behind.
        #[arg(long)]
        force: bool,
    },
    /// Planned migration: shut the protected VMs down, sync, recover them
    /// with no data loss (admin role, --confirm NAME).
    Migrate(RunArgs),
    /// Disaster recovery: recover from the newest complete instance even
    /// when the protected site is gone (admin role, --confirm NAME).
    Recover(RunArgs),
    /// Reverse the direction after a recovery; the old disks become seeds
    /// (admin role, --confirm NAME).
    Reprotect(RunArgs),
    /// The plan as a printable runbook (Markdown): VMs by priority, their
    /// dependencies, callouts and prompts, placements, address changes,
    /// mappings and the last test's RTO.
    Runbook {
        /// The plan's name (or id).
        name: String,
        /// Only Markdown for now.
        #[arg(long, value_parser = ["md"], default_value = "md")]
        format: String,
    },
}

#[derive(Args)]
pub struct RunArgs {
    /// The plan's name (or id).
    name: String,
    /// The plan's name again: real failovers and reprotects need it typed.
    #[arg(long, value_name = "NAME")]
    confirm: Option<String>,
    /// Do not ask before a test or cleanup (needed without a terminal).
    #[arg(long, short)]
    yes: bool,
    /// Follow the run step by step on stderr, print its report on stdout,
    /// and exit 1 if it failed or a VM lost more than its RPO.
    #[arg(long, short)]
    wait: bool,
}

#[derive(Subcommand)]
pub enum AlarmCommand {
    /// Acknowledge one alarm (operator): kept, marked, audited, and shown
    /// acknowledged to every client of its site.
    Ack {
        /// `SITE#ID` as `ferry alarms` lists it (a bare ID when only one
        /// site has it).
        alarm: String,
    },
}

#[derive(Subcommand)]
pub enum RunCommand {
    /// A run's result: RTO, and per VM its data loss against the RPO and
    /// whether its guest verified its disks.
    Show {
        /// The run's id, or `latest`.
        id: String,
        #[command(flatten)]
        output: OutputArg,
    },
    /// A run's full record on stdout, as JSON or a Markdown report.
    Export {
        /// The run's id, or `latest`.
        id: String,
        #[arg(long, value_enum)]
        format: ExportFormat,
    },
    /// Answer the prompt a run waits on.
    Ack { id: String },
    /// Stop a run at its next safe point.
    Cancel { id: String },
}

impl Scripted {
    pub async fn run(self, clients: &[Client]) -> Result<u8, Failed> {
        match self {
            Self::Status { output, wait } => {
                if let Some(seconds) = wait {
                    commands::wait_for_sites(clients, std::time::Duration::from_secs(seconds))
                        .await;
                }
                commands::status(clients, output.output).await
            }
            Self::Vms(o) => commands::vms(clients, o.output).await,
            Self::Plans(o) => commands::plans(clients, o.output).await,
            Self::Runs(o) => commands::runs(clients, o.output).await,
            Self::Alarms(o) => super::alarms::alarms(clients, o.output).await,
            Self::Alarm(AlarmCommand::Ack { alarm }) => super::alarms::ack(clients, &alarm).await,
            Self::Plan(PlanCommand::Runbook { name, .. }) => {
                commands::plan_runbook(clients, &name).await
            }
            Self::Plan(PlanCommand::Test {
                run,
                no_sync,
                instance,
                at,
            }) => {
                let mut instances = std::collections::BTreeMap::new();
                for pair in instance {
                    let Some((vm, id)) = pair.split_once('=') else {
                        return Err(Failed::usage(format!(
                            "--instance {pair:?} must be VM_ID=ID, e.g. site-a.db-01=42"
                        )));
                    };
                    instances.insert(vm.to_string(), id.to_string());
                }
                let options = RunOptions {
                    mode: RunMode::Test,
                    confirm: run.confirm,
                    yes: run.yes,
                    wait: run.wait,
                    no_sync,
                    force: false,
                    instances,
                    at_ms: at,
                };
                start::start_run(clients, &run.name, options).await
            }
            Self::Plan(PlanCommand::Cleanup { run, force }) => {
                start(clients, run, RunMode::Cleanup, false, force).await
            }
            Self::Plan(PlanCommand::Migrate(run)) => {
                start(clients, run, RunMode::PlannedMigration, false, false).await
            }
            Self::Plan(PlanCommand::Recover(run)) => {
                start(clients, run, RunMode::DisasterRecovery, false, false).await
            }
            Self::Plan(PlanCommand::Reprotect(run)) => {
                start(clients, run, RunMode::Reprotect, false, false).await
            }
            Self::Run(RunCommand::Show { id, output }) => {
                commands::run_show(clients, &id, output.output).await
            }
            Self::Run(RunCommand::Export { id, format }) => {
                commands::run_export(clients, &id, format).await
            }
            Self::Run(RunCommand::Ack { id }) => commands::run_call(clients, &id, false).await,
            Self::Run(RunCommand::Cancel { id }) => commands::run_call(clients, &id, true).await,
            Self::Pair(p) => {
                let options = pair::PairOptions {
                    yes: p.yes,
                    expect: p.expect_fingerprint,
                    expect_peer: p.expect_peer_fingerprint,
                    replace: p.replace,
                };
                pair::pair(clients, options).await
            }
        }
    }
}

async fn start(
    clients: &[Client],
    run: RunArgs,
    mode: RunMode,
    no_sync: bool,
    force: bool,
) -> Result<u8, Failed> {
    let options = RunOptions {
        mode,
        confirm: run.confirm,
        yes: run.yes,
        wait: run.wait,
        no_sync,
        force,
        instances: Default::default(),
        at_ms: None,
    };
    start::start_run(clients, &run.name, options).await
}
