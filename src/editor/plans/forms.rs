//! The plan editor's forms: name and description, a VM's heartbeat
//! timeout and its IP customization. A value the site's rules refuse stays
//! in the form, beside its field.

use ferry_api::types::{IpCustomization, NicAddress};

use super::{FormFor, MAX_HEARTBEAT, PlanEditor};
use crate::editor::check::seconds;
use crate::editor::form::{Field, Form};
use crate::editor::{leaf, nic};
use crate::model::Model;

impl PlanEditor {
    pub fn props_form(&self) -> Form<FormFor> {
        Form::new(
            " Plan ",
            vec![
                Field::text("name", "name", &self.spec.name, "e.g. Tier-1 apps"),
                Field::text(
                    "description",
                    "description",
                    &self.spec.description,
                    "(optional)",
                ),
            ],
            FormFor::Props,
        )
    }

    pub fn heartbeat_form(&self, model: &Model) -> Option<Form<FormFor>> {
        let vm = self.selected_vm(model)?;
        Some(Form::new(
            format!(" {}: heartbeat timeout ", model.vm_name(&vm.vm_id)),
            vec![Field::text(
                "heartbeat_timeout_seconds",
                "seconds",
                &vm.heartbeat_timeout_seconds.to_string(),
                "300",
            )],
            FormFor::Heartbeat {
                vm_id: vm.vm_id.clone(),
            },
        ))
    }

    pub fn ip_form(&self, model: &Model) -> Option<Form<FormFor>> {
        let vm = self.selected_vm(model)?;
        let (mode, nic) = match &vm.ip_customization {
            IpCustomization::Auto => ("auto", NicAddress::default()),
            IpCustomization::Off => ("off", NicAddress::default()),
            IpCustomization::Manual { nics } => {
                ("manual", nics.first().cloned().unwrap_or_default())
            }
        };
        let modes = ["auto", "off", "manual"].map(String::from).to_vec();
        Some(Form::new(
            format!(" {}: IP customization ", model.vm_name(&vm.vm_id)),
            [
                vec![Field::choice("mode", "mode", mode, modes)],
                nic::fields(&nic, "0 (manual only)"),
            ]
            .concat(),
            FormFor::Ip {
                vm_id: vm.vm_id.clone(),
            },
        ))
    }

    /// Applies a filled-in form when the site's rules accept the result;
    /// else the errors by field key, and the plan is unchanged.
    pub fn apply_form(
        &mut self,
        model: &Model,
        form: &Form<FormFor>,
    ) -> Result<(), Vec<(&'static str, String)>> {
        let mut spec = self.spec.clone();
        match &form.purpose {
            FormFor::Props => {
                spec.name = form.value("name").trim().to_string();
                spec.description = form.value("description").trim().to_string();
            }
            FormFor::Heartbeat { vm_id } => {
                let timeout = seconds(form.value("heartbeat_timeout_seconds"), MAX_HEARTBEAT)
                    .map_err(|e| vec![("heartbeat_timeout_seconds", e.to_string())])?;
                if let Some(vm) = spec.vms.iter_mut().find(|v| v.vm_id == *vm_id) {
                    vm.heartbeat_timeout_seconds = timeout;
                }
            }
            FormFor::Ip { vm_id } => {
                let Some(vm) = spec.vms.iter_mut().find(|v| v.vm_id == *vm_id) else {
                    return Ok(());
                };
                vm.ip_customization = match form.value("mode") {
                    "off" => IpCustomization::Off,
                    "manual" => {
                        let address = nic::parse(form)?;
                        let nic = address.nic;
                        let mut nics = match &vm.ip_customization {
                            IpCustomization::Manual { nics } => nics.clone(),
                            _ => Vec::new(),
                        };
                        nics.retain(|n| n.nic != nic);
                        nics.insert(0, address);
                        IpCustomization::Manual { nics }
                    }
                    _ => IpCustomization::Auto,
                };
            }
        }
        self.accept(model, spec).map_err(|e| {
            let key = match leaf(&e.field) {
                "nics" | "ip_customization" => "ipv4",
                "name" => "name",
                "description" => "description",
                "heartbeat_timeout_seconds" => "heartbeat_timeout_seconds",
                other => IP_KEYS
                    .iter()
                    .find(|k| **k == other)
                    .copied()
                    .unwrap_or("mode"),
            };
            vec![(key, crate::editor::say::ranges(&e.message))]
        })
    }
}

const IP_KEYS: [&str; 6] = ["nic", "ipv4", "ipv4_gateway", "ipv6", "ipv6_gateway", "dns"];
