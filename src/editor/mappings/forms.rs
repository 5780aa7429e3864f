//! The mappings editor's forms: an IP subnet rule, a VM's NIC address.
//! What is typed is checked with the site's rules before it is kept.

use ferry_api::types::{IpOverride, IpRule, NicAddress};

use super::{FormFor, MappingsEditor, directions, remove_nic, source_vms};
use crate::editor::check::{list, optional};
use crate::editor::form::{Field, Form};
use crate::editor::{leaf, nic};
use crate::model::Model;

impl MappingsEditor {
    /// The form for rule `index` (a new rule when `None`).
    pub fn rule_form(&self, model: &Model, pane: usize, index: Option<usize>) -> Form<FormFor> {
        let dirs = directions(model);
        let rule = dirs
            .get(pane)
            .and_then(|d| index.and_then(|i| self.spec(model, d).ip_rules.get(i).cloned()));
        let r = rule.unwrap_or(IpRule {
            from_subnet: String::new(),
            from_gateway: None,
            to_subnet: String::new(),
            to_gateway: None,
            dns: Vec::new(),
        });
        let title = if index.is_some() {
            " IP subnet rule "
        } else {
            " New IP subnet rule "
        };
        Form::new(
            title,
            vec![
                Field::text("from_subnet", "from subnet", &r.from_subnet, "10.10.1.0/24"),
                Field::text(
                    "from_gateway",
                    "from gateway",
                    r.from_gateway.as_deref().unwrap_or(""),
                    "10.10.1.1 (optional)",
                ),
                Field::text("to_subnet", "to subnet", &r.to_subnet, "10.20.1.0/24"),
                Field::text(
                    "to_gateway",
                    "to gateway",
                    r.to_gateway.as_deref().unwrap_or(""),
                    "10.20.1.1 (optional)",
                ),
                Field::text(
                    "dns",
                    "DNS servers",
                    &r.dns.join(", "),
                    "10.20.0.53, 10.20.0.54",
                ),
            ],
            FormFor::Rule { pane, index },
        )
    }

    /// The form for a VM's NIC address (a new one when `at` is `None`).
    pub fn nic_form(
        &self,
        model: &Model,
        pane: usize,
        at: Option<(usize, usize)>,
    ) -> Form<FormFor> {
        let dirs = directions(model);
        let Some(dir) = dirs.get(pane) else {
            return Form::new(" NIC address ", Vec::new(), FormFor::Nic { pane, at });
        };
        let spec = self.spec(model, dir);
        let vms = source_vms(model, dir);
        let (vm_id, nic) = at
            .and_then(|(v, n)| {
                let o = spec.ip_overrides.get(v)?;
                Some((o.vm_id.clone(), o.nics.get(n)?.clone()))
            })
            .unwrap_or_else(|| {
                let first = vms.first().map_or(String::new(), |(id, _)| id.clone());
                (first, NicAddress::default())
            });
        let names: Vec<String> = vms.iter().map(|(_, name)| name.clone()).collect();
        let name = model.vm_name(&vm_id);
        Form::new(
            if at.is_some() {
                " Per-VM NIC address "
            } else {
                " New per-VM NIC address "
            },
            [
                vec![Field::choice("vm_id", "VM", &name, names)],
                nic::fields(&nic, "0"),
            ]
            .concat(),
            FormFor::Nic { pane, at },
        )
    }

    /// Applies a filled-in form; on refusal, the errors by field key.
    pub fn apply_form(
        &mut self,
        model: &Model,
        form: &Form<FormFor>,
    ) -> Result<(), Vec<(&'static str, String)>> {
        let (pane, mut spec) = match form.purpose {
            FormFor::Rule { pane, .. } | FormFor::Nic { pane, .. } => {
                let dirs = directions(model);
                let dir = dirs
                    .get(pane)
                    .ok_or_else(|| vec![("", "no such direction".to_string())])?;
                (pane, self.spec(model, dir))
            }
        };
        match form.purpose {
            FormFor::Rule { index, .. } => {
                let rule = IpRule {
                    from_subnet: form.value("from_subnet").trim().to_string(),
                    from_gateway: optional(form.value("from_gateway")),
                    to_subnet: form.value("to_subnet").trim().to_string(),
                    to_gateway: optional(form.value("to_gateway")),
                    dns: list(form.value("dns")),
                };
                match index {
                    Some(i) if i < spec.ip_rules.len() => spec.ip_rules[i] = rule,
                    _ => spec.ip_rules.push(rule),
                }
            }
            FormFor::Nic { at, .. } => {
                let dir = &directions(model)[pane];
                let name = form.value("vm_id");
                let vm_id = source_vms(model, dir)
                    .into_iter()
                    .find(|(_, n)| n == name)
                    .map(|(id, _)| id)
                    .ok_or_else(|| {
                        vec![("vm_id", "pick a VM of the protected site".to_string())]
                    })?;
                let address = nic::parse(form)?;
                let nic = address.nic;
                if let Some((v, n)) = at {
                    remove_nic(&mut spec, v, n);
                }
                match spec.ip_overrides.iter_mut().find(|o| o.vm_id == vm_id) {
                    Some(o) => {
                        o.nics.retain(|n| n.nic != nic);
                        o.nics.push(address);
                        o.nics.sort_by_key(|n| n.nic);
                    }
                    None => spec.ip_overrides.push(IpOverride {
                        vm_id,
                        nics: vec![address],
                    }),
                }
            }
        }
        let dir = directions(model).swap_remove(pane);
        self.commit(model, &dir, spec).map_err(|e| {
            let key = match leaf(&e.field) {
                "nics" => "ipv4",
                "source" | "target" | "" => "from_subnet",
                other => FORM_KEYS
                    .iter()
                    .find(|k| **k == other)
                    .copied()
                    .unwrap_or("ipv4"),
            };
            vec![(key, crate::editor::say::ranges(&e.message))]
        })
    }
}

const FORM_KEYS: [&str; 11] = [
    "from_subnet",
    "from_gateway",
    "to_subnet",
    "to_gateway",
    "dns",
    "vm_id",
    "nic",
    "ipv4",
    "ipv4_gateway",
    "ipv6",
    "ipv6_gateway",
];
