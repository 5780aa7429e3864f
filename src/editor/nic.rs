//! The one form for a NIC's fixed address, shared by the mappings' per-VM
//! overrides and a plan VM's manual IP customization.

use ferry_api::types::NicAddress;

use crate::editor::check::{list, optional};
use crate::editor::form::{Field, Form};

/// The NIC index and address fields, after whatever picks the VM or mode.
pub fn fields(nic: &NicAddress, index_hint: &'static str) -> Vec<Field> {
    vec![
        Field::text("nic", "NIC index", &nic.nic.to_string(), index_hint),
        Field::text(
            "ipv4",
            "IPv4",
            nic.ipv4.as_deref().unwrap_or(""),
            "10.20.1.50/24",
        ),
        Field::text(
            "ipv4_gateway",
            "IPv4 gateway",
            nic.ipv4_gateway.as_deref().unwrap_or(""),
            "10.20.1.1",
        ),
        Field::text(
            "ipv6",
            "IPv6",
            nic.ipv6.as_deref().unwrap_or(""),
            "fd00:20::50/64",
        ),
        Field::text(
            "ipv6_gateway",
            "IPv6 gateway",
            nic.ipv6_gateway.as_deref().unwrap_or(""),
            "fd00:20::1",
        ),
        Field::text("dns", "DNS servers", &nic.dns.join(", "), "10.20.0.53"),
    ]
}

/// The address the fields describe, or the NIC index's error.
pub fn parse<F>(form: &Form<F>) -> Result<NicAddress, Vec<(&'static str, String)>> {
    let index = form.value("nic").trim();
    let nic: usize = index
        .parse()
        .map_err(|_| vec![("nic", format!("{index:?} is not a NIC index"))])?;
    Ok(NicAddress {
        nic,
        ipv4: optional(form.value("ipv4")),
        ipv4_gateway: optional(form.value("ipv4_gateway")),
        ipv6: optional(form.value("ipv6")),
        ipv6_gateway: optional(form.value("ipv6_gateway")),
        dns: list(form.value("dns")),
    })
}
