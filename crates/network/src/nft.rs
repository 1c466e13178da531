//! berth's packet rules: one nftables table of its own (`inet berth` for the default
//! bridge), rewritten whole in one transaction by the `nft` binary (`nft -f -` applies a
//! script atomically). berth never lists, flushes or reorders another table's rules.
//!
//! The binary (Debian's `nftables`, installed by scripts/deps.sh) is run only when rules
//! change: when a bridge is set up, not on a container's start.

use std::io::{self, Write};
use std::process::{Command, Stdio};

use std::net::Ipv6Addr;

use crate::ipam::{Subnet, Subnet6};

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
/// enters it from elsewhere but answers and published ports. The `forward` chain's rules
/// match interfaces, not addresses: they hold for both families.
///
/// A network with IPv6 (`v6`: its subnet and gateway) has the same for IPv6: masquerade of
/// its subnet leaving by another interface (Docker 28 NATs IPv6 by default), hairpin, and
/// the maps `tcp6`, `tcp6ip`, `tcp6same` (and `udp6…`) of ports published on IPv6 host
/// addresses, looked up for a local destination from anything but a link-local source
/// (which cannot be forwarded: as Docker). IPv6 has no `route_localnet`, and a connection
/// from `::1` cannot be masqueraded: the answer, given back `::1` as its destination
/// before routing (by the bridge's netfilter hook itself with `br_netfilter`), is dropped
/// by the kernel as a loopback address on another interface. So the host's packets from
/// `::1` to `::1` and a published port have their source set to the network's gateway
/// before connection tracking sees them (`raw_output`, which looks the port up in sets of
/// the maps' keys, `tcp6k`, `tcp6ipk`, `tcp6samek`, kept beside them: some kernels, Debian
/// 12's 6.1 among them, refuse a lookup in a map that asks for no data), and the
/// answers, once connection
/// tracking gave them back their source `::1`, their destination `::1` (`loopback6`, after
/// the kernel's NAT at local input): the host's program sees `::1` both ways, the
/// container the gateway. Those answers carry the container's address until NAT at local
/// input, so the raw chain's drops of `::1` (and 127/8) arriving anywhere but `lo` never
/// hit them, and stop what the DNAT would otherwise let through (with `br_netfilter` the
/// nat prerouting hook runs before the kernel's own check of loopback addresses).
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
    v6: Option<(Subnet6, Ipv6Addr)>,
    internal: bool,
    icc: bool,
) -> String {
    let no_icc = if icc {
        String::new()
    } else {
        format!("\t\tiifname \"{bridge}\" oifname \"{bridge}\" drop\n")
    };
    let (mut out, fence) = if internal {
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
    for proto in crate::ports::PROTOS {
        dnat.push_str(&format!(
            "\t\tfib daddr type local dnat ip to ip daddr . {proto} dport map @{proto}4ip\n\
             \t\tfib daddr type local dnat ip to {proto} dport map @{proto}4\n\
             \t\tfib daddr type local dnat ip to {proto} dport map @{proto}4same\n"
        ));
    }
    let mut maps = String::new();
    for proto in crate::ports::PROTOS {
        maps.push_str(&format!(
            "\tmap {proto}4 {{ type inet_service : ipv4_addr . inet_service; }}\n\
             \tmap {proto}4ip {{ type ipv4_addr . inet_service : ipv4_addr . inet_service; }}\n\
             \tmap {proto}4same {{ type inet_service : ipv4_addr; flags interval; }}\n"
        ));
    }
    let mut hairpin = String::new();
    let mut loopback6 = String::new();
    if let Some((subnet6, gateway6)) = v6 {
        for proto in crate::ports::PROTOS {
            maps.push_str(&format!(
                "\tmap {proto}6 {{ type inet_service : ipv6_addr . inet_service; }}\n\
                 \tmap {proto}6ip {{ type ipv6_addr . inet_service : ipv6_addr . inet_service; }}\n\
                 \tmap {proto}6same {{ type inet_service : ipv6_addr; flags interval; }}\n\
                 \tset {proto}6k {{ type inet_service; }}\n\
                 \tset {proto}6ipk {{ type ipv6_addr . inet_service; }}\n\
                 \tset {proto}6samek {{ type inet_service; flags interval; }}\n"
            ));
            let local = "fib daddr type local ip6 saddr != fe80::/10";
            dnat.push_str(&format!(
                "\t\t{local} dnat ip6 to ip6 daddr . {proto} dport map @{proto}6ip\n\
                 \t\t{local} dnat ip6 to {proto} dport map @{proto}6\n\
                 \t\t{local} dnat ip6 to {proto} dport map @{proto}6same\n"
            ));
        }
        hairpin =
            format!("\t\tip6 saddr {subnet6} ip6 daddr {subnet6} ct status dnat masquerade\n");
        if !internal {
            out.push_str(&format!(
                "\t\tip6 saddr {subnet6} oifname != \"{bridge}\" masquerade\n"
            ));
            let mut from_lo = String::new();
            for proto in crate::ports::PROTOS {
                let lo = "ip6 saddr ::1 ip6 daddr ::1";
                from_lo.push_str(&format!(
                    "\t\t{lo} {proto} dport @{proto}6k ip6 saddr set {gateway6}\n\
                     \t\t{lo} {proto} dport @{proto}6samek ip6 saddr set {gateway6}\n\
                     \t\tip6 saddr ::1 ip6 daddr ::1 ip6 daddr . {proto} dport @{proto}6ipk ip6 saddr set {gateway6}\n"
                ));
            }
            loopback6 = format!(
                "\tchain raw_output {{\n\
                 \t\ttype filter hook output priority raw; policy accept;\n\
                 {from_lo}\
                 \t}}\n\
                 \tchain loopback6 {{\n\
                 \t\ttype filter hook input priority 200; policy accept;\n\
                 \t\tiifname \"{bridge}\" ip6 saddr ::1 ip6 daddr {gateway6} ip6 daddr set ::1\n\
                 \t}}\n"
            );
        }
    }
    format!(
        "table inet {table}\n\
         delete table inet {table}\n\
         table inet {table} {{\n\
         {maps}\
         \tchain raw {{\n\
         \t\ttype filter hook prerouting priority raw; policy accept;\n\
         \t\tiifname != \"lo\" ip daddr 127.0.0.0/8 drop\n\
         \t\tiifname != \"lo\" ip saddr 127.0.0.0/8 drop\n\
         \t\tiifname != \"lo\" ip6 daddr ::1 drop\n\
         \t\tiifname != \"lo\" ip6 saddr ::1 drop\n\
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
         {hairpin}\
         \t}}\n\
         {loopback6}\
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
            None,
            false,
            true,
        );
        assert!(rules.starts_with("table inet berth\ndelete table inet berth\n"));
        assert!(rules.contains("ip saddr 172.18.0.0/16 oifname != \"berth0\" masquerade"));
        assert!(rules.contains("iifname != \"lo\" ip daddr 127.0.0.0/8 drop"));
        // Loopback addresses arriving anywhere but lo, both families, both ways: else a
        // DNAT of ::1 (prerouting runs before the kernel's own check, with br_netfilter)
        // reaches a port published on [::1] from another bridge (CVE-2020-8558's twin),
        // and route_localnet lets a container pass as 127.0.0.1 to the host's services.
        assert!(rules.contains("iifname != \"lo\" ip saddr 127.0.0.0/8 drop"));
        assert!(rules.contains("iifname != \"lo\" ip6 daddr ::1 drop"));
        assert!(rules.contains("iifname != \"lo\" ip6 saddr ::1 drop"));
        assert!(rules.contains("oifname \"berth0\" drop"));
        assert!(!rules.contains("iifname \"berth0\" oifname != \"berth0\" drop"));
        assert!(!rules.contains("iifname \"berth0\" oifname \"berth0\" drop"));
        let quiet = bridge_rules(
            "t",
            "br-1",
            "10.7.0.0/24".parse().unwrap(),
            None,
            false,
            false,
        );
        assert!(quiet.contains("iifname \"br-1\" oifname \"br-1\" drop"));
    }

    #[test]
    fn an_internal_network_has_no_masquerade_and_no_way_out() {
        let rules = bridge_rules(
            "berth-br-1",
            "br-1",
            "10.7.0.0/24".parse().unwrap(),
            None,
            true,
            true,
        );
        assert!(!rules.contains("masquerade\n\t\tip saddr 127"));
        assert!(!rules.contains("oifname != \"br-1\" masquerade"));
        assert!(rules.contains("iifname \"br-1\" oifname != \"br-1\" drop"));
        assert!(rules.contains("oifname \"br-1\" iifname != \"br-1\" drop"));
    }

    fn v6() -> Option<(Subnet6, Ipv6Addr)> {
        Some((
            "fd00:be:1::/64".parse().unwrap(),
            "fd00:be:1::1".parse().unwrap(),
        ))
    }

    #[test]
    fn a_network_without_ipv6_has_no_ipv6_rule_but_the_loopback_drops() {
        let rules = bridge_rules(
            "berth-b",
            "b",
            "10.7.0.0/24".parse().unwrap(),
            None,
            false,
            true,
        );
        let ip6: Vec<&str> = rules.lines().filter(|l| l.contains("ip6")).collect();
        assert_eq!(
            ip6,
            [
                "\t\tiifname != \"lo\" ip6 daddr ::1 drop",
                "\t\tiifname != \"lo\" ip6 saddr ::1 drop"
            ],
            "{rules}"
        );
        assert!(!rules.contains("tcp6"), "{rules}");
    }

    #[test]
    fn ipv6_is_masqueraded_published_and_answered_from_loopback() {
        let rules = bridge_rules(
            "berth-b",
            "b",
            "10.7.0.0/24".parse().unwrap(),
            v6(),
            false,
            true,
        );
        // Both families' NAT.
        assert!(rules.contains("ip saddr 10.7.0.0/24 oifname != \"b\" masquerade"));
        assert!(rules.contains("ip6 saddr fd00:be:1::/64 oifname != \"b\" masquerade"));
        assert!(rules.contains(
            "ip6 saddr fd00:be:1::/64 ip6 daddr fd00:be:1::/64 ct status dnat masquerade"
        ));
        for proto in crate::ports::PROTOS {
            for map in ["6", "6ip", "6same"] {
                assert!(
                    rules.contains(&format!("map {proto}{map} {{")),
                    "{proto}{map}"
                );
            }
            // Looked up in prerouting and output alike.
            let dnat = format!(
                "fib daddr type local ip6 saddr != fe80::/10 dnat ip6 to {proto} dport map @{proto}6\n"
            );
            assert_eq!(rules.matches(&dnat).count(), 2, "{rules}");
            assert!(rules.contains(&format!(
                "ip6 saddr ::1 ip6 daddr ::1 {proto} dport @{proto}6k ip6 saddr set fd00:be:1::1"
            )));
        }
        assert!(rules.contains("type filter hook output priority raw;"));
        assert!(
            rules.contains("iifname \"b\" ip6 saddr ::1 ip6 daddr fd00:be:1::1 ip6 daddr set ::1")
        );
        // The forward chain is by interface: the same for both families.
        assert!(rules.contains("\t\toifname \"b\" drop\n"));
    }

    #[test]
    fn an_internal_ipv6_network_has_no_way_out_either() {
        let rules = bridge_rules(
            "berth-b",
            "b",
            "10.7.0.0/24".parse().unwrap(),
            v6(),
            true,
            true,
        );
        assert!(!rules.contains("oifname != \"b\" masquerade"), "{rules}");
        assert!(!rules.contains("raw_output"), "{rules}");
        assert!(rules.contains("iifname \"b\" oifname != \"b\" drop"));
        assert!(rules.contains("oifname \"b\" iifname != \"b\" drop"));
    }
}
