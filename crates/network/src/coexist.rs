//! Living beside another firewall. berth's rules are in its own nftables table, but a packet
//! is dropped if any base chain of its hook drops it: with Docker's `FORWARD` policy `DROP`
//! (iptables) the containers' egress, their replies and the published ports that cross
//! `FORWARD` die there, and with `br_netfilter` loaded (Docker loads it) so does the
//! traffic between two containers on berth's bridge. berth then puts its accepts (above
//! them, RETURNs for traffic to Docker's own bridges, so Docker's isolation still applies)
//! where
//! Docker tells its users to (`DOCKER-USER`), or at the head of `FORWARD` when there is no
//! such chain and the policy drops. Each rule is marked with the comment `berth:<bridge>`,
//! added once (checked with `-C`) and never moves or removes anyone else's.

use std::process::{Command, Stdio};

fn iptables(args: &[&str]) -> Option<bool> {
    Command::new("iptables")
        .arg("-w")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()
        .map(|s| s.success())
}

fn forward_policy_drops() -> bool {
    Command::new("iptables")
        .args(["-w", "-S", "FORWARD"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .is_some_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == "-P FORWARD DROP" || l == "-P FORWARD REJECT")
        })
}

/// Makes sure `bridge`'s traffic passes the iptables `FORWARD` chain: the chain berth put
/// its rules in (`DOCKER-USER` or `FORWARD`), or `None` when nothing was needed (no
/// iptables, or a `FORWARD` that accepts). Errors are iptables' refusals.
pub fn open_forward(bridge: &str) -> Result<Option<&'static str>, String> {
    let chain = match iptables(&["-S", "DOCKER-USER"]) {
        None => return Ok(None),
        // DOCKER-USER counts only when FORWARD jumps to it.
        Some(true) if iptables(&["-C", "FORWARD", "-j", "DOCKER-USER"]) == Some(true) => {
            "DOCKER-USER"
        }
        Some(_) if forward_policy_drops() => "FORWARD",
        Some(_) => return Ok(None),
    };
    let comment = format!("berth:{bridge}");
    let rules = accepts(bridge);
    // Each is inserted at the head, so they are listed in reverse: the final order is the
    // two RETURNs (traffic from berth's bridge to Docker's own bridges goes on to Docker's
    // isolation rules, as if berth's accepts were not there), then the accepts.
    for rule in rules {
        let mut spec: Vec<&str> = rule.clone();
        spec.extend(["-m", "comment", "--comment", &comment]);
        let mut check = vec!["-C", chain];
        check.extend(&spec);
        if iptables(&check) == Some(true) {
            continue;
        }
        let mut insert = vec!["-I", chain, "1"];
        insert.extend(&spec);
        if iptables(&insert) != Some(true) {
            return Err(format!(
                "iptables refused berth's accept in {chain} ({})",
                spec.join(" ")
            ));
        }
    }
    Ok(Some(chain))
}

/// Removes berth's accepts for `bridge` from wherever [`open_forward`] put them (a network
/// removed). Rules of anyone else are never touched: each is deleted by its full spec,
/// comment included.
pub fn close_forward(bridge: &str) -> Result<(), String> {
    let comment = format!("berth:{bridge}");
    for chain in ["DOCKER-USER", "FORWARD"] {
        for rule in accepts(bridge) {
            let mut spec = vec!["-D", chain];
            spec.extend(rule);
            spec.extend(["-m", "comment", "--comment", &comment]);
            // Deleted while there is one (a rule added twice by hand goes too).
            let mut left = 8;
            while left > 0 && iptables(&spec) == Some(true) {
                left -= 1;
            }
        }
    }
    Ok(())
}

/// berth's accepts for `bridge`, without their comment.
fn accepts(bridge: &str) -> [Vec<&str>; 5] {
    [
        vec![
            "-o",
            bridge,
            "-m",
            "conntrack",
            "--ctstate",
            "RELATED,ESTABLISHED,DNAT",
            "-j",
            "ACCEPT",
        ],
        vec!["-i", bridge, "-j", "ACCEPT"],
        vec!["-i", bridge, "-o", "br-+", "-j", "RETURN"],
        vec!["-i", bridge, "-o", "docker+", "-j", "RETURN"],
        // Inserted last, so first: a bridge of berth's user-defined networks is named
        // `br-...` as Docker's are, and its own traffic must not fall to the RETURN above.
        vec!["-i", bridge, "-o", bridge, "-j", "ACCEPT"],
    ]
}
