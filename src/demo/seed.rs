//! What an operator sets up first, given to a new demo so a failover can be
//! tried at once: mappings both ways (site-a → site-b, and back for the
//! failback), a group per tier kind and a three-tier recovery plan, made
//! through the sites' APIs as the TUI would. Each part is made only when
//! missing, so a restarted demo (even one failed over) is left as it was.

use std::time::{Duration, Instant};

use ferry_api::types::{
    Callout, GroupSpec, IpRule, MappingSpec, Pair, PlanSpec, PlanVm, ProtectionGroup,
};
use ferry_api::{Call, Client, ClientError};
use serde::Deserialize;

use super::DemoSite;

/// What of the demo inventory (assets/demo.toml) the seeding needs: names,
/// not site configs; the rest of the file is the site configs' business.
#[derive(Deserialize)]
pub struct Layout {
    pub folders: Vec<String>,
    pub resource_pools: Vec<String>,
    pub protected_networks: Vec<Network>,
    pub recovery_networks: Vec<Network>,
    pub vms: Vec<Vm>,
}

#[derive(Deserialize)]
pub struct Network {
    pub name: String,
    /// The isolated network test recoveries use.
    #[serde(default)]
    pub test: bool,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
}

#[derive(Deserialize)]
pub struct Vm {
    pub name: String,
    pub folder: String,
}

const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// site-b learns of site-a's replications from its peer; until then it
/// refuses groups of them.
const PEER_WAIT: Duration = Duration::from_secs(60);

/// Why the demo's mappings, groups and plan were not made.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("no protected site")]
    NoProtectedSite,
    #[error("no recovery site")]
    NoRecoverySite,
}

pub async fn seed(sites: Vec<DemoSite>, inventory: &Layout) -> Result<(), SeedError> {
    let site_api = |i: usize| match sites.get(i) {
        Some(s) => Client::new(&s.name, &s.url, &s.tokens.admin, CALL_TIMEOUT).map(Some),
        None => Ok(None),
    };
    let protected = site_api(0)?.ok_or(SeedError::NoProtectedSite)?;
    let api = site_api(1)?.ok_or(SeedError::NoRecoverySite)?;
    let (there, back) = (&inventory.protected_networks, &inventory.recovery_networks);
    let forward = mappings_spec(
        inventory,
        ("site-a", there),
        ("site-b", back),
        ("prod-", "dr-"),
    );
    ensure_mappings(&api, forward).await?;
    let reverse = mappings_spec(
        inventory,
        ("site-b", back),
        ("site-a", there),
        ("dr-", "prod-"),
    );
    ensure_mappings(&protected, reverse).await?;
    // After a reprotect the groups and the plan live at site-a: either
    // site holding any means the demo has them.
    for site in [&api, &protected] {
        let groups = site.groups().await?;
        if !groups.is_empty() {
            return Ok(());
        }
    }
    let tier = |vm: &str| {
        inventory
            .vms
            .iter()
            .find(|v| v.name == vm)
            .map(|v| v.folder.as_str())
    };
    let mut ids = Vec::new();
    for (name, folders) in [
        ("Databases", &["Databases"][..]),
        ("Apps and web", &["Apps", "Web"]),
    ] {
        let vms = inventory
            .vms
            .iter()
            .filter(|v| folders.contains(&v.folder.as_str()))
            .map(|v| format!("site-a.{}", v.name))
            .collect();
        let spec = GroupSpec {
            name: name.into(),
            vms,
        };
        let started = Instant::now();
        let save = Call::SaveGroup { id: None, spec };
        let group = loop {
            match api.send_as::<ProtectionGroup>(&save).await {
                Ok(group) => break group,
                Err(e) if started.elapsed() < PEER_WAIT => {
                    tracing::debug!("demo group {name} not yet: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        ids.push(group.id);
    }
    let vms = inventory
        .vms
        .iter()
        .map(|v| {
            let mut vm = PlanVm::new(&format!("site-a.{}", v.name));
            vm.priority = match tier(&v.name) {
                Some("Databases") => 1,
                Some("Apps") => 2,
                _ => 3,
            };
            // The replica database starts once the primary answers, the
            // second app server once the first does; web servers need none.
            match v.name.as_str() {
                "db-02" => vm.depends_on = vec!["site-a.db-01".into()],
                "app-02" => vm.depends_on = vec!["site-a.app-01".into()],
                "db-01" => {
                    vm.post_power_on = vec![Callout::Command {
                        command: "echo \"db-01 is up\"".into(),
                        timeout_seconds: 30,
                    }]
                }
                _ => {}
            }
            vm
        })
        .collect();
    let plan = PlanSpec {
        name: "Three-tier".into(),
        description: "Databases, then app servers, then web servers".into(),
        groups: ids,
        vms,
        pre_power_on: Vec::new(),
        post_power_on: Vec::new(),
    };
    api.send(&Call::SavePlan {
        id: None,
        spec: plan,
    })
    .await?;
    Ok(())
}

/// The mappings of `to`, made there when it has none yet; the site may
/// not know its peer's inventory for a moment after starting.
async fn ensure_mappings(api: &Client, spec: MappingSpec) -> Result<(), SeedError> {
    let id = format!("{}-to-{}", spec.from_site, spec.to_site);
    let mappings = api.mappings().await?;
    if mappings.iter().any(|m| m.id == id) {
        return Ok(());
    }
    let save = Call::SaveMappings { id: None, spec };
    let started = Instant::now();
    loop {
        match api.send(&save).await {
            Ok(_) => return Ok(()),
            Err(e) if started.elapsed() < PEER_WAIT => {
                tracing::debug!("demo mappings {id} not yet: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Every object of `from` onto its namesake at `to` (networks renamed by
/// `rename`, e.g. `prod-x` onto `dr-x`; each onto the isolated test
/// network for tests), with a subnet rule per network.
fn mappings_spec(
    inventory: &Layout,
    (from_site, from_networks): (&str, &[Network]),
    (to_site, to_networks): (&str, &[Network]),
    rename: (&str, &str),
) -> MappingSpec {
    let same = |names: &[String]| {
        names
            .iter()
            .map(|n| Pair {
                source: n.clone(),
                target: n.clone(),
            })
            .collect()
    };
    let test = to_networks.iter().find(|n| n.test).map(|n| n.name.clone());
    let mut spec = MappingSpec {
        from_site: from_site.into(),
        to_site: to_site.into(),
        folders: same(&inventory.folders),
        resource_pools: same(&inventory.resource_pools),
        datastores: vec![Pair {
            source: "ds1".into(),
            target: "ds1".into(),
        }],
        ..MappingSpec::default()
    };
    for net in from_networks.iter().filter(|n| !n.test) {
        let target = net.name.replacen(rename.0, rename.1, 1);
        let Some(to) = to_networks.iter().find(|n| n.name == target && !n.test) else {
            continue;
        };
        spec.networks.push(Pair {
            source: net.name.clone(),
            target: to.name.clone(),
        });
        if let Some(test) = &test {
            spec.test_networks.push(Pair {
                source: net.name.clone(),
                target: test.clone(),
            });
        }
        if let (Some(from), Some(to_subnet)) = (&net.subnet, &to.subnet) {
            spec.ip_rules.push(IpRule {
                from_subnet: from.clone(),
                from_gateway: net.gateway.clone(),
                to_subnet: to_subnet.clone(),
                to_gateway: to.gateway.clone(),
                dns: Vec::new(),
            });
        }
    }
    spec
}
