//! IP customization: the settings from `ferry.ip=` go on the guest's NICs in
//! order (`eth0`, `eth1`, …) with busybox `ip`. A VM started without a NIC
//! for a setting gets the address on the loopback device instead, so the
//! setting is still applied and read back in the guest's own kernel. What is
//! reported is what the kernel shows afterwards, not what was asked.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use ferry_guest::boot::IpSetting;

const IP: &str = "/bin/busybox";

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new(IP)
        .arg("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Applies every setting and returns `NIC=ADDR/PREFIX` for those the kernel
/// then shows.
pub fn apply(settings: &[IpSetting], sys_net: &Path) -> Vec<String> {
    if let Err(e) = ip(&["link", "set", "lo", "up"]) {
        say!("{e}");
    }
    let mut seen = Vec::new();
    for (i, setting) in settings.iter().enumerate() {
        let eth = format!("eth{i}");
        let dev = if sys_net.join(&eth).exists() {
            eth.as_str()
        } else {
            "lo"
        };
        let cidr = setting.cidr();
        let mut steps = vec![
            vec!["link", "set", dev, "up"],
            vec!["addr", "add", cidr.as_str(), "dev", dev],
        ];
        let gateway = setting.gateway.map(|g| g.to_string());
        if let (Some(gw), false) = (&gateway, dev == "lo") {
            steps.push(vec![
                "route",
                "add",
                "default",
                "via",
                gw.as_str(),
                "dev",
                dev,
            ]);
        }
        for step in steps {
            if let Err(e) = ip(&step) {
                say!("{e}");
            }
        }
        match ip(&["-o", "addr", "show", "dev", dev]) {
            Ok(shown) if shows(&shown, setting.addr, setting.prefix) => {
                say!("{} on {dev}", setting.reported());
                seen.push(setting.reported());
            }
            Ok(_) => say!("{cidr} is not on {dev} after adding it"),
            Err(e) => say!("{e}"),
        }
    }
    seen
}

/// Whether `ip -o addr show` output holds `addr/prefix`.
fn shows(output: &str, addr: IpAddr, prefix: u8) -> bool {
    output.lines().any(|line| {
        let mut words = line.split_whitespace();
        while let Some(w) = words.next() {
            if (w == "inet" || w == "inet6")
                && let Some((a, p)) = words.next().and_then(|c| c.split_once('/'))
                && a.parse::<IpAddr>().is_ok_and(|a| a == addr)
                && p.parse::<u8>().is_ok_and(|p| p == prefix)
            {
                return true;
            }
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_back_from_ip_output() {
        let out = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
                   1: lo    inet 10.0.1.11/24 scope global lo\\       valid_lft forever\n\
                   1: lo    inet6 fd00::5/64 scope global \\       valid_lft forever\n";
        assert!(shows(out, "10.0.1.11".parse().unwrap(), 24));
        assert!(shows(out, "fd00:0::5".parse().unwrap(), 64));
        assert!(!shows(out, "10.0.1.11".parse().unwrap(), 16));
        assert!(!shows(out, "10.0.1.12".parse().unwrap(), 24));
    }
}
