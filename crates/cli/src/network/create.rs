//! `network create`: docker 28's flags, its request body and its client-side checks of the
//! IPAM flags (`--subnet`, `--ip-range`, `--gateway`, `--aux-address` paired up into one
//! `IPAM.Config` entry per subnet), with its messages.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::Result;
use berth_client::Client;
use clap::{ArgAction, Args};
use serde_json::{json, Value};

use super::StringSlice;
use crate::outln;

/// `network create`.
#[derive(Debug, Clone, Args)]
pub struct NetworkCreateArgs {
    /// Driver to manage the Network
    #[arg(short = 'd', long, default_value = "bridge")]
    pub driver: String,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// Set metadata on a network
    #[arg(long, value_parser = validate_label)]
    pub label: Vec<String>,
    /// Restrict external access to the network
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    pub internal: bool,
    /// Enable or disable IPv4 address assignment
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub ipv4: Option<bool>,
    /// Enable or disable IPv6 address assignment
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub ipv6: Option<bool>,
    /// Enable manual container attachment
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    pub attachable: bool,
    /// Create swarm routing-mesh network
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    pub ingress: bool,
    /// Control the network's scope
    #[arg(long, default_value = "", hide_default_value = true)]
    pub scope: String,
    /// Create a configuration only network
    #[arg(long = "config-only", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    pub config_only: bool,
    /// The network from which to copy the configuration
    #[arg(long = "config-from", default_value = "", hide_default_value = true)]
    pub config_from: String,
    /// IP Address Management Driver
    #[arg(long = "ipam-driver", default_value = "default")]
    pub ipam_driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long, value_parser = StringSlice::parse)]
    pub subnet: Vec<StringSlice>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range", value_parser = StringSlice::parse)]
    pub ip_range: Vec<StringSlice>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long, value_parser = StringSlice::parse)]
    pub gateway: Vec<StringSlice>,
    /// Auxiliary IPv4 or IPv6 addresses used by Network driver
    #[arg(long = "aux-address")]
    pub aux_address: Vec<String>,
    /// Set IPAM driver specific options
    #[arg(long = "ipam-opt")]
    pub ipam_opt: Vec<String>,
    /// The network's name
    #[arg(value_name = "NETWORK")]
    pub name: String,
}

/// docker's `ValidateLabel`: a key (leading blanks ignored) that is neither empty nor holds
/// a blank; the value is anything.
pub fn validate_label(value: &str) -> Result<String, String> {
    let key = value.split_once('=').map_or(value, |(k, _)| k);
    let key = key.trim_start_matches([' ', '\t']);
    if key.is_empty() {
        return Err(format!("invalid label '{value}': empty name"));
    }
    if key.contains([' ', '\t']) {
        return Err(format!("label '{key}' contains whitespaces"));
    }
    Ok(value.to_string())
}

