//! A pinned pair of sites for the editors' tests and snapshots: site-a
//! protects four VMs to site-b; mappings leave prod-web unmapped; group
//! Databases holds both databases; plan Tier-1 starts db-02 after db-01.

use std::time::Instant;

use ferry_api::types::NicSeed;
use ferry_api::types::{
    DiskInfo, GroupVm, Inventory, IpCustomization, IpRule, MappingSpec, Mappings, NetworkInfo,
    Pair, Placeholder, Plan, PlanState, PlanVm, PowerState, ProtectionGroup, SiteInfo, VmInfo,
};

use crate::model::tests::replication;
use crate::model::{FeedUpdate, Model, Protection, SiteState};

pub const T0: u64 = 1_795_000_000_000;

const VMS: [(&str, &str, &str, &str); 4] = [
    ("db-01", "Databases", "Gold", "prod-db"),
    ("db-02", "Databases", "Gold", "prod-db"),
    ("app-01", "Apps", "Silver", "prod-app"),
    ("web-01", "Web", "Silver", "prod-web"),
];

fn network(name: &str, test: bool, subnet: &str) -> NetworkInfo {
    NetworkInfo {
        name: name.into(),
        test,
        subnet: Some(subnet.into()),
        gateway: None,
    }
}

fn pair(source: &str, target: &str) -> Pair {
    Pair {
        source: source.into(),
        target: target.into(),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

pub fn inventories() -> [Inventory; 2] {
    [
        Inventory {
            site: "site-a".into(),
            networks: vec![
                network("prod-db", false, "10.10.1.0/24"),
                network("prod-app", false, "10.10.2.0/24"),
                network("prod-web", false, "10.10.3.0/24"),
            ],
            folders: strings(&["Databases", "Apps", "Web"]),
            resource_pools: strings(&["Gold", "Silver"]),
            datastores: strings(&["ds1"]),
        },
        Inventory {
            site: "site-b".into(),
            networks: vec![
                network("dr-db", false, "10.20.1.0/24"),
                network("dr-app", false, "10.20.2.0/24"),
                network("dr-web", false, "10.20.3.0/24"),
                network("test-bubble", true, "192.168.100.0/24"),
            ],
            folders: strings(&["Databases", "Apps", "Web"]),
            resource_pools: strings(&["Gold", "Silver"]),
            datastores: strings(&["ds1"]),
        },
    ]
}

fn vm(name: &str, folder: &str, pool: &str, net: &str, i: usize) -> VmInfo {
    VmInfo {
        id: format!("site-a.{name}"),
        name: name.into(),
        folder: folder.into(),
        resource_pool: pool.into(),
        power_state: PowerState::On,
        nics: vec![NicSeed {
            network: net.into(),
            ip: Some(format!("10.10.{}.{}/24", 1 + i / 2, 11 + i)),
            gateway: None,
            dns: Vec::new(),
        }],
        disks: vec![DiskInfo {
            datastore: "ds1".into(),
            size_bytes: 64 << 20,
        }],
        guest: None,
        replicated: true,
        compute: Default::default(),
        memory_mib: 128,
        vcpus: 1,
        pid: None,
        accelerator: None,
        problem: None,
        console_tail: None,
        lifecycle: ferry_api::types::Lifecycle::Protected,
    }
}

fn member(name: &str) -> GroupVm {
    GroupVm {
        vm_id: format!("site-a.{name}"),
        vm: name.into(),
        status: "ok".into(),
        placeholder: Some(Placeholder {
            folder: "Databases".into(),
            resource_pool: "Gold".into(),
            datastore: "ds1".into(),
            networks: vec!["dr-db".into()],
        }),
    }
}

pub fn mappings() -> Mappings {
    Mappings {
        id: "site-a-to-site-b".into(),
        owner: "site-b".into(),
        spec: MappingSpec {
            from_site: "site-a".into(),
            to_site: "site-b".into(),
            networks: vec![pair("prod-db", "dr-db"), pair("prod-app", "dr-app")],
            test_networks: vec![pair("prod-db", "test-bubble")],
            folders: vec![
                pair("Databases", "Databases"),
                pair("Apps", "Apps"),
                pair("Web", "Web"),
            ],
            resource_pools: vec![pair("Gold", "Gold"), pair("Silver", "Silver")],
            datastores: vec![pair("ds1", "ds1")],
            ip_rules: vec![IpRule {
                from_subnet: "10.10.1.0/24".into(),
                from_gateway: Some("10.10.1.1".into()),
                to_subnet: "10.20.1.0/24".into(),
                to_gateway: Some("10.20.1.1".into()),
                dns: vec!["10.20.0.53".into()],
            }],
            ip_overrides: Vec::new(),
        },
        updated_ms: T0 - 60_000,
    }
}

pub fn group() -> ProtectionGroup {
    ProtectionGroup {
        id: "pg-databases".into(),
        name: "Databases".into(),
        protected_site: "site-a".into(),
        recovery_site: "site-b".into(),
        vms: vec![member("db-01"), member("db-02")],
        locked_by: None,
        updated_ms: T0 - 50_000,
    }
}

pub fn plan() -> Plan {
    let mut db1 = PlanVm::new("site-a.db-01");
    db1.priority = 1;
    let mut db2 = PlanVm::new("site-a.db-02");
    db2.priority = 1;
    db2.depends_on = vec!["site-a.db-01".into()];
    db2.ip_customization = IpCustomization::Off;
    Plan {
        readiness: ferry_api::types::Readiness {
            protected_site_reachable: true,
            recovery_site_reachable: true,
            ..Default::default()
        },
        id: "plan-tier-1".into(),
        name: "Tier-1".into(),
        description: "Databases first".into(),
        protected_site: "site-a".into(),
        recovery_site: "site-b".into(),
        groups: vec!["pg-databases".into()],
        vms: vec![db1, db2],
        pre_power_on: Vec::new(),
        post_power_on: Vec::new(),
        state: PlanState::Ready,
        allowed: Vec::new(),
        next: "run a test".into(),
        start_order: vec![
            vec!["site-a.db-01".into(), "site-a.db-02".into()],
            vec![],
            vec![],
            vec![],
            vec![],
        ],
        last_run: None,
        updated_ms: T0 - 40_000,
    }
}

/// The model of both sites, fed as their feeds would feed it.
pub fn model() -> Model {
    let now = Instant::now();
    let mut model = Model::new(vec![
        SiteState::new("a", "http://127.0.0.1:47800"),
        SiteState::new("b", "http://127.0.0.1:47802"),
    ]);
    let vms: Vec<VmInfo> = VMS
        .iter()
        .enumerate()
        .map(|(i, (n, f, p, net))| vm(n, f, p, net, i))
        .collect();
    let replications: Vec<_> = VMS
        .iter()
        .map(|(n, ..)| replication(n, 60, Some(5_000), T0))
        .collect();
    for (site, name) in ["site-a", "site-b"].iter().enumerate() {
        model.apply(
            FeedUpdate::Snapshot {
                site,
                info: SiteInfo {
                    name: name.to_string(),
                    role: ferry_api::types::Role::Admin,
                    peer: None,
                    vm_count: 4,
                    replicated_count: 4,
                    fingerprint: None,
                    replication: None,
                },
                replications: if site == 0 {
                    replications.clone()
                } else {
                    Vec::new()
                },
                alarms: Vec::new(),
                vms: if site == 0 { vms.clone() } else { Vec::new() },
            },
            now,
        );
    }
    let [a, b] = inventories();
    for (site, inventory) in [(0, a), (1, b)] {
        let mut protection = Protection {
            inventory: Some(inventory),
            ..Protection::default()
        };
        let m = mappings();
        protection.mappings.insert(m.id.clone(), m);
        let g = group();
        protection.groups.insert(g.id.clone(), g);
        let p = plan();
        protection.plans.insert(p.id.clone(), p);
        model.apply(FeedUpdate::Protection { site, protection }, now);
    }
    model
}
