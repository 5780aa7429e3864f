//! Validating mapping sets: every object exists at its site, test networks
//! stay isolated, subnet rules and NIC addresses are well formed.

use std::collections::HashSet;
use std::net::IpAddr;

use crate::Invalid;
use crate::model::{Inventory, IpRule, MappingSpec, NicAddress, Pair};

/// An address with a prefix length: `10.1.0.5/24`, `fd00::5/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// Why a text is not an address with a prefix length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} needs a prefix length, like 10.1.0.0/24")]
    NoPrefix(String),
    #[error("{0:?} is not an IPv4 or IPv6 address")]
    Address(String),
    #[error("prefix length {0:?} is not a number")]
    PrefixNumber(String),
    #[error("prefix length {prefix} is above {max}")]
    PrefixTooLong { prefix: u8, max: u8 },
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Self, CidrError> {
        let (addr, prefix) = text
            .split_once('/')
            .ok_or_else(|| CidrError::NoPrefix(text.to_string()))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::Address(addr.to_string()))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| CidrError::PrefixNumber(prefix.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(CidrError::PrefixTooLong { prefix, max });
        }
        Ok(Self { addr, prefix })
    }

    fn bits(addr: IpAddr) -> u128 {
        match addr {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        }
    }

    fn width(&self) -> u32 {
        if self.addr.is_ipv4() { 32 } else { 128 }
    }

    fn host_mask(&self) -> u128 {
        let host = self.width() - u32::from(self.prefix);
        if host == 128 {
            u128::MAX
        } else {
            (1u128 << host) - 1
        }
    }

    /// Whether `addr` is inside this subnet.
    pub fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.addr.is_ipv4()
            && (Self::bits(addr) & !self.host_mask()) == (Self::bits(self.addr) & !self.host_mask())
    }

    /// `addr`'s host part moved into this subnet.
    pub(crate) fn rehome(&self, addr: IpAddr) -> IpAddr {
        let bits =
            (Self::bits(self.addr) & !self.host_mask()) | (Self::bits(addr) & self.host_mask());
        match self.addr {
            IpAddr::V4(_) => IpAddr::V4((bits as u32).into()),
            IpAddr::V6(_) => IpAddr::V6(bits.into()),
        }
    }
}

fn check_ip(field: &str, text: &str) -> Result<IpAddr, Invalid> {
    text.parse()
        .map_err(|_| Invalid::new(field, format!("{text:?} is not an IPv4 or IPv6 address")))
}

fn check_cidr(field: &str, text: &str) -> Result<Cidr, Invalid> {
    Cidr::parse(text).map_err(|e| Invalid::new(field, e.to_string()))
}

fn check_gateway(field: &str, gateway: &Option<String>, subnet: &Cidr) -> Result<(), Invalid> {
    if let Some(gateway) = gateway {
        let ip = check_ip(field, gateway)?;
        if !subnet.contains(ip) {
            return Err(Invalid::new(
                field,
                format!(
                    "gateway {gateway} is outside {}/{}",
                    subnet.addr, subnet.prefix
                ),
            ));
        }
    }
    Ok(())
}

/// Checks one NIC override or manual address set.
pub fn check_nic_address(
    field: &str,
    nic: &NicAddress,
    nic_count: Option<usize>,
) -> Result<(), Invalid> {
    if let Some(count) = nic_count
        && nic.nic >= count
    {
        return Err(Invalid::new(
            &format!("{field}.nic"),
            format!("NIC {} does not exist; the VM has {count}", nic.nic),
        ));
    }
    if nic.ipv4.is_none() && nic.ipv6.is_none() {
        return Err(Invalid::new(field, "give an ipv4 or ipv6 address"));
    }
    for (name, addr, gateway, v4) in [
        ("ipv4", &nic.ipv4, &nic.ipv4_gateway, true),
        ("ipv6", &nic.ipv6, &nic.ipv6_gateway, false),
    ] {
        let Some(addr) = addr else {
            if gateway.is_some() {
                return Err(Invalid::new(
                    &format!("{field}.{name}_gateway"),
                    format!("a gateway needs an {name} address"),
                ));
            }
            continue;
        };
        let cidr = check_cidr(&format!("{field}.{name}"), addr)?;
        if cidr.addr.is_ipv4() != v4 {
            return Err(Invalid::new(
                &format!("{field}.{name}"),
                format!("{addr} is not an {name} address"),
            ));
        }
        check_gateway(&format!("{field}.{name}_gateway"), gateway, &cidr)?;
    }
    for (i, dns) in nic.dns.iter().enumerate() {
        check_ip(&format!("{field}.dns[{i}]"), dns)?;
    }
    Ok(())
}

