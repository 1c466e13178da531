//! Living beside firewalld. Its nftables table (`inet firewalld`) rejects forwarded traffic
//! from an interface of no zone that it knows (Debian's `public` zone forwards nothing), so
//! with firewalld running a container's egress, and the traffic between two containers once
//! `br_netfilter` is loaded, die in its `filter_FORWARD` chain, whatever berth's own table
//! accepts. As Docker does with its `docker` zone, berth puts its bridges in a zone of its
//! own, `berth`, whose target is `ACCEPT`: traffic that comes from a container's bridge is
//! accepted by firewalld, and berth's own table still decides what is forwarded (isolation
//! between networks, `--internal`). Traffic into a container from outside passes firewalld
//! as a published port (`ct status dnat accept`) or not at all, as before. As with Docker's
//! zone, the `ACCEPT` target also lets containers reach every service of the host itself
//! through the bridge's address (firewalld's `public` zone would reject them); berth's
//! table has no input filter of its own.
//!
//! firewalld with its iptables backend (`FirewallBackend=iptables`) has no such table:
//! berth cannot see its zones, and says so at a bridge's set-up ([`process_runs`]).
//!
//! The zone and each bridge are added to firewalld's permanent configuration as well as to
//! the running one, so that a `firewall-cmd --reload` or a firewalld restart keeps them.
//! berth talks to firewalld through its own command line, `firewall-cmd` (present wherever
//! firewalld is), only when a bridge is made or removed and when the periodic check finds a
//! bridge missing from firewalld's rules (after firewalld started, for instance): never on
//! a container's start.

use std::process::{Command, Stdio};

/// berth's firewalld zone.
pub const ZONE: &str = "berth";

/// The dispatch of firewalld's forward chain by incoming interface, when its table exists.
fn forward_zones() -> Option<String> {
    let out = Command::new("nft")
        .args(["list", "chain", "inet", "firewalld", "filter_FORWARD_ZONES"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The zone firewalld's loaded rules send `bridge`'s traffic to, when one names it or a
/// wildcard of an administrator's (`br-+`, listed as `"br-*"`) covers it.
fn zone_of<'a>(zones: &'a str, bridge: &str) -> Option<&'a str> {
    zones.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("iifname \"")?;
        let (name, rest) = rest.split_once('"')?;
        let zone = rest.trim().strip_prefix("goto filter_FWD_")?;
        let covers = match name.strip_suffix('*') {
            Some(prefix) => bridge.starts_with(prefix),
            None => name == bridge,
        };
        covers.then_some(zone)
    })
}

/// What [`open`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// firewalld's table is not loaded (no firewalld, or its iptables backend).
    NoTable,
    /// The bridge was in a zone already: berth's, or one an administrator chose.
    Already,
    /// The bridge was put in berth's zone.
    Added,
}

/// Whether a firewalld process runs (read from /proc; no firewalld call): with
/// [`Placed::NoTable`], firewalld on its iptables backend, whose zones berth cannot see.
pub fn process_runs() -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|p| {
        std::fs::read_to_string(p.path().join("comm")).is_ok_and(|c| c.trim() == "firewalld")
    })
}

/// How long one firewall-cmd may take (a firewalld that does not answer on D-Bus would
/// otherwise hold a network's creation for D-Bus's own 25 s, per call).
const CALL_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

fn firewall_cmd(args: &[&str]) -> Result<String, String> {
    run_limited("firewall-cmd", args)
}

/// Runs `program` with `args`, killed after [`CALL_LIMIT`].
fn run_limited(program: &str, args: &[&str]) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("firewalld is running but {program} could not be run: {e}"))?;
    let deadline = std::time::Instant::now() + CALL_LIMIT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{program} {} did not answer within {} s",
                    args.join(" "),
                    CALL_LIMIT.as_secs()
                ));
            }
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        return Ok(said);
    }
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(format!(
        "{program} {} failed: {}",
        args.join(" "),
        if err.is_empty() { said } else { err }
    ))
}

/// Makes sure firewalld, when its rules are loaded, lets `bridge`'s traffic through: the
/// bridge is put in berth's zone (made first, with target `ACCEPT`, when missing), unless
/// it is in a zone already (berth's, or one an administrator chose for it, left alone).
pub fn open(bridge: &str) -> Result<Placed, String> {
    let Some(zones) = forward_zones() else {
        return Ok(Placed::NoTable);
    };
    if zone_of(&zones, bridge).is_some() {
        return Ok(Placed::Already);
    }
    let known = firewall_cmd(&["--permanent", "--get-zones"])?;
    if !known.split_whitespace().any(|z| z == ZONE) {
        firewall_cmd(&["--permanent", &format!("--new-zone={ZONE}")])?;
        firewall_cmd(&[
            "--permanent",
            &format!("--zone={ZONE}"),
            "--set-target=ACCEPT",
        ])?;
    }
    let active = firewall_cmd(&["--get-zones"])?;
    if !active.split_whitespace().any(|z| z == ZONE) {
        // A zone made in the permanent configuration reaches the running one by a reload.
        firewall_cmd(&["--reload"])?;
    }
    let zone = format!("--zone={ZONE}");
    let iface = format!("--add-interface={bridge}");
    let permanent = firewall_cmd(&["--permanent", &zone, "--list-interfaces"])?;
    if !permanent.split_whitespace().any(|i| i == bridge) {
        firewall_cmd(&["--permanent", &zone, &iface])?;
    }
    firewall_cmd(&[&zone, &iface])?;
    Ok(Placed::Added)
}

/// Takes `bridge` out of berth's zone (its network was removed), in the running and the
/// permanent configuration; with firewalld stopped, from the permanent one by
/// `firewall-offline-cmd` (only when berth's zone file names it).
pub fn close(bridge: &str) -> Result<(), String> {
    let Some(zones) = forward_zones() else {
        let file = format!("/etc/firewalld/zones/{ZONE}.xml");
        let named = std::fs::read_to_string(file)
            .is_ok_and(|x| x.contains(&format!("<interface name=\"{bridge}\"/>")));
        if named {
            run_limited(
                "firewall-offline-cmd",
                &[
                    &format!("--zone={ZONE}"),
                    &format!("--remove-interface={bridge}"),
                ],
            )?;
        }
        return Ok(());
    };
    let zone = format!("--zone={ZONE}");
    let iface = format!("--remove-interface={bridge}");
    let permanent = firewall_cmd(&["--permanent", &zone, "--list-interfaces"])?;
    if permanent.split_whitespace().any(|i| i == bridge) {
        firewall_cmd(&["--permanent", &zone, &iface])?;
    }
    if zone_of(&zones, bridge) == Some(ZONE) {
        firewall_cmd(&[&zone, &iface])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bridge_s_zone_is_found_by_its_exact_name() {
        let zones = "table inet firewalld {\n\tchain filter_FORWARD_ZONES {\n\
                     \t\tiifname \"berth0\" goto filter_FWD_berth\n\
                     \t\tiifname \"br-1\" goto filter_FWD_public\n\
                     \t\tgoto filter_FWD_public\n\t}\n}\n";
        assert_eq!(zone_of(zones, "berth0"), Some("berth"));
        assert_eq!(zone_of(zones, "berth"), None);
        assert_eq!(zone_of(zones, "br-1"), Some("public"));
        assert_eq!(zone_of(zones, "br-2"), None);
        let wild = "\t\tiifname \"br-*\" goto filter_FWD_trusted\n";
        assert_eq!(zone_of(wild, "br-2"), Some("trusted"));
        assert_eq!(zone_of(wild, "berth0"), None);
    }
}