/// docker's `MapOpts`/`ConvertKVStringsToMap`: `k=v` (or `k` for an empty value), the last
/// of a key winning; sorted, as Go encodes a map.
fn kv_map(values: &[String]) -> BTreeMap<String, String> {
    values
        .iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// An address prefix as Go's `net.ParseCIDR` reads it: the address as written and the
/// network it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Go's `net.ParseCIDR`, with its message.
fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let bad = || format!("invalid CIDR address: {s}");
    let (addr, bits) = s.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    if bits.is_empty() || !bits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = bits.parse().ok().filter(|p| *p <= max).ok_or_else(bad)?;
    Ok(Cidr { addr, prefix })
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is (Go's `To4`).
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Cidr {
    /// Go's `IPNet.Contains` (an IPv4-mapped prefix works on IPv4 addresses, as in Go).
    fn contains(&self, ip: IpAddr) -> bool {
        let (net, prefix) = match (self.addr, unmap(self.addr)) {
            (IpAddr::V6(_), v4 @ IpAddr::V4(_)) => (v4, self.prefix.saturating_sub(96)),
            (addr, _) => (addr, self.prefix),
        };
        let masked = |a: u128, width: u32| {
            let p = u32::from(prefix);
            if p == 0 {
                0
            } else {
                a >> (width - p)
            }
        };
        match (net, unmap(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                masked(u32::from(n).into(), 32) == masked(u32::from(a).into(), 32)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => masked(n.into(), 128) == masked(a.into(), 128),
            _ => false,
        }
    }
}

/// docker's `subnetMatches`: whether `data` (an address, or an address with a prefix, whose
/// address counts) lies in `subnet`. An address that does not parse matches nothing.
fn subnet_matches(subnet: &str, data: &str) -> Result<bool, String> {
    let net = parse_cidr(subnet).map_err(|e| format!("invalid subnet: {e}"))?;
    let ip = if data.contains('/') {
        Some(parse_cidr(data)?.addr)
    } else {
        data.parse::<IpAddr>().ok()
    };
    Ok(ip.is_some_and(|ip| net.contains(ip)))
}

/// One `IPAM.Config` entry.
#[derive(Debug, Default)]
struct Pool {
    subnet: String,
    ip_range: String,
    gateway: String,
    aux: BTreeMap<String, String>,
}

impl Pool {
    /// docker's `IPAMConfig`, its empty fields left out.
    fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        for (key, value) in [
            ("Subnet", &self.subnet),
            ("IPRange", &self.ip_range),
            ("Gateway", &self.gateway),
        ] {
            if !value.is_empty() {
                m.insert(key.into(), json!(value));
            }
        }
        if !self.aux.is_empty() {
            m.insert("AuxiliaryAddresses".into(), json!(self.aux));
        }
        Value::Object(m)
    }
}

/// docker's `createIPAMConfig`: one pool per subnet (overlapping subnets refused), each
/// range, gateway and auxiliary address put in the subnet that holds it. A lone subnet is
/// not parsed here (docker leaves that to the daemon).
fn ipam_pools(
    subnets: &[String],
    ranges: &[String],
    gateways: &[String],
    aux: &BTreeMap<String, String>,
) -> Result<Vec<Pool>, String> {
    if subnets.len() < ranges.len() || subnets.len() < gateways.len() {
        return Err("every ip-range or gateway must have a corresponding subnet".into());
    }
    let mut pools: Vec<Pool> = Vec::new();
    for s in subnets {
        for k in &pools {
            if subnet_matches(s, &k.subnet)? || subnet_matches(&k.subnet, s)? {
                return Err("multiple overlapping subnet configuration is not supported".into());
            }
        }
        pools.push(Pool {
            subnet: s.clone(),
            ..Default::default()
        });
    }
    for r in ranges {
        let mut found = false;
        for pool in &mut pools {
            parse_cidr(r)?;
            if !subnet_matches(&pool.subnet, r)? {
                continue;
            }
            if !pool.ip_range.is_empty() {
                return Err(format!(
                    "cannot configure multiple ranges ({r}, {}) on the same subnet ({})",
                    pool.ip_range, pool.subnet
                ));
            }
            pool.ip_range = r.clone();
            found = true;
        }
        if !found {
            return Err(format!("no matching subnet for range {r}"));
        }
    }
    for g in gateways {
        let mut found = false;
        for pool in &mut pools {
            if !subnet_matches(&pool.subnet, g)? {
                continue;
            }
            if !pool.gateway.is_empty() {
                return Err(format!(
                    "cannot configure multiple gateways ({g}, {}) for the same subnet ({})",
                    pool.gateway, pool.subnet
                ));
            }
            pool.gateway = g.clone();
            found = true;
        }
        if !found {
            return Err(format!("no matching subnet for gateway {g}"));
        }
    }
    for (key, address) in aux {
        let mut found = false;
        for pool in &mut pools {
            if subnet_matches(&pool.subnet, address)? {
                pool.aux.insert(key.clone(), address.clone());
                found = true;
            }
        }
        if !found {
            return Err(format!("no matching subnet for aux-address {address}"));
        }
    }
    Ok(pools)
}

/// The `POST /networks/create` body docker 28 sends for these flags (API >= 1.44: no
/// `CheckDuplicate`), or docker's client-side error.
pub fn create_request(args: &NetworkCreateArgs) -> Result<Value, String> {
    let pools = ipam_pools(
        &StringSlice::flatten(&args.subnet),
        &StringSlice::flatten(&args.ip_range),
        &StringSlice::flatten(&args.gateway),
        &kv_map(&args.aux_address),
    )?;
    let mut body = serde_json::Map::new();
    body.insert("Driver".into(), json!(args.driver));
    body.insert("Scope".into(), json!(args.scope));
    // docker sends these only when the flag was given.
    if let Some(v4) = args.ipv4 {
        body.insert("EnableIPv4".into(), json!(v4));
    }
    if let Some(v6) = args.ipv6 {
        body.insert("EnableIPv6".into(), json!(v6));
    }
    body.insert(
        "IPAM".into(),
        json!({
            "Driver": args.ipam_driver,
            "Options": kv_map(&args.ipam_opt),
            "Config": pools.iter().map(Pool::to_json).collect::<Vec<_>>(),
        }),
    );
    body.insert("Internal".into(), json!(args.internal));
    body.insert("Attachable".into(), json!(args.attachable));
    body.insert("Ingress".into(), json!(args.ingress));
    body.insert("ConfigOnly".into(), json!(args.config_only));
    let config_from = (!args.config_from.is_empty()).then(|| json!({"Network": args.config_from}));
    body.insert("ConfigFrom".into(), json!(config_from));
    body.insert("Options".into(), json!(kv_map(&args.opt)));
    body.insert("Labels".into(), json!(kv_map(&args.label)));
    body.insert("Name".into(), json!(args.name));
    Ok(Value::Object(body))
}

/// `network create`: prints the new network's full id, as docker.
pub async fn create(client: &Client, args: &NetworkCreateArgs) -> Result<i32> {
    let body = create_request(args).map_err(anyhow::Error::msg)?;
    let resp = client.network_create(&body).await?;
    outln(resp["Id"].as_str().unwrap_or(""));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: NetworkCreateArgs,
    }

    fn parse(args: &[&str]) -> NetworkCreateArgs {
        let mut v = vec!["create"];
        v.extend_from_slice(args);
        Wrap::try_parse_from(v).unwrap().args
    }

    fn body(args: &[&str]) -> Value {
        create_request(&parse(args)).unwrap()
    }

    fn error(args: &[&str]) -> String {
        create_request(&parse(args)).unwrap_err()
    }

    /// What docker 28 sent for `docker network create n1` (API 1.44), key order included.
    #[test]
    fn bare_create_is_dockers_body() {
        let docker = r#"{"Driver": "bridge", "Scope": "", "IPAM": {"Driver": "default",
            "Options": {}, "Config": []}, "Internal": false, "Attachable": false,
            "Ingress": false, "ConfigOnly": false, "ConfigFrom": null, "Options": {},
            "Labels": {}, "Name": "n1"}"#;
        let docker: Value = serde_json::from_str(docker).unwrap();
        let ours = body(&["n1"]);
        assert_eq!(ours, docker);
        assert_eq!(
            serde_json::to_string(&ours).unwrap(),
            serde_json::to_string(&docker).unwrap()
        );
    }

    /// docker network create --subnet 10.9.0.0/24 --gateway 10.9.0.1
    ///   --ip-range 10.9.0.128/25 --internal --ipv6 --attachable --label a=b --label c
    ///   -o com.docker.network.bridge.name=br9 --ipam-driver default
    ///   --aux-address host1=10.9.0.5 n2
    #[test]
    fn every_common_flag_is_dockers_body() {
        let docker = r#"{"Driver": "bridge", "Scope": "", "EnableIPv6": true,
            "IPAM": {"Driver": "default", "Options": {}, "Config": [{"Subnet": "10.9.0.0/24",
            "IPRange": "10.9.0.128/25", "Gateway": "10.9.0.1",
            "AuxiliaryAddresses": {"host1": "10.9.0.5"}}]}, "Internal": true,
            "Attachable": true, "Ingress": false, "ConfigOnly": false, "ConfigFrom": null,
            "Options": {"com.docker.network.bridge.name": "br9"},
            "Labels": {"a": "b", "c": ""}, "Name": "n2"}"#;
        let ours = body(&[
            "--subnet",
            "10.9.0.0/24",
            "--gateway",
            "10.9.0.1",
            "--ip-range",
            "10.9.0.128/25",
            "--internal",
            "--ipv6",
            "--attachable",
            "--label",
            "a=b",
            "--label",
            "c",
            "-o",
            "com.docker.network.bridge.name=br9",
            "--ipam-driver",
            "default",
            "--aux-address",
            "host1=10.9.0.5",
            "n2",
        ]);
        let docker: Value = serde_json::from_str(docker).unwrap();
        assert_eq!(ours, docker);
        assert_eq!(
            serde_json::to_string(&ours).unwrap(),
            serde_json::to_string(&docker).unwrap()
        );
    }

    /// docker network create --subnet 10.9.0.0/24 --subnet fd00:1::/64 --gateway fd00:1::1
    ///   --gateway 10.9.0.1 --ip-range 10.9.0.0/25 n3
    /// and the comma-separated form (`--subnet a,b --gateway x,y`).
    #[test]
    fn gateways_and_ranges_pair_with_their_subnets() {
        let docker: Value = serde_json::from_str(
            r#"[{"Subnet": "10.9.0.0/24", "IPRange": "10.9.0.0/25", "Gateway": "10.9.0.1"},
                {"Subnet": "fd00:1::/64", "Gateway": "fd00:1::1"}]"#,
        )
        .unwrap();
        let ours = body(&[
            "--subnet",
            "10.9.0.0/24",
            "--subnet",
            "fd00:1::/64",
            "--gateway",
            "fd00:1::1",
            "--gateway",
            "10.9.0.1",
            "--ip-range",
            "10.9.0.0/25",
            "n3",
        ]);
        assert_eq!(ours["IPAM"]["Config"], docker);
        let ours = body(&[
            "--subnet",
            "10.1.0.0/24,10.2.0.0/24",
            "--gateway",
            "10.1.0.1,10.2.0.1",
            "n1",
        ]);
        let docker: Value = serde_json::from_str(
            r#"[{"Subnet": "10.1.0.0/24", "Gateway": "10.1.0.1"},
                {"Subnet": "10.2.0.0/24", "Gateway": "10.2.0.1"}]"#,
        )
        .unwrap();
        assert_eq!(ours["IPAM"]["Config"], docker);
    }

    /// docker network create --ipv4=false --ipv6=false --scope local --config-only
    ///   --config-from x --ingress --ipam-opt a=b -o novalue n4
    #[test]
    fn rarer_flags_are_dockers_body() {
        let docker = r#"{"Driver": "bridge", "Scope": "local", "EnableIPv4": false,
            "EnableIPv6": false, "IPAM": {"Driver": "default", "Options": {"a": "b"},
            "Config": []}, "Internal": false, "Attachable": false, "Ingress": true,
            "ConfigOnly": true, "ConfigFrom": {"Network": "x"}, "Options": {"novalue": ""},
            "Labels": {}, "Name": "n4"}"#;
        let ours = body(&[
            "--ipv4=false",
            "--ipv6=false",
            "--scope",
            "local",
            "--config-only",
            "--config-from",
            "x",
            "--ingress",
            "--ipam-opt",
            "a=b",
            "-o",
            "novalue",
            "n4",
        ]);
        assert_eq!(ours, serde_json::from_str::<Value>(docker).unwrap());
    }

    /// Subnets are left to the daemon when nothing is paired with them, as docker does.
    #[test]
    fn a_lone_subnet_is_sent_as_given() {
        assert_eq!(
            body(&["--subnet", "bogus", "n5"])["IPAM"]["Config"],
            json!([{"Subnet": "bogus"}])
        );
        assert_eq!(
            body(&["--subnet", "10.0.0.5/24", "--gateway", "10.0.0.1", "n5"])["IPAM"]["Config"],
            json!([{"Subnet": "10.0.0.5/24", "Gateway": "10.0.0.1"}])
        );
    }

    #[test]
    fn ipam_mistakes_give_dockers_messages() {
        for (args, message) in [
            (
                &["--gateway", "10.0.0.1"][..],
                "every ip-range or gateway must have a corresponding subnet",
            ),
            (
                &["--subnet", "10.0.0.0/24", "--gateway", "10.1.0.1"],
                "no matching subnet for gateway 10.1.0.1",
            ),
            (
                &["--subnet", "10.0.0.0/24", "--subnet", "10.0.0.0/16"],
                "multiple overlapping subnet configuration is not supported",
            ),
            (
                &["--subnet", "10.0.0.0/24", "--subnet", "10.0.0.0/24"],
                "multiple overlapping subnet configuration is not supported",
            ),
            (
                &[
                    "--subnet",
                    "10.0.0.0/24",
                    "--ip-range",
                    "10.0.0.0/26",
                    "--ip-range",
                    "10.0.0.64/26",
                ],
                "every ip-range or gateway must have a corresponding subnet",
            ),
            (
                &[
                    "--subnet",
                    "10.0.0.0/24,10.1.0.0/24",
                    "--ip-range",
                    "10.0.0.0/26,10.0.0.64/26",
                ],
                "cannot configure multiple ranges (10.0.0.64/26, 10.0.0.0/26) on the same subnet (10.0.0.0/24)",
            ),
            (
                &[
                    "--subnet",
                    "10.0.0.0/24,10.1.0.0/24",
                    "--gateway",
                    "10.0.0.1,10.0.0.2",
                ],
                "cannot configure multiple gateways (10.0.0.2, 10.0.0.1) for the same subnet (10.0.0.0/24)",
            ),
            (
                &["--subnet", "10.0.0.0/24", "--aux-address", "a=10.1.0.1"],
                "no matching subnet for aux-address 10.1.0.1",
            ),
            (
                &["--subnet", "10.0.0.0/24", "--ip-range", "bogus"],
                "invalid CIDR address: bogus",
            ),
            (
                &["--subnet", "10.0.0.0/24", "--ip-range", "10.1.0.0/26"],
                "no matching subnet for range 10.1.0.0/26",
            ),
            (
                &["--subnet", "10.0.0.0/24", "--gateway", "bogus"],
                "no matching subnet for gateway bogus",
            ),
            (
                &["--subnet", "bogus", "--gateway", "10.0.0.1"],
                "invalid subnet: invalid CIDR address: bogus",
            ),
            (&["--aux-address", "a"], "no matching subnet for aux-address "),
            (
                &["--subnet", "10.0.0.0/24", "--aux-address", "a=bogus"],
                "no matching subnet for aux-address bogus",
            ),
        ] {
            let mut v = args.to_vec();
            v.push("n5");
            assert_eq!(error(&v), message, "{args:?}");
        }
    }

    #[test]
    fn labels_validate_as_docker() {
        assert_eq!(validate_label("a=b"), Ok("a=b".into()));
        assert_eq!(validate_label("  a"), Ok("  a".into()));
        assert_eq!(
            validate_label("=x"),
            Err("invalid label '=x': empty name".into())
        );
        assert_eq!(
            validate_label("a b=x"),
            Err("label 'a b' contains whitespaces".into())
        );
    }

    #[test]
    fn prefixes_contain_as_go() {
        let c = |s: &str| parse_cidr(s).unwrap();
        assert!(c("10.0.0.0/8").contains("10.255.0.1".parse().unwrap()));
        assert!(!c("10.0.0.0/8").contains("11.0.0.1".parse().unwrap()));
        assert!(c("0.0.0.0/0").contains("1.2.3.4".parse().unwrap()));
        assert!(!c("0.0.0.0/0").contains("::1".parse().unwrap()));
        assert!(c("fd00::/8").contains("fd12::1".parse().unwrap()));
        assert!(c("10.0.0.0/8").contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(c("::ffff:10.0.0.0/104").contains("10.1.2.3".parse().unwrap()));
        for bad in ["10.0.0.0", "10.0.0.0/33", "10.0.0.0/+8", "10.0.0.0/", "x/8"] {
            assert_eq!(
                parse_cidr(bad).unwrap_err(),
                format!("invalid CIDR address: {bad}")
            );
        }
    }
}
