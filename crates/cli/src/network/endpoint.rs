//! A container's endpoint on a network as the docker CLI sends it: `EndpointSettings` for
//! `network connect` and for each `--network` of `run`/`create`, and the `--network` flag
//! itself (a name, or docker's advanced `name=NET,alias=A,ip=IP,...` form).
//!
//! Bodies are built field for field as docker CLI 28 sends them (checked against what it
//! sent to a logging fake daemon; the unit tests hold that JSON), so berthd sees one shape
//! whichever client made the request.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// `EndpointIPAMConfig`: the addresses asked for. Empty fields are left out, as docker's
/// `omitempty` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointIpam {
    pub ipv4_address: String,
    pub ipv6_address: String,
    pub link_local_ips: Vec<String>,
}

impl EndpointIpam {
    fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        if !self.ipv4_address.is_empty() {
            m.insert("IPv4Address".into(), json!(self.ipv4_address));
        }
        if !self.ipv6_address.is_empty() {
            m.insert("IPv6Address".into(), json!(self.ipv6_address));
        }
        if !self.link_local_ips.is_empty() {
            m.insert("LinkLocalIPs".into(), json!(self.link_local_ips));
        }
        Value::Object(m)
    }
}

/// The part of docker's `EndpointSettings` a client fills in. `None` goes on the wire as
/// `null`, as docker's nil slices and maps do; the two differ in docker's bodies (connect
/// sends `"Aliases": []`, run sends `null`), so both are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    pub ipam: Option<EndpointIpam>,
    pub links: Option<Vec<String>>,
    pub aliases: Option<Vec<String>>,
    pub mac_address: String,
    pub driver_opts: Option<BTreeMap<String, String>>,
    pub gw_priority: i64,
}

impl Endpoint {
    /// docker's JSON for it: every field of `EndpointSettings`, the daemon-filled ones at
    /// their zero values, in docker's order (map keys sorted, as Go's encoder does).
    pub fn to_json(&self) -> Value {
        json!({
            "IPAMConfig": self.ipam.as_ref().map(EndpointIpam::to_json),
            "Links": self.links,
            "Aliases": self.aliases,
            "MacAddress": self.mac_address,
            "DriverOpts": self.driver_opts,
            "GwPriority": self.gw_priority,
            "NetworkID": "",
            "EndpointID": "",
            "Gateway": "",
            "IPAddress": "",
            "IPPrefixLen": 0,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "DNSNames": null,
        })
    }
}

/// One `--network` of `run`/`create` (docker's `NetworkAttachmentOpts`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkAttachment {
    pub target: String,
    pub aliases: Vec<String>,
    pub driver_opts: BTreeMap<String, String>,
    pub links: Vec<String>,
    pub ipv4_address: String,
    pub ipv6_address: String,
    pub link_local_ips: Vec<String>,
    pub mac_address: String,
    pub gw_priority: i64,
}

/// docker's test for the advanced form: a `\w+=\w+` anywhere in the value (so `container:x`
/// and `my-net` are plain names, `name=my-net` is not).
fn is_advanced(value: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = value.as_bytes();
    (1..b.len().saturating_sub(1)).any(|i| b[i] == b'=' && word(b[i - 1]) && word(b[i + 1]))
}

/// One record of Go's `encoding/csv` (comma-separated, `"` quoting with `""` for a quote),
/// with its error messages; docker reads the advanced `--network` form with it.
pub(super) fn csv_fields(value: &str) -> Result<Vec<String>, String> {
    let err = |col: usize, what: &str| format!("parse error on line 1, column {col}: {what}");
    let b = value.as_bytes();
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        if b.get(i) == Some(&b'"') {
            let mut field = Vec::new();
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err(err(i + 1, "extraneous or missing \" in quoted-field")),
                    Some(b'"') if b.get(i + 1) == Some(&b'"') => {
                        field.push(b'"');
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        field.push(*c);
                        i += 1;
                    }
                }
            }
            fields.push(String::from_utf8_lossy(&field).into_owned());
            match b.get(i) {
                None => return Ok(fields),
                Some(b',') => i += 1,
                // Go names the closing quote's column (1-based: the index of what follows).
                Some(_) => return Err(err(i, "extraneous or missing \" in quoted-field")),
            }
        } else {
            let end = b[i..].iter().position(|c| *c == b',').map(|p| i + p);
            let field = &value[i..end.unwrap_or(b.len())];
            if let Some(q) = field.find('"') {
                return Err(err(i + q + 1, "bare \" in non-quoted-field"));
            }
            fields.push(field.to_string());
            match end {
                None => return Ok(fields),
                Some(e) => i = e + 1,
            }
        }
    }
}