fn check_rule(field: &str, rule: &IpRule) -> Result<(Cidr, Cidr), Invalid> {
    let from = check_cidr(&format!("{field}.from_subnet"), &rule.from_subnet)?;
    let to = check_cidr(&format!("{field}.to_subnet"), &rule.to_subnet)?;
    if from.addr.is_ipv4() != to.addr.is_ipv4() {
        return Err(Invalid::new(
            &format!("{field}.to_subnet"),
            "must be the same address family as from_subnet",
        ));
    }
    if from.prefix != to.prefix {
        return Err(Invalid::new(
            &format!("{field}.to_subnet"),
            format!(
                "prefix /{} differs from /{}: host parts are kept, so both subnets must be the same size",
                to.prefix, from.prefix
            ),
        ));
    }
    check_gateway(&format!("{field}.from_gateway"), &rule.from_gateway, &from)?;
    check_gateway(&format!("{field}.to_gateway"), &rule.to_gateway, &to)?;
    for (i, dns) in rule.dns.iter().enumerate() {
        check_ip(&format!("{field}.dns[{i}]"), dns)?;
    }
    Ok((from, to))
}

fn check_pairs(
    kind: &str,
    pairs: &[Pair],
    sources: Option<&[String]>,
    targets: &[String],
    wrong_target: impl Fn(&str) -> Option<String>,
) -> Result<(), Invalid> {
    let mut seen = HashSet::new();
    for (i, pair) in pairs.iter().enumerate() {
        let field = format!("{kind}[{i}]");
        if pair.source.trim().is_empty() {
            return Err(Invalid::new(
                &format!("{field}.source"),
                "must not be empty",
            ));
        }
        if let Some(sources) = sources
            && !sources.contains(&pair.source)
        {
            return Err(Invalid::new(
                &format!("{field}.source"),
                format!(
                    "the protected site has no {} {:?}",
                    singular(kind),
                    pair.source
                ),
            ));
        }
        if !seen.insert(pair.source.as_str()) {
            return Err(Invalid::new(
                &format!("{field}.source"),
                format!("{:?} is mapped twice", pair.source),
            ));
        }
        if !targets.contains(&pair.target) {
            return Err(Invalid::new(
                &format!("{field}.target"),
                format!(
                    "the recovery site has no {} {:?}",
                    singular(kind),
                    pair.target
                ),
            ));
        }
        if let Some(why) = wrong_target(&pair.target) {
            return Err(Invalid::new(&format!("{field}.target"), why));
        }
    }
    Ok(())
}

fn singular(kind: &str) -> &str {
    match kind {
        "networks" | "test_networks" => "network",
        "folders" => "folder",
        "resource_pools" => "resource pool",
        "datastores" => "datastore",
        other => other,
    }
}

