//! berth's packet rules: one nftables table of its own (`inet berth` for the default
//! bridge), rewritten whole in one transaction by the `nft` binary (`nft -f -` applies a
//! script atomically). berth never lists, flushes or reorders another table's rules.
//!
//! The binary (Debian's `nftables`, installed by scripts/deps.sh) is run only when rules
//! change: when a bridge is set up, not on a container's start.

use std::io::{self, Write};
use std::process::{Command, Stdio};

use crate::ipam::Subnet;

/// The table of the daemon whose default bridge is `bridge`: `berth` for `berth0`, else
/// `berth-<bridge>` (test daemons run beside each other with bridges of their own).
pub fn table_name(bridge: &str) -> String {
    if bridge == crate::DEFAULT_BRIDGE {
        "berth".into()
    } else {
        format!("berth-{bridge}")
    }
}

/// The rules of a bridge network: masquerade for what leaves the host from its subnet,
/// forwarding to and from the bridge accepted, and the published ports: maps from a host
/// port (`tcp4`, `udp4`: on every address of the host) or a host address and port
/// (`tcp4ip`, `udp4ip`) to a container's address and port, or from a range of host ports
/// to a container's address with the same ports (`tcp4same`, `udp4same`: `-p
/// 20000-20999:20000-20999` is one interval), looked up for traffic to a
/// local address arriving (prerouting) or made on the host (output). Traffic from the
/// host's loopback (127.0.0.1, with `route_localnet` on the bridge) and a container's own
/// traffic sent back over the bridge (hairpin) is masqueraded, so the answers come back
/// through the host. The hairpin rule matches by addresses, not by the output interface:
/// (Before any of it, at priority raw: a packet for 127.0.0.0/8 that did not come from
/// `lo` is dropped. Without that, a neighbour or a container could send one to the host,
/// and the DNAT or `route_localnet` would let it reach a port published on 127.0.0.1 or a
/// service the host binds to localhost only: CVE-2020-8558, moby#45610.) Forwarding into
/// the bridge is allowed for published ports (DNAT), answers, and the bridge's own
/// containers; nothing else reaches a container's unpublished ports from outside.
/// The hairpin rule, again, matches by addresses, not by the output interface:
/// with `br_netfilter` loaded (Docker loads it) the packet sent back to its own sender is
/// handled as bridged, and its output interface is the bridge's port, not the bridge.
///
/// An internal network (`internal`) has no masquerade and no forwarding at all between its
/// bridge and any other interface: its containers reach each other and the host's address
/// on the bridge, nothing else, and nothing else reaches them but the host itself.
/// Two bridges' containers never reach each other: each bridge's `forward` chain drops what
/// enters it from elsewhere but answers and published ports.
///
/// Without inter-container communication (`icc` false, Docker's `enable_icc=false`) the
/// bridge's ports are isolated in the bridge itself (lib.rs), and what would be routed
/// from the bridge back into it through the host (a container with NET_ADMIN routing to
/// its neighbour via the gateway; a hairpin to a neighbour's published port) is dropped,
/// as Docker's `-i br -o br -j DROP`.
pub fn bridge_rules(
    table: &str,
    bridge: &str,
    subnet: Subnet,
    internal: bool,
    icc: bool,
) -> String {
    let no_icc = if icc {
        String::new()
    } else {
        format!("\t\tiifname \"{bridge}\" oifname \"{bridge}\" drop\n")
    };
    let (out, fence) = if internal {
        (
            String::new(),
            format!(
                "\t\tiifname \"{bridge}\" oifname != \"{bridge}\" drop\n\
                 \t\toifname \"{bridge}\" iifname != \"{bridge}\" drop\n"
            ),
        )
    } else {
        (
            format!(
                "\t\tip saddr {subnet} oifname != \"{bridge}\" masquerade\n\
                 \t\tip saddr 127.0.0.0/8 oifname \"{bridge}\" masquerade\n"
            ),
            String::new(),
        )
    };
    let mut dnat = String::new();
    for proto in ["tcp", "udp"] {
        dnat.push_str(&format!(
            "\t\tfib daddr type local dnat ip to ip daddr . {proto} dport map @{proto}4ip\n\
             \t\tfib daddr type local dnat ip to {proto} dport map @{proto}4\n\
             \t\tfib daddr type local dnat ip to {proto} dport map @{proto}4same\n"
        ));
    }
    let mut maps = String::new();
    for proto in ["tcp", "udp"] {
        maps.push_str(&format!(
            "\tmap {proto}4 {{ type inet_service : ipv4_addr . inet_service; }}\n\
             \tmap {proto}4ip {{ type ipv4_addr . inet_service : ipv4_addr . inet_service; }}\n\
             \tmap {proto}4same {{ type inet_service : ipv4_addr; flags interval; }}\n"
        ));
    }
    format!(
        "table inet {table}\n\
         delete table inet {table}\n\
         table inet {table} {{\n\
         {maps}\
         \tchain raw {{\n\
         \t\ttype filter hook prerouting priority raw; policy accept;\n\
         \t\tiifname != \"lo\" ip daddr 127.0.0.0/8 drop\n\
         \t}}\n\
         \tchain prerouting {{\n\
         \t\ttype nat hook prerouting priority dstnat; policy accept;\n\
         {dnat}\
         \t}}\n\
         \tchain output {{\n\
         \t\ttype nat hook output priority -100; policy accept;\n\
         {dnat}\
         \t}}\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         {out}\
         \t\tip saddr {subnet} ip daddr {subnet} ct status dnat masquerade\n\
         \t}}\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority filter; policy accept;\n\
         {fence}\
         {no_icc}\
         \t\toifname \"{bridge}\" ct state established,related accept\n\
         \t\toifname \"{bridge}\" ct status dnat accept\n\
         \t\tiifname \"{bridge}\" accept\n\
         \t\toifname \"{bridge}\" drop\n\
         \t}}\n\
         }}\n"
    )
}

