//! The step "Priority N: IP customization": the addresses each VM of a
//! priority gets here.

use super::*;

impl Exec {
    pub(super) async fn ip_customization(&self, i: usize, priority: u8) {
        for vm in self
            .live()
            .into_iter()
            .filter(|v| v.settings.priority == priority)
        {
            let test = self.mode == RunMode::Test;
            let before = vm.info.as_ref().map(|v| v.nics.clone()).unwrap_or_default();
            let after = self.addresses(vm, test);
            let text: Vec<String> = before
                .iter()
                .zip(&after)
                .map(|(b, a)| {
                    format!(
                        "{} {} → {} {}",
                        b.network,
                        b.ip.as_deref().unwrap_or("dhcp"),
                        a.network,
                        a.ip.as_deref().unwrap_or("dhcp")
                    )
                })
                .collect();
            let mode = match vm.settings.ip_customization {
                IpCustomization::Off => "off: ",
                IpCustomization::Manual { .. } => "manual: ",
                IpCustomization::Auto => "",
            };
            self.sub(
                i,
                &vm.id,
                StepState::Done,
                format!("{mode}{}", text.join(", ")),
            );
        }
        self.end_step_by_vms(i);
    }
}
