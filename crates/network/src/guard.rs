//! Forwarding without making the host a router. berth's bridges need the kernel to forward
//! (`net.ipv4.ip_forward`, IPv6's `forwarding`); turned on, the kernel forwards between
//! *every* pair of interfaces, and a host with two NICs would route between its networks
//! (a hospital's clinical and office VLANs). Docker answers with iptables' `FORWARD`
//! policy `DROP` when it turned forwarding on itself. berth does the same, in its own
//! table: when berth turned a family's forwarding on (it was off: a marker under /run says
//! so, and goes with a reboot, as the setting does), the table `inet berth-guard` drops
//! forwarded traffic of that family that neither enters nor leaves a container bridge:
//! berth's (marked by their interface group, so every berthd on the host writes the same
//! table) or another engine's by its usual names (Docker's `docker0` and `br-*`, libvirt's
//! `virbr*`, podman's and CNI's `cni*`/`podman*`), so that an engine started later is not
//! cut off. A host that forwarded before berth came is left as it was.

use std::io;
use std::path::Path;

use crate::nft;

/// The interface group of berth's bridges (`ip link set dev X group 48711`).
pub const GROUP: u32 = 0xbe47;

/// The markers: berth turned this family's forwarding on.
const MARKER_V4: &str = "/run/berth-turned-on-ip_forward";
const MARKER_V6: &str = "/run/berth-turned-on-ipv6-forwarding";

/// The sysctls of a family's forwarding.
fn sysctls(v6: bool) -> &'static [&'static str] {
    if v6 {
        &[
            "/proc/sys/net/ipv6/conf/all/forwarding",
            "/proc/sys/net/ipv6/conf/default/forwarding",
        ]
    } else {
        &["/proc/sys/net/ipv4/ip_forward"]
    }
}

/// Turns a family's forwarding on (remembering when it was off), then writes the guard.
pub fn forward(v6: bool) -> io::Result<()> {
    let marker = if v6 { MARKER_V6 } else { MARKER_V4 };
    for path in sysctls(v6) {
        let on = std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1");
        if !on {
            // The marker first: a crash between the two leaves a guard, never a router.
            std::fs::write(marker, b"")?;
            std::fs::write(path, "1")?;
        }
    }
    write()
}

/// The guard's rules, for the families berth turned on.
pub fn rules(v4: bool, v6: bool) -> String {
    let mut drops = String::new();
    if v4 {
        drops.push_str("\t\tmeta nfproto ipv4 drop\n");
    }
    if v6 {
        drops.push_str("\t\tmeta nfproto ipv6 drop\n");
    }
    let mut bridges = format!("\t\tiifgroup {GROUP} accept\n\t\toifgroup {GROUP} accept\n");
    for name in ["docker*", "br-*", "virbr*", "cni*", "podman*"] {
        bridges.push_str(&format!(
            "\t\tiifname \"{name}\" accept\n\t\toifname \"{name}\" accept\n"
        ));
    }
    format!(
        "table inet berth-guard\n\
         delete table inet berth-guard\n\
         table inet berth-guard {{\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority filter - 10; policy accept;\n\
         {bridges}\
         {drops}\
         \t}}\n\
         }}\n"
    )
}

/// Writes the guard for the families berth turned on; none: nothing (no table).
pub fn write() -> io::Result<()> {
    let (v4, v6) = (Path::new(MARKER_V4).exists(), Path::new(MARKER_V6).exists());
    if !v4 && !v6 {
        return Ok(());
    }
    nft::apply(&rules(v4, v6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_drops_only_the_families_berth_turned_on_and_lets_bridges_through() {
        let both = rules(true, true);
        assert!(both.contains("iifgroup 48711 accept") && both.contains("oifgroup 48711 accept"));
        assert!(both.contains("iifname \"docker*\" accept"));
        let accepts = both.find("oifname \"podman*\" accept").unwrap();
        assert!(
            both.find("meta nfproto ipv4 drop").unwrap() > accepts,
            "drops come last"
        );
        assert!(both.contains("meta nfproto ipv6 drop"));
        let v4 = rules(true, false);
        assert!(v4.contains("meta nfproto ipv4 drop") && !v4.contains("ipv6 drop"));
    }
}