/// Applies `script` in one transaction (in the calling thread's network namespace: `nft`
/// is started from it).
pub fn apply(script: &str) -> io::Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                io::Error::new(
                    e.kind(),
                    "nft is not installed (Debian's nftables package; scripts/deps.sh installs \
                     it): berth's bridge networks need it",
                )
            } else {
                e
            }
        })?;
    // The child is waited for even when the write fails (no zombie).
    let written = child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(script.as_bytes());
    let out = child.wait_with_output()?;
    written?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "nft refused berth's rules: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Removes the table, if there is one.
pub fn delete_table(table: &str) -> io::Result<()> {
    apply(&format!("table inet {table}\ndelete table inet {table}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_bridge_has_berth_s_table_and_others_their_own() {
        assert_eq!(table_name("berth0"), "berth");
        assert_eq!(table_name("bt12"), "berth-bt12");
    }

    #[test]
    fn the_rules_masquerade_the_subnet_leaving_by_another_interface() {
        let rules = bridge_rules(
            "berth",
            "berth0",
            "172.18.0.0/16".parse().unwrap(),
            false,
            true,
        );
        assert!(rules.starts_with("table inet berth\ndelete table inet berth\n"));
        assert!(rules.contains("ip saddr 172.18.0.0/16 oifname != \"berth0\" masquerade"));
        assert!(rules.contains("iifname != \"lo\" ip daddr 127.0.0.0/8 drop"));
        assert!(rules.contains("oifname \"berth0\" drop"));
        assert!(!rules.contains("iifname \"berth0\" oifname != \"berth0\" drop"));
        assert!(!rules.contains("iifname \"berth0\" oifname \"berth0\" drop"));
        let quiet = bridge_rules("t", "br-1", "10.7.0.0/24".parse().unwrap(), false, false);
        assert!(quiet.contains("iifname \"br-1\" oifname \"br-1\" drop"));
    }

    #[test]
    fn an_internal_network_has_no_masquerade_and_no_way_out() {
        let rules = bridge_rules(
            "berth-br-1",
            "br-1",
            "10.7.0.0/24".parse().unwrap(),
            true,
            true,
        );
        assert!(!rules.contains("masquerade\n\t\tip saddr 127"));
        assert!(!rules.contains("oifname != \"br-1\" masquerade"));
        assert!(rules.contains("iifname \"br-1\" oifname != \"br-1\" drop"));
        assert!(rules.contains("oifname \"br-1\" iifname != \"br-1\" drop"));
    }
}