/// `key=value` of a driver option, lowercased and trimmed as docker's `parseDriverOpt`.
fn driver_opt(kv: &str) -> Result<(String, String), String> {
    let kv = kv.to_lowercase();
    match kv.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err("invalid key value pair format in driver options".into()),
    }
}

/// Go's `strconv.Atoi` failure, as docker words it for `gw-priority`.
fn parse_gw_priority(value: &str) -> Result<i64, String> {
    value.parse::<i64>().map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        format!("invalid gw-priority ({value}): {why}")
    })
}

/// `--network VALUE` as docker 28 reads it: a plain name (`bridge`, `container:x`, `net1`),
/// or the advanced form `name=NET,alias=A,ip=IP,ip6=IP,mac-address=M,link-local-ip=IP,
/// driver-opt=K=V,gw-priority=N`. docker lowercases each field of the advanced form, the
/// network's name included; so does this, to send what docker sends.
pub fn parse_network_flag(value: &str) -> Result<NetworkAttachment, String> {
    if !is_advanced(value) {
        return Ok(NetworkAttachment {
            target: value.to_string(),
            ..Default::default()
        });
    }
    let mut n = NetworkAttachment::default();
    for field in csv_fields(value)? {
        let lower = field.to_lowercase();
        let (key, val) = match lower.split_once('=') {
            Some((k, v)) if !k.is_empty() => (k.trim(), v.trim()),
            _ => return Err(format!("invalid field {field}")),
        };
        match key {
            "name" => n.target = val.to_string(),
            "alias" => n.aliases.push(val.to_string()),
            "ip" => n.ipv4_address = val.to_string(),
            "ip6" => n.ipv6_address = val.to_string(),
            "mac-address" => n.mac_address = val.to_string(),
            "link-local-ip" => n.link_local_ips.push(val.to_string()),
            "driver-opt" => {
                let (k, v) = driver_opt(val)?;
                n.driver_opts.insert(k, v);
            }
            "gw-priority" => n.gw_priority = parse_gw_priority(val)?,
            other => return Err(format!("invalid field key {other}")),
        }
    }
    if n.target.is_empty() {
        return Err("network name/id is not specified".into());
    }
    Ok(n)
}

/// docker's `NetworkMode.IsUserDefined`: not `default`, `bridge`, `host`, `none` nor
/// `container:<id>`.
pub fn is_user_defined(mode: &str) -> bool {
    !matches!(mode, "default" | "bridge" | "host" | "none") && !mode.starts_with("container:")
}

/// Go's `net.ParseMAC`: six, eight or twenty bytes as `xx:xx:..`, `xx-xx-..` or
/// `xxxx.xxxx.xxxx`.
pub fn is_valid_mac(mac: &str) -> bool {
    let hex = |g: &str, n: usize| g.len() == n && g.bytes().all(|c| c.is_ascii_hexdigit());
    let groups = |sep: char, width: usize, counts: &[usize]| {
        let parts: Vec<&str> = mac.split(sep).collect();
        counts.contains(&parts.len()) && parts.iter().all(|g| hex(g, width))
    };
    let mac_sep = mac.as_bytes().get(2).copied();
    match mac_sep {
        Some(b':') => groups(':', 2, &[6, 8, 20]),
        Some(b'-') => groups('-', 2, &[6, 8, 20]),
        _ if mac.as_bytes().get(4) == Some(&b'.') => groups('.', 4, &[3, 4, 10]),
        _ => false,
    }
}

/// docker's `ValidateLink` (`name` or `name:alias`): refuses an empty value and a third
/// colon-separated part.
pub fn validate_link(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("empty string specified for links".into());
    }
    if value.splitn(3, ':').count() > 2 {
        return Err(format!("bad format for links: {value}"));
    }
    Ok(value.to_string())
}

/// The per-container network flags of `run`/`create` that docker applies to the first
/// `--network` (or to `default`).
#[derive(Debug, Clone, Default)]
pub struct EndpointFlags {
    pub aliases: Vec<String>,
    pub links: Vec<String>,
    pub ipv4_address: String,
    pub ipv6_address: String,
    pub mac_address: String,
    pub link_local_ips: Vec<String>,
}

