//! The steps "Plan callouts before power-on" and "Plan callouts after
//! power-on".

use super::*;

impl Exec {
    pub(super) async fn plan_callouts(&self, i: usize, post: bool) {
        let callouts = if post {
            &self.plan.spec.post_power_on
        } else {
            &self.plan.spec.pre_power_on
        };
        match self.callouts(i, None, callouts).await {
            Ok(out) => {
                self.run().with(|r| r.steps[i].output = Some(out));
                self.end_step(i, StepState::Done, "");
            }
            Err(e) => self.end_step(i, StepState::Error, e.to_string()),
        }
    }
}
