//! What an operator sets up first, given to a new demo so its editors have
//! something to show: mappings site-a → site-b, a group per tier kind and a
//! three-tier recovery plan, all made at site-b (the recovery site) through
//! its API, as the TUI would. A demo that has groups already is left alone.

use std::time::{Duration, Instant};

use ferry_replicator::api::types::{
    GroupSpec, IpRule, MappingSpec, Pair, PlanSpec, PlanVm, ProtectionGroup,
};
use serde_json::Value;

use super::{DemoSite, Inventory};

/// site-b learns of site-a's replications from its peer; until then it
/// refuses groups of them.
const PEER_WAIT: Duration = Duration::from_secs(60);

pub async fn seed(sites: Vec<DemoSite>, inventory: &Inventory) -> Result<(), String> {
    let recovery = sites.get(1).ok_or("no recovery site")?;
    let api = Api {
        client: reqwest::Client::new(),
        url: format!("{}/api/v1", recovery.url),
        token: recovery.tokens.admin.clone(),
    };
    let groups: Vec<ProtectionGroup> =
        serde_json::from_value(api.get("/protection-groups").await?).map_err(|e| e.to_string())?;
    if !groups.is_empty() {
        return Ok(());
    }
    let mappings: Vec<Value> =
        serde_json::from_value(api.get("/mappings").await?).map_err(|e| e.to_string())?;
    if mappings.iter().all(|m| m["id"] != "site-a-to-site-b") {
        api.post("/mappings", &mappings_spec(inventory)).await?;
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
        let group = loop {
            match api.post("/protection-groups", &spec).await {
                Ok(group) => break group,
                Err(e) if started.elapsed() < PEER_WAIT => {
                    tracing::debug!("demo group {name} not yet: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        };
        ids.push(group["id"].as_str().unwrap_or_default().to_string());
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
            // The replica database starts once the primary answers.
            if v.name == "db-02" {
                vm.depends_on = vec!["site-a.db-01".into()];
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
    api.post("/plans", &plan).await?;
    Ok(())
}

/// Every protected object onto its namesake (networks `prod-x` onto
/// `dr-x`, tests onto the isolated network), with a subnet rule per network.
fn mappings_spec(inventory: &Inventory) -> MappingSpec {
    let same = |names: &[String]| {
        names
            .iter()
            .map(|n| Pair {
                source: n.clone(),
                target: n.clone(),
            })
            .collect()
    };
    let test = inventory
        .recovery_networks
        .iter()
        .find(|n| n.test)
        .map(|n| n.name.clone());
    let mut spec = MappingSpec {
        from_site: "site-a".into(),
        to_site: "site-b".into(),
        folders: same(&inventory.folders),
        resource_pools: same(&inventory.resource_pools),
        datastores: vec![Pair {
            source: "ds1".into(),
            target: "ds1".into(),
        }],
        ..MappingSpec::default()
    };
    for net in &inventory.protected_networks {
        let target = net.name.replacen("prod-", "dr-", 1);
        let Some(to) = inventory
            .recovery_networks
            .iter()
            .find(|n| n.name == target)
        else {
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

struct Api {
    client: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    async fn get(&self, path: &str) -> Result<Value, String> {
        let request = self.client.get(format!("{}{path}", self.url));
        self.send(path, request).await
    }

    async fn post(&self, path: &str, body: &impl serde::Serialize) -> Result<Value, String> {
        let request = self.client.post(format!("{}{path}", self.url)).json(body);
        self.send(path, request).await
    }

    async fn send(&self, path: &str, request: reqwest::RequestBuilder) -> Result<Value, String> {
        let response = request
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!("{path}: {status}: {}", body["message"]));
        }
        Ok(body)
    }
}