/// docker's `applyContainerOptions`: the container-wide flags land on `n`, unless `n`
/// already says the same thing per network.
fn apply_container_flags(n: &mut NetworkAttachment, flags: &EndpointFlags) -> Result<(), String> {
    let conflict = |both: &str| Err(format!("conflicting options: cannot specify both {both}"));
    if !n.aliases.is_empty() && !flags.aliases.is_empty() {
        return conflict("--network-alias and per-network alias");
    }
    if !n.links.is_empty() && !flags.links.is_empty() {
        return conflict("--link and per-network links");
    }
    if !n.ipv4_address.is_empty() && !flags.ipv4_address.is_empty() {
        return conflict("--ip and per-network IPv4 address");
    }
    if !n.ipv6_address.is_empty() && !flags.ipv6_address.is_empty() {
        return conflict("--ip6 and per-network IPv6 address");
    }
    if !n.mac_address.is_empty() && !flags.mac_address.is_empty() {
        return conflict("--mac-address and per-network MAC address");
    }
    if !n.link_local_ips.is_empty() && !flags.link_local_ips.is_empty() {
        return conflict("--link-local-ip and per-network link-local IP addresses");
    }
    if !flags.aliases.is_empty() {
        n.aliases = flags.aliases.clone();
    }
    // On a user-defined network a link is an endpoint option (an alias); on the default
    // bridge it is a legacy link, in HostConfig.Links only.
    if is_user_defined(&n.target) && !flags.links.is_empty() {
        n.links = flags.links.clone();
    }
    if !flags.ipv4_address.is_empty() {
        n.ipv4_address = flags.ipv4_address.clone();
    }
    if !flags.ipv6_address.is_empty() {
        n.ipv6_address = flags.ipv6_address.clone();
    }
    if !flags.mac_address.is_empty() {
        n.mac_address = flags.mac_address.clone();
    }
    if !flags.link_local_ips.is_empty() {
        n.link_local_ips = flags.link_local_ips.clone();
    }
    Ok(())
}

/// docker's `parseNetworkAttachmentOpt`: the endpoint for one attachment.
fn attachment_endpoint(n: &NetworkAttachment) -> Result<Endpoint, String> {
    if n.target.trim().is_empty() {
        return Err("no name set for network".into());
    }
    if !is_user_defined(&n.target) {
        if !n.aliases.is_empty() {
            return Err(
                "network-scoped aliases are only supported for user-defined networks".into(),
            );
        }
        if !n.links.is_empty() {
            return Err("links are only supported for user-defined networks".into());
        }
    }
    let any_address =
        !n.ipv4_address.is_empty() || !n.ipv6_address.is_empty() || !n.link_local_ips.is_empty();
    if !n.mac_address.is_empty() && !is_valid_mac(n.mac_address.trim()) {
        return Err(format!("{} is not a valid mac address", n.mac_address));
    }
    let some = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    Ok(Endpoint {
        ipam: any_address.then(|| EndpointIpam {
            ipv4_address: n.ipv4_address.clone(),
            ipv6_address: n.ipv6_address.clone(),
            link_local_ips: n.link_local_ips.clone(),
        }),
        links: some(&n.links),
        aliases: some(&n.aliases),
        mac_address: n.mac_address.clone(),
        driver_opts: (!n.driver_opts.is_empty()).then(|| n.driver_opts.clone()),
        gw_priority: n.gw_priority,
    })
}

