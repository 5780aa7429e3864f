//! The `ferry.*` parameters on a guest's kernel command line: which VM it is,
//! the IP settings a recovery run hands it, and its workload's rates. The
//! site writes them with [`BootParams::kernel_args`]; the agent reads them
//! back from `/proc/cmdline` with [`BootParams::from_cmdline`].
//!
//! `ferry.ip=NIC:ADDR/PREFIX[:GW][;...]`: an IPv6 address holds colons too,
//! so the address ends at the `/` and the prefix at the next colon. A NIC name
//! with spaces is written quoted, as the kernel's own parser expects.

use std::net::IpAddr;

/// The built-in guest's default rates (`GuestSeed::default`).
const DEFAULT_RECORDS_PER_SECOND: f64 = 5.0;
const DEFAULT_OVERWRITE_KIB_PER_SECOND: u64 = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct BootParams {
    pub vm: String,
    pub ips: Vec<IpSetting>,
    pub records_per_second: f64,
    pub overwrite_kib_per_second: u64,
}

/// One NIC's IP customization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpSetting {
    /// The network the NIC is on, as in the VM record.
    pub nic: String,
    pub addr: IpAddr,
    pub prefix: u8,
    pub gateway: Option<IpAddr>,
}

impl IpSetting {
    /// `ADDR/PREFIX`, as a VM record's NIC holds it.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.addr, self.prefix)
    }

    /// `NIC=ADDR/PREFIX`, as a heartbeat reports it.
    pub fn reported(&self) -> String {
        format!("{}={}", self.nic, self.cidr())
    }

    /// From a NIC name, `ADDR/PREFIX` and an optional gateway.
    pub fn new(nic: &str, cidr: &str, gateway: Option<&str>) -> Result<Self, BootError> {
        let bad = |why: &str| BootError::Ip(format!("{nic}:{cidr}: {why}"));
        if nic.is_empty() || nic.contains([':', ';', '"', '\n', '\t', '=']) {
            return Err(bad(
                "the NIC name is empty or holds one of : ; \" = or a control character",
            ));
        }
        let (addr, prefix) = cidr
            .split_once('/')
            .ok_or_else(|| bad("no /PREFIX after the address"))?;
        let addr: IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| bad("the prefix is not a number"))?;
        if prefix > if addr.is_ipv4() { 32 } else { 128 } {
            return Err(bad("the prefix is too long for the address"));
        }
        let gateway = match gateway {
            Some(gw) => Some(
                gw.parse()
                    .map_err(|_| bad("the gateway is not an IP address"))?,
            ),
            None => None,
        };
        Ok(Self {
            nic: nic.to_string(),
            addr,
            prefix,
            gateway,
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BootError {
    #[error("the kernel command line has no {0}")]
    Missing(&'static str),
    #[error("bad IP setting {0}")]
    Ip(String),
    #[error("bad {0}: {1:?}")]
    Value(&'static str, String),
}

impl BootParams {
    /// The `ferry.*` part of a kernel command line.
    pub fn kernel_args(&self) -> Result<String, BootError> {
        if self.vm.is_empty() || self.vm.contains(|c: char| c.is_whitespace() || c == '"') {
            return Err(BootError::Value("ferry.vm", self.vm.clone()));
        }
        if !self.records_per_second.is_finite() || self.records_per_second < 0.0 {
            return Err(BootError::Value(
                "ferry.records",
                self.records_per_second.to_string(),
            ));
        }
        let mut ips = Vec::with_capacity(self.ips.len());
        for ip in &self.ips {
            // Re-validated: the fields are public.
            let checked = IpSetting::new(
                &ip.nic,
                &ip.cidr(),
                ip.gateway.map(|g| g.to_string()).as_deref(),
            )?;
            let mut one = format!("{}:{}", checked.nic, checked.cidr());
            if let Some(gw) = checked.gateway {
                one.push_str(&format!(":{gw}"));
            }
            ips.push(one);
        }
        let ips = ips.join(";");
        let ips = if ips.contains(' ') {
            format!("\"{ips}\"")
        } else {
            ips
        };
        let mut args = format!(
            "ferry.vm={} ferry.records={} ferry.overwrite_kib={}",
            self.vm, self.records_per_second, self.overwrite_kib_per_second
        );
        if !ips.is_empty() {
            args.push_str(&format!(" ferry.ip={ips}"));
        }
        Ok(args)
    }

    /// Reads the `ferry.*` parameters of a whole kernel command line; any
    /// bad value is an error.
    pub fn from_cmdline(cmdline: &str) -> Result<Self, BootError> {
        let (params, mut problems) = Self::from_cmdline_lenient(cmdline)?;
        match problems.is_empty() {
            true => Ok(params),
            false => Err(problems.swap_remove(0)),
        }
    }

    /// As [`BootParams::from_cmdline`], but only a missing `ferry.vm` is an
    /// error: a bad rate keeps its default and a bad IP setting is left out,
    /// each returned as a problem. The agent boots this way, so that a VM
    /// with one bad setting still runs and says what was wrong.
    pub fn from_cmdline_lenient(cmdline: &str) -> Result<(Self, Vec<BootError>), BootError> {
        let mut params = Self {
            vm: String::new(),
            ips: Vec::new(),
            records_per_second: DEFAULT_RECORDS_PER_SECOND,
            overwrite_kib_per_second: DEFAULT_OVERWRITE_KIB_PER_SECOND,
        };
        let mut problems = Vec::new();
        let mut vm = None;
        for (key, value) in words(cmdline) {
            match key.as_str() {
                "ferry.vm" => vm = Some(value),
                "ferry.records" => match value.parse::<f64>() {
                    Ok(r) if r.is_finite() && r >= 0.0 => params.records_per_second = r,
                    _ => problems.push(BootError::Value("ferry.records", value)),
                },
                "ferry.overwrite_kib" => match value.parse() {
                    Ok(k) => params.overwrite_kib_per_second = k,
                    Err(_) => problems.push(BootError::Value("ferry.overwrite_kib", value)),
                },
                "ferry.ip" => {
                    params.ips.clear();
                    for one in value.split(';').filter(|s| !s.is_empty()) {
                        match parse_ip(one) {
                            Ok(ip) => params.ips.push(ip),
                            Err(e) => problems.push(e),
                        }
                    }
                }
                _ => {}
            }
        }
        params.vm = vm
            .filter(|v| !v.is_empty())
            .ok_or(BootError::Missing("ferry.vm"))?;
        Ok((params, problems))
    }
}

/// `NIC:ADDR/PREFIX[:GW]`.
fn parse_ip(one: &str) -> Result<IpSetting, BootError> {
    let bad = || BootError::Ip(format!("{one}: not NIC:ADDR/PREFIX[:GW]"));
    let (nic, rest) = one.split_once(':').ok_or_else(bad)?;
    let (addr, after) = rest.split_once('/').ok_or_else(bad)?;
    let (prefix, gateway) = match after.split_once(':') {
        Some((p, gw)) => (p, Some(gw)),
        None => (after, None),
    };
    IpSetting::new(nic, &format!("{addr}/{prefix}"), gateway)
}

/// `key=value` words as the kernel splits them: on whitespace outside double
/// quotes, the quotes themselves dropped.
fn words(cmdline: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in cmdline.chars().chain(std::iter::once(' ')) {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    let w = std::mem::take(&mut word);
                    let (k, v) = w.split_once('=').unwrap_or((&w, ""));
                    out.push((k.to_string(), v.to_string()));
                }
            }
            c => word.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_args_round_trip_through_a_command_line() {
        let params = BootParams {
            vm: "vm-7".into(),
            ips: vec![
                IpSetting::new("lan", "10.0.1.11/24", Some("10.0.1.1")).unwrap(),
                IpSetting::new("VM Network", "fd00::5/64", Some("fd00::1")).unwrap(),
                IpSetting::new("backup", "192.168.9.2/16", None).unwrap(),
            ],
            records_per_second: 2.5,
            overwrite_kib_per_second: 128,
        };
        let args = params.kernel_args().unwrap();
        assert!(args.contains("ferry.ip=\"lan:10.0.1.11/24:10.0.1.1;VM Network:fd00::5/64:fd00::1;backup:192.168.9.2/16\""), "{args}");
        let cmdline = format!("console=ttyS0 panic=-1 {args} quiet\n");
        assert_eq!(BootParams::from_cmdline(&cmdline).unwrap(), params);
        assert_eq!(params.ips[1].reported(), "VM Network=fd00::5/64");
    }

    #[test]
    fn defaults_and_bad_values() {
        let p = BootParams::from_cmdline("ferry.vm=a").unwrap();
        assert_eq!(
            (p.records_per_second, p.overwrite_kib_per_second),
            (5.0, 64)
        );
        assert!(p.ips.is_empty());
        assert_eq!(
            BootParams::from_cmdline("console=ttyS0"),
            Err(BootError::Missing("ferry.vm"))
        );
        for bad in [
            "ferry.vm=a ferry.records=-1",
            "ferry.vm=a ferry.records=NaN",
            "ferry.vm=a ferry.overwrite_kib=x",
            "ferry.vm=a ferry.ip=lan:10.0.0.1",
            "ferry.vm=a ferry.ip=lan:10.0.0.1/33",
            "ferry.vm=a ferry.ip=lan:10.0.0.300/24",
            "ferry.vm=a ferry.ip=lan:10.0.0.1/24:gw",
            "ferry.vm=a ferry.ip=10.0.0.1/24",
        ] {
            assert!(BootParams::from_cmdline(bad).is_err(), "{bad}");
        }
        assert!(IpSetting::new("a;b", "10.0.0.1/8", None).is_err());

        // The agent's way: the good settings kept, the bad ones said.
        let (p, problems) = BootParams::from_cmdline_lenient(
            "ferry.vm=a ferry.records=x ferry.ip=VM Network:10.0.0.5/24;lan:10.0.1.2/24",
        )
        .unwrap();
        assert_eq!(p.records_per_second, 5.0);
        assert_eq!(p.ips.len(), 0, "an unquoted space ends the value");
        assert_eq!(problems.len(), 2, "{problems:?}");
        let (p, problems) =
            BootParams::from_cmdline_lenient("ferry.vm=a ferry.ip=bad;lan:10.0.1.2/24").unwrap();
        assert_eq!(p.ips[0].reported(), "lan=10.0.1.2/24");
        assert_eq!(problems.len(), 1);
        assert!(BootParams::from_cmdline_lenient("ferry.ip=lan:10.0.1.2/24").is_err());
        let mut p = BootParams::from_cmdline("ferry.vm=a").unwrap();
        p.vm = "two words".into();
        assert!(p.kernel_args().is_err());
    }
}