/// Checks a mapping set from `from` (the protected site's objects, when
/// known) to `to` (this site's). `nic_count` says how many NICs a VM has,
/// when known.
pub fn validate(
    spec: &MappingSpec,
    from: Option<&Inventory>,
    to: &Inventory,
    nic_count: impl Fn(&str) -> Option<usize>,
) -> Result<(), Invalid> {
    let names = |inv: &Inventory, test: Option<bool>| -> Vec<String> {
        inv.networks
            .iter()
            .filter(|n| test.is_none_or(|t| n.test == t))
            .map(|n| n.name.clone())
            .collect()
    };
    let from_networks = from.map(|f| names(f, None));
    let is_test = |name: &str| to.networks.iter().any(|n| n.name == name && n.test);
    check_pairs(
        "networks",
        &spec.networks,
        from_networks.as_deref(),
        &names(to, None),
        |t| {
            is_test(t)
                .then(|| format!("{t:?} is an isolated test network: map it under test_networks"))
        },
    )?;
    check_pairs(
        "test_networks",
        &spec.test_networks,
        from_networks.as_deref(),
        &names(to, None),
        |t| (!is_test(t)).then(|| format!("{t:?} is not a test network; tests must stay isolated")),
    )?;
    check_pairs(
        "folders",
        &spec.folders,
        from.map(|f| f.folders.as_slice()),
        &to.folders,
        |_| None,
    )?;
    check_pairs(
        "resource_pools",
        &spec.resource_pools,
        from.map(|f| f.resource_pools.as_slice()),
        &to.resource_pools,
        |_| None,
    )?;
    check_pairs(
        "datastores",
        &spec.datastores,
        from.map(|f| f.datastores.as_slice()),
        &to.datastores,
        |_| None,
    )?;
    let mut subnets: Vec<Cidr> = Vec::new();
    for (i, rule) in spec.ip_rules.iter().enumerate() {
        let field = format!("ip_rules[{i}]");
        let (from, _) = check_rule(&field, rule)?;
        if let Some(other) = subnets
            .iter()
            .position(|s| s.contains(from.addr) || from.contains(s.addr))
        {
            return Err(Invalid::new(
                &format!("{field}.from_subnet"),
                format!("overlaps ip_rules[{other}]: an address must match one rule"),
            ));
        }
        subnets.push(from);
    }
    let mut vms = HashSet::new();
    for (i, o) in spec.ip_overrides.iter().enumerate() {
        let field = format!("ip_overrides[{i}]");
        if !vms.insert(o.vm_id.as_str()) {
            return Err(Invalid::new(
                &format!("{field}.vm_id"),
                format!("{} has two overrides; put its NICs in one", o.vm_id),
            ));
        }
        let count = nic_count(&o.vm_id);
        if from.is_some() && count.is_none() {
            return Err(Invalid::new(
                &format!("{field}.vm_id"),
                format!("the protected site has no VM {}", o.vm_id),
            ));
        }
        let mut nics = HashSet::new();
        for (j, nic) in o.nics.iter().enumerate() {
            let nic_field = format!("{field}.nics[{j}]");
            if !nics.insert(nic.nic) {
                return Err(Invalid::new(
                    &format!("{nic_field}.nic"),
                    format!("NIC {} is listed twice", nic.nic),
                ));
            }
            check_nic_address(&nic_field, nic, count)?;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{IpOverride, NetworkInfo};

    fn inventory(site: &str, prefix: &str) -> Inventory {
        Inventory {
            site: site.into(),
            networks: vec![
                NetworkInfo {
                    name: format!("{prefix}-prod"),
                    test: false,
                    subnet: None,
                    gateway: None,
                },
                NetworkInfo {
                    name: format!("{prefix}-test"),
                    test: true,
                    subnet: None,
                    gateway: None,
                },
            ],
            folders: vec![format!("{prefix}-apps")],
            resource_pools: vec![format!("{prefix}-pool")],
            datastores: vec![format!("{prefix}-ds")],
        }
    }

    pub(crate) fn pair(s: &str, t: &str) -> Pair {
        Pair {
            source: s.into(),
            target: t.into(),
        }
    }

    pub(crate) fn good() -> MappingSpec {
        MappingSpec {
            from_site: "a".into(),
            to_site: "b".into(),
            networks: vec![pair("a-prod", "b-prod")],
            test_networks: vec![pair("a-prod", "b-test")],
            folders: vec![pair("a-apps", "b-apps")],
            resource_pools: vec![pair("a-pool", "b-pool")],
            datastores: vec![pair("a-ds", "b-ds")],
            ip_rules: vec![IpRule {
                from_subnet: "10.1.0.0/24".into(),
                from_gateway: Some("10.1.0.1".into()),
                to_subnet: "10.2.0.0/24".into(),
                to_gateway: Some("10.2.0.1".into()),
                dns: vec!["10.2.0.53".into()],
            }],
            ip_overrides: vec![],
        }
    }

    fn check(spec: &MappingSpec) -> Result<(), Invalid> {
        validate(
            spec,
            Some(&inventory("a", "a")),
            &inventory("b", "b"),
            |vm| (vm == "a.web").then_some(2),
        )
    }

    #[test]
    fn a_good_mapping_passes() {
        check(&good()).unwrap();
    }

    #[test]
    fn each_rule_names_its_field() {
        type Break = fn(&mut MappingSpec);
        let cases: Vec<(Break, &str)> = vec![
            (
                |m| m.networks[0].target = "nope".into(),
                "networks[0].target",
            ),
            (
                |m| m.networks[0].source = "nope".into(),
                "networks[0].source",
            ),
            (
                |m| m.networks[0].target = "b-test".into(),
                "networks[0].target",
            ),
            (
                |m| m.test_networks[0].target = "b-prod".into(),
                "test_networks[0].target",
            ),
            (
                |m| m.folders.push(pair("a-apps", "b-apps")),
                "folders[1].source",
            ),
            (
                |m| m.resource_pools[0].target = "x".into(),
                "resource_pools[0].target",
            ),
            (
                |m| m.datastores[0].source = "".into(),
                "datastores[0].source",
            ),
            (
                |m| m.ip_rules[0].from_subnet = "10.1.0.0".into(),
                "ip_rules[0].from_subnet",
            ),
            (
                |m| m.ip_rules[0].to_subnet = "10.2.0.0/16".into(),
                "ip_rules[0].to_subnet",
            ),
            (
                |m| m.ip_rules[0].to_subnet = "fd00::/24".into(),
                "ip_rules[0].to_subnet",
            ),
            (
                |m| m.ip_rules[0].to_gateway = Some("10.3.0.1".into()),
                "ip_rules[0].to_gateway",
            ),
            (
                |m| m.ip_rules[0].dns = vec!["dns".into()],
                "ip_rules[0].dns[0]",
            ),
            (
                |m| {
                    let r = m.ip_rules[0].clone();
                    m.ip_rules.push(r)
                },
                "ip_rules[1].from_subnet",
            ),
            (
                |m| {
                    m.ip_overrides.push(IpOverride {
                        vm_id: "a.web".into(),
                        nics: vec![NicAddress {
                            nic: 2,
                            ipv4: Some("10.2.0.9/24".into()),
                            ..Default::default()
                        }],
                    })
                },
                "ip_overrides[0].nics[0].nic",
            ),
            (
                |m| {
                    m.ip_overrides.push(IpOverride {
                        vm_id: "a.web".into(),
                        nics: vec![NicAddress {
                            nic: 0,
                            ipv4: Some("fd00::9/64".into()),
                            ..Default::default()
                        }],
                    })
                },
                "ip_overrides[0].nics[0].ipv4",
            ),
            (
                |m| {
                    m.ip_overrides.push(IpOverride {
                        vm_id: "a.ghost".into(),
                        nics: vec![],
                    })
                },
                "ip_overrides[0].vm_id",
            ),
        ];
        for (i, (break_it, field)) in cases.into_iter().enumerate() {
            let mut spec = good();
            break_it(&mut spec);
            let err = check(&spec).expect_err(&format!("case {i} should fail"));
            assert_eq!(err.field, field, "case {i}: {}", err.message);
            assert!(!err.message.is_empty());
        }
    }
}