/// docker 28's `parseNetworkOpts`: `HostConfig.NetworkMode` (the first `--network`, or
/// `default`) and `NetworkingConfig.EndpointsConfig` (one endpoint per network, keyed by the
/// name as given; a lone `--network` without options gets none, as docker leaves it to the
/// daemon). The container-wide flags go to the first network.
pub fn endpoints_config(
    networks: &[NetworkAttachment],
    flags: &EndpointFlags,
) -> Result<(String, BTreeMap<String, Value>), String> {
    let mut endpoints = BTreeMap::new();
    if networks.is_empty() {
        let mut n = NetworkAttachment {
            target: "default".into(),
            ..Default::default()
        };
        apply_container_flags(&mut n, flags)?;
        endpoints.insert("default".to_string(), attachment_endpoint(&n)?.to_json());
        return Ok(("default".into(), endpoints));
    }
    let (mut user_defined, mut other) = (false, false);
    for (i, n) in networks.iter().enumerate() {
        let mut n = n.clone();
        if is_user_defined(&n.target) {
            user_defined = true;
        } else {
            other = true;
        }
        if i == 0 {
            apply_container_flags(&mut n, flags)?;
        }
        let ep = attachment_endpoint(&n)?;
        if endpoints.contains_key(&n.target) {
            return Err(format!(
                "network {:?} is specified multiple times",
                n.target
            ));
        }
        if i == 0 && networks.len() == 1 && ep == Endpoint::default() {
            continue;
        }
        endpoints.insert(n.target.clone(), ep.to_json());
    }
    if user_defined && other {
        return Err(
            "conflicting options: cannot attach both user-defined and non-user-defined network-modes"
                .into(),
        );
    }
    Ok((networks[0].target.clone(), endpoints))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> EndpointFlags {
        EndpointFlags::default()
    }

    fn nets(values: &[&str]) -> Vec<NetworkAttachment> {
        values
            .iter()
            .map(|v| parse_network_flag(v).unwrap())
            .collect()
    }

    /// docker's zero endpoint, as docker 28 sent it for `docker create busybox`.
    const ZERO_ENDPOINT: &str = r#"{"IPAMConfig": null, "Links": null, "Aliases": null,
        "MacAddress": "", "DriverOpts": null, "GwPriority": 0, "NetworkID": "",
        "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": null}"#;

    fn zero() -> Value {
        serde_json::from_str(ZERO_ENDPOINT).unwrap()
    }

    fn endpoint(patch: Value) -> Value {
        let mut v = zero();
        for (k, x) in patch.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    }

    #[test]
    fn no_network_flag_sends_dockers_default_endpoint() {
        let (mode, eps) = endpoints_config(&[], &flags()).unwrap();
        assert_eq!(mode, "default");
        assert_eq!(
            serde_json::to_value(&eps).unwrap(),
            json!({"default": zero()})
        );
        // The key order is docker's too.
        assert_eq!(
            serde_json::to_string(&eps["default"]).unwrap(),
            serde_json::to_string(&zero()).unwrap()
        );
    }

    #[test]
    fn one_plain_network_sends_no_endpoint_two_send_both() {
        let (mode, eps) = endpoints_config(&nets(&["n1"]), &flags()).unwrap();
        assert_eq!(mode, "n1");
        assert!(eps.is_empty());
        let (mode, eps) = endpoints_config(&nets(&["n1", "n2"]), &flags()).unwrap();
        assert_eq!(mode, "n1");
        assert_eq!(
            serde_json::to_value(&eps).unwrap(),
            json!({"n1": zero(), "n2": zero()})
        );
        let (mode, eps) = endpoints_config(&nets(&["container:abc"]), &flags()).unwrap();
        assert_eq!((mode.as_str(), eps.len()), ("container:abc", 0));
        // Two non-user-defined modes pass the CLI (the daemon decides).
        let (mode, eps) = endpoints_config(&nets(&["none", "host"]), &flags()).unwrap();
        assert_eq!(mode, "none");
        assert_eq!(
            serde_json::to_value(&eps).unwrap(),
            json!({"host": zero(), "none": zero()})
        );
    }

    /// docker create --network n1 --network n2 --ip 10.1.0.5 --ip6 fd00::5
    ///   --network-alias a1 --net-alias a2 --mac-address 02:42:ac:11:00:02 --link c1:x
    ///   --link-local-ip 169.254.0.9 busybox
    #[test]
    fn container_wide_flags_land_on_the_first_network() {
        let f = EndpointFlags {
            aliases: vec!["a1".into(), "a2".into()],
            links: vec!["c1:x".into()],
            ipv4_address: "10.1.0.5".into(),
            ipv6_address: "fd00::5".into(),
            mac_address: "02:42:ac:11:00:02".into(),
            link_local_ips: vec!["169.254.0.9".into()],
        };
        let (mode, eps) = endpoints_config(&nets(&["n1", "n2"]), &f).unwrap();
        assert_eq!(mode, "n1");
        let docker: Value = serde_json::from_str(&format!(
            r#"{{"n1": {{"IPAMConfig": {{"IPv4Address": "10.1.0.5", "IPv6Address": "fd00::5",
                "LinkLocalIPs": ["169.254.0.9"]}}, "Links": ["c1:x"], "Aliases": ["a1", "a2"],
                "MacAddress": "02:42:ac:11:00:02", "DriverOpts": null, "GwPriority": 0,
                "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "",
                "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0, "DNSNames": null}},
              "n2": {ZERO_ENDPOINT}}}"#
        ))
        .unwrap();
        assert_eq!(serde_json::to_value(&eps).unwrap(), docker);
    }

    #[test]
    fn flags_without_network_go_to_default_and_links_stay_legacy_there() {
        let f = EndpointFlags {
            ipv4_address: "10.1.0.5".into(),
            links: vec!["c1:x".into()],
            ..Default::default()
        };
        let (_, eps) = endpoints_config(&[], &f).unwrap();
        assert_eq!(
            eps["default"],
            endpoint(json!({"IPAMConfig": {"IPv4Address": "10.1.0.5"}}))
        );
        let f = EndpointFlags {
            mac_address: "02:42:ac:11:00:02".into(),
            ..Default::default()
        };
        let (_, eps) = endpoints_config(&[], &f).unwrap();
        assert_eq!(
            eps["default"],
            endpoint(json!({"MacAddress": "02:42:ac:11:00:02"}))
        );
        // `--network bridge --link c1:x`: no endpoint (the link is HostConfig's).
        let f = EndpointFlags {
            links: vec!["c1:x".into()],
            ..Default::default()
        };
        let (_, eps) = endpoints_config(&nets(&["bridge"]), &f).unwrap();
        assert!(eps.is_empty());
    }

    /// docker create --network name=n1,alias=a,alias=b,ip=10.1.0.5,ip6=fd00::5,
    ///   mac-address=02:42:AC:11:00:02,driver-opt=K=V,link-local-ip=169.254.0.1,gw-priority=3
    ///   --network name=n2 busybox
    #[test]
    fn advanced_network_form_matches_docker() {
        let n = nets(&[
            "name=n1,alias=a,alias=b,ip=10.1.0.5,ip6=fd00::5,mac-address=02:42:AC:11:00:02,driver-opt=K=V,link-local-ip=169.254.0.1,gw-priority=3",
            "name=n2",
        ]);
        let (mode, eps) = endpoints_config(&n, &flags()).unwrap();
        assert_eq!(mode, "n1");
        let docker: Value = serde_json::from_str(&format!(
            r#"{{"n1": {{"IPAMConfig": {{"IPv4Address": "10.1.0.5", "IPv6Address": "fd00::5",
                "LinkLocalIPs": ["169.254.0.1"]}}, "Links": null, "Aliases": ["a", "b"],
                "MacAddress": "02:42:ac:11:00:02", "DriverOpts": {{"k": "v"}}, "GwPriority": 3,
                "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "",
                "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0, "DNSNames": null}},
              "n2": {ZERO_ENDPOINT}}}"#
        ))
        .unwrap();
        assert_eq!(serde_json::to_value(&eps).unwrap(), docker);
        // docker lowercases every field, the name too; quoting keeps a comma in a value.
        let (mode, eps) = endpoints_config(&nets(&["name=MyNet,alias=Web"]), &flags()).unwrap();
        assert_eq!(mode, "mynet");
        assert_eq!(eps["mynet"], endpoint(json!({"Aliases": ["web"]})));
        let (mode, _) = endpoints_config(&nets(&[r#""name=a,b",alias=x"#]), &flags()).unwrap();
        assert_eq!(mode, "a,b");
        let n =
            parse_network_flag("name=n1, alias = y ,gw-priority=+5,driver-opt= a = b ").unwrap();
        assert_eq!((n.aliases, n.gw_priority), (vec!["y".to_string()], 5));
        assert_eq!(n.driver_opts["a"], "b");
        // Plain names, even with `-`, `:` or `=` not between word characters.
        assert_eq!(parse_network_flag("my-net").unwrap().target, "my-net");
        assert_eq!(
            parse_network_flag("container:x").unwrap().target,
            "container:x"
        );
        assert_eq!(parse_network_flag("=x").unwrap().target, "=x");
    }

    #[test]
    fn bad_network_flags_give_dockers_messages() {
        for (value, why) in [
            ("name=n1,bogus=1", "invalid field key bogus"),
            ("alias=x", "network name/id is not specified"),
            (
                "name=n1,gw-priority=x",
                "invalid gw-priority (x): invalid syntax",
            ),
            (
                "name=n1,gw-priority=99999999999999999999",
                "invalid gw-priority (99999999999999999999): value out of range",
            ),
            (
                "name=n1,driver-opt=x",
                "invalid key value pair format in driver options",
            ),
            ("name=n1,noeq", "invalid field noeq"),
            ("name=a,,alias=y", "invalid field "),
            (
                r#"name=a"b,alias=y"#,
                r#"parse error on line 1, column 7: bare " in non-quoted-field"#,
            ),
            (
                r#""name=a"x,alias=y"#,
                r#"parse error on line 1, column 8: extraneous or missing " in quoted-field"#,
            ),
            (
                r#""name=ab,alias=y"#,
                r#"parse error on line 1, column 17: extraneous or missing " in quoted-field"#,
            ),
        ] {
            assert_eq!(parse_network_flag(value).unwrap_err(), why, "{value}");
        }
    }

    #[test]
    fn bad_network_combinations_give_dockers_messages() {
        let err = |n: &[&str], f: EndpointFlags| endpoints_config(&nets(n), &f).unwrap_err();
        assert_eq!(
            err(&["n1", "n1"], flags()),
            "network \"n1\" is specified multiple times"
        );
        assert_eq!(
            err(&["n1", "bridge"], flags()),
            "conflicting options: cannot attach both user-defined and non-user-defined network-modes"
        );
        let alias = || EndpointFlags {
            aliases: vec!["x".into()],
            ..Default::default()
        };
        for n in [&["host"][..], &["bridge"], &[]] {
            assert_eq!(
                err(n, alias()),
                "network-scoped aliases are only supported for user-defined networks"
            );
        }
        assert_eq!(
            err(&["name=n1,alias=a"], alias()),
            "conflicting options: cannot specify both --network-alias and per-network alias"
        );
        let f = |ip: &str, ip6: &str, mac: &str, lli: &[&str]| EndpointFlags {
            ipv4_address: ip.into(),
            ipv6_address: ip6.into(),
            mac_address: mac.into(),
            link_local_ips: lli.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert_eq!(
            err(&["name=n1,ip=1.2.3.4"], f("1.2.3.5", "", "", &[])),
            "conflicting options: cannot specify both --ip and per-network IPv4 address"
        );
        assert_eq!(
            err(&["name=n1,ip6=::1"], f("", "::2", "", &[])),
            "conflicting options: cannot specify both --ip6 and per-network IPv6 address"
        );
        assert_eq!(
            err(
                &["name=n1,mac-address=02:42:ac:11:00:02"],
                f("", "", "02:42:ac:11:00:03", &[])
            ),
            "conflicting options: cannot specify both --mac-address and per-network MAC address"
        );
        assert_eq!(
            err(&["name=n1,link-local-ip=169.254.0.1"], f("", "", "", &["169.254.0.2"])),
            "conflicting options: cannot specify both --link-local-ip and per-network link-local IP addresses"
        );
        assert_eq!(
            err(&["name=n1,mac-address=bogus"], flags()),
            "bogus is not a valid mac address"
        );
        assert_eq!(err(&[" "], flags()), "no name set for network");
        assert_eq!(err(&[""], flags()), "no name set for network");
    }

    #[test]
    fn macs_and_links_validate_as_go() {
        for ok in [
            "02:42:ac:11:00:02",
            "02-42-AC-11-00-02",
            "0242.ac11.0002",
            "00:00:00:00:fe:80:00:00",
        ] {
            assert!(is_valid_mac(ok), "{ok}");
        }
        for bad in [
            "bogus",
            "02:42:ac:11:00",
            "02:42:ac:11:00:0g",
            "0242ac110002",
            "",
        ] {
            assert!(!is_valid_mac(bad), "{bad}");
        }
        assert_eq!(validate_link("c1:x"), Ok("c1:x".into()));
        assert_eq!(validate_link("c1"), Ok("c1".into()));
        assert_eq!(
            validate_link("a:b:c"),
            Err("bad format for links: a:b:c".into())
        );
        assert_eq!(
            validate_link(""),
            Err("empty string specified for links".into())
        );
    }
}
