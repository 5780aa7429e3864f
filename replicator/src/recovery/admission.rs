//! Whether a run may start: the plan's state allows the mode, destructive
//! modes are confirmed with the plan's name, options belong to their mode,
//! and no group of the plan is in use by another run. Pure, so every rule
//! is tested without a site; `site::runs` takes the locks and starts it.

use super::model::{RunMode, RunRequest};

/// Why a run was refused; the site turns each into a conflict or an invalid
/// field for the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The plan's state does not allow the mode now.
    #[error("plan {plan:?} is {state}; it cannot start a {mode} now ({next})")]
    NotNow {
        plan: String,
        state: String,
        mode: String,
        next: String,
    },
    #[error("a {mode} must be confirmed with the plan's name: \"confirm\": {plan:?}")]
    NotConfirmed { mode: String, plan: String },
    #[error("only a test run takes `sync`")]
    SyncOutsideTest,
    #[error("only a cleanup takes `force`")]
    ForceOutsideCleanup,
    #[error("protection group {group} is in use by run {run}; wait for it or cancel it")]
    GroupInUse { group: String, run: String },
}

impl Refusal {
    /// The request field at fault, when the refusal is about one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::NotConfirmed { .. } => Some("confirm"),
            Self::SyncOutsideTest => Some("sync"),
            Self::ForceOutsideCleanup => Some("force"),
            Self::NotNow { .. } | Self::GroupInUse { .. } => None,
        }
    }
}

/// The plan as admission sees it.
pub struct PlanAtStart<'a> {
    pub name: &'a str,
    /// Its state's label, for the message.
    pub state: &'a str,
    /// The modes its state allows now, and what to do next otherwise.
    pub allowed: &'a [RunMode],
    pub next: &'a str,
}

/// Admits `request` for `plan`, or says why not (the first rule broken).
pub fn admit(plan: &PlanAtStart<'_>, request: &RunRequest) -> Result<(), Refusal> {
    if !plan.allowed.contains(&request.mode) {
        return Err(Refusal::NotNow {
            plan: plan.name.to_string(),
            state: plan.state.to_string(),
            mode: request.mode.label().to_string(),
            next: plan.next.to_string(),
        });
    }
    if request.mode.is_destructive() && request.confirm.as_deref() != Some(plan.name) {
        return Err(Refusal::NotConfirmed {
            mode: request.mode.label().to_string(),
            plan: plan.name.to_string(),
        });
    }
    if request.sync.is_some() && request.mode != RunMode::Test {
        return Err(Refusal::SyncOutsideTest);
    }
    if request.force.is_some() && request.mode != RunMode::Cleanup {
        return Err(Refusal::ForceOutsideCleanup);
    }
    Ok(())
}

/// The groups' locks are all free, or the first held one is named (with
/// its holder), given each group's name and the run holding it.
pub fn groups_free<'a>(
    groups: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<(), Refusal> {
    match groups
        .into_iter()
        .find_map(|(g, holder)| holder.map(|h| (g, h)))
    {
        Some((group, run)) => Err(Refusal::GroupInUse {
            group: group.to_string(),
            run: run.to_string(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(mode: RunMode) -> RunRequest {
        RunRequest {
            mode,
            confirm: None,
            sync: None,
            force: None,
            instances: Default::default(),
            at_ms: None,
        }
    }

    const ALL: &[RunMode] = &[
        RunMode::Test,
        RunMode::Cleanup,
        RunMode::PlannedMigration,
        RunMode::DisasterRecovery,
        RunMode::Reprotect,
    ];

    fn plan(allowed: &'static [RunMode]) -> PlanAtStart<'static> {
        PlanAtStart {
            name: "web",
            state: "ready",
            allowed,
            next: "run a test",
        }
    }

    #[test]
    fn a_mode_the_state_does_not_allow_is_refused_with_what_to_do() {
        let refused = admit(&plan(&[RunMode::Test]), &request(RunMode::Cleanup));
        let Err(e @ Refusal::NotNow { .. }) = refused else {
            panic!("{refused:?}")
        };
        assert_eq!(
            e.to_string(),
            "plan \"web\" is ready; it cannot start a cleanup now (run a test)"
        );
        assert_eq!(e.field(), None);
    }

    #[test]
    fn destructive_modes_need_the_plan_name_typed() {
        for mode in ALL.iter().copied().filter(|m| m.is_destructive()) {
            assert!(matches!(
                admit(&plan(ALL), &request(mode)),
                Err(Refusal::NotConfirmed { .. })
            ));
            let wrong = RunRequest {
                confirm: Some("other".into()),
                ..request(mode)
            };
            assert!(admit(&plan(ALL), &wrong).is_err());
            let right = RunRequest {
                confirm: Some("web".into()),
                ..request(mode)
            };
            assert_eq!(admit(&plan(ALL), &right), Ok(()));
        }
        assert_eq!(admit(&plan(ALL), &request(RunMode::Test)), Ok(()));
    }

    #[test]
    fn options_belong_to_their_mode() {
        let sync = |mode| RunRequest {
            sync: Some(false),
            confirm: Some("web".into()),
            ..request(mode)
        };
        let force = |mode| RunRequest {
            force: Some(true),
            confirm: Some("web".into()),
            ..request(mode)
        };
        assert_eq!(admit(&plan(ALL), &sync(RunMode::Test)), Ok(()));
        assert_eq!(admit(&plan(ALL), &force(RunMode::Cleanup)), Ok(()));
        for mode in ALL.iter().copied() {
            if mode != RunMode::Test {
                let e = admit(&plan(ALL), &sync(mode)).unwrap_err();
                assert_eq!((e.field(), e), (Some("sync"), Refusal::SyncOutsideTest));
            }
            if mode != RunMode::Cleanup {
                let e = admit(&plan(ALL), &force(mode)).unwrap_err();
                assert_eq!(
                    (e.field(), e),
                    (Some("force"), Refusal::ForceOutsideCleanup)
                );
            }
        }
    }

    #[test]
    fn the_first_group_in_use_is_named() {
        assert_eq!(groups_free([("a", None), ("b", None)]), Ok(()));
        assert_eq!(
            groups_free([("a", None), ("b", Some("run-1")), ("c", Some("run-2"))]),
            Err(Refusal::GroupInUse {
                group: "b".into(),
                run: "run-1".into()
            })
        );
    }
}
