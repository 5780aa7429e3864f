//! Where a VM lands at the recovery site by a mapping set: its placeholder
//! (folder, pool, datastore, networks), its test networks, and its
//! addresses rewritten by subnet rules and overrides.

use crate::mapping::Cidr;
use crate::model::{IpRule, MappingSpec, NicAddress, Pair, Placeholder};
use crate::types::NicSeed;

fn lookup<'a>(pairs: &'a [Pair], source: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|p| p.source == source)
        .map(|p| p.target.as_str())
}

/// Where a VM lands: its placeholder, or the kind of mapping it lacks.
pub fn place(
    mappings: Option<&MappingSpec>,
    folder: &str,
    resource_pool: &str,
    nics: &[NicSeed],
    datastore: &str,
) -> Result<Placeholder, &'static str> {
    let empty = MappingSpec::default();
    let m = mappings.unwrap_or(&empty);
    let folder = lookup(&m.folders, folder).ok_or("folder")?;
    let resource_pool = lookup(&m.resource_pools, resource_pool).ok_or("resource pool")?;
    let networks = nics
        .iter()
        .map(|n| lookup(&m.networks, &n.network).map(str::to_string))
        .collect::<Option<Vec<_>>>()
        .ok_or("network")?;
    Ok(Placeholder {
        folder: folder.to_string(),
        resource_pool: resource_pool.to_string(),
        datastore: datastore.to_string(),
        networks,
    })
}

/// The test network for a source network, when mapped.
pub fn test_network<'a>(mappings: &'a MappingSpec, source: &str) -> Option<&'a str> {
    lookup(&mappings.test_networks, source)
}

/// A NIC's address at the recovery site: a manual or per-VM override
/// first, then the subnet rule its address falls in; unchanged if none.
pub fn customize(
    nic: &NicSeed,
    network: &str,
    rules: &[IpRule],
    fixed: Option<&NicAddress>,
) -> NicSeed {
    let mut out = NicSeed {
        network: network.to_string(),
        ..nic.clone()
    };
    if let Some(fixed) = fixed {
        out.ip = fixed.ipv4.clone().or_else(|| fixed.ipv6.clone());
        out.gateway = if fixed.ipv4.is_some() {
            fixed.ipv4_gateway.clone()
        } else {
            fixed.ipv6_gateway.clone()
        };
        if !fixed.dns.is_empty() {
            out.dns = fixed.dns.clone();
        }
        return out;
    }
    let Some(current) = nic.ip.as_deref().and_then(|ip| Cidr::parse(ip).ok()) else {
        return out;
    };
    for rule in rules {
        let (Ok(from), Ok(to)) = (Cidr::parse(&rule.from_subnet), Cidr::parse(&rule.to_subnet))
        else {
            continue;
        };
        if from.contains(current.addr) {
            out.ip = Some(format!("{}/{}", to.rehome(current.addr), current.prefix));
            out.gateway = rule.to_gateway.clone().or(out.gateway);
            if !rule.dns.is_empty() {
                out.dns = rule.dns.clone();
            }
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::tests::good;

    #[test]
    fn placement_names_the_missing_kind() {
        let nic = NicSeed {
            network: "a-prod".into(),
            ip: Some("10.1.0.7/24".into()),
            gateway: Some("10.1.0.1".into()),
            dns: vec![],
        };
        let nics = std::slice::from_ref(&nic);
        let at_b = |m: &MappingSpec| place(Some(m), "a-apps", "a-pool", nics, "b-ds");
        let mut m = good();
        assert_eq!(at_b(&m).unwrap().networks, vec!["b-prod".to_string()]);
        m.networks.clear();
        assert_eq!(at_b(&m), Err("network"));
        m.resource_pools.clear();
        assert_eq!(at_b(&m), Err("resource pool"));
        assert_eq!(place(None, "a-apps", "a-pool", nics, "b-ds"), Err("folder"));
    }

    #[test]
    fn subnet_rules_keep_the_host_part() {
        let nic = NicSeed {
            network: "a-prod".into(),
            ip: Some("10.1.0.7/24".into()),
            gateway: Some("10.1.0.1".into()),
            dns: vec!["10.1.0.53".into()],
        };
        let out = customize(&nic, "b-prod", &good().ip_rules, None);
        assert_eq!(out.ip.as_deref(), Some("10.2.0.7/24"));
        assert_eq!(out.gateway.as_deref(), Some("10.2.0.1"));
        assert_eq!(out.dns, vec!["10.2.0.53".to_string()]);
        assert_eq!(out.network, "b-prod");
        let v6 = NicSeed {
            ip: Some("fd00:1::7/64".into()),
            ..nic.clone()
        };
        let rule = IpRule {
            from_subnet: "fd00:1::/64".into(),
            from_gateway: None,
            to_subnet: "fd00:2::/64".into(),
            to_gateway: None,
            dns: vec![],
        };
        assert_eq!(
            customize(&v6, "b-prod", &[rule], None).ip.as_deref(),
            Some("fd00:2::7/64")
        );
        let fixed = NicAddress {
            nic: 0,
            ipv4: Some("192.168.9.9/24".into()),
            ipv4_gateway: Some("192.168.9.1".into()),
            ..Default::default()
        };
        let out = customize(&nic, "b-prod", &good().ip_rules, Some(&fixed));
        assert_eq!(out.ip.as_deref(), Some("192.168.9.9/24"));
        let outside = NicSeed {
            ip: Some("172.16.0.4/16".into()),
            ..nic
        };
        assert_eq!(
            customize(&outside, "b-prod", &good().ip_rules, None)
                .ip
                .as_deref(),
            Some("172.16.0.4/16")
        );
    }
}
