//! The network API: `GET /networks`, `GET /networks/{id}`, `POST /networks/create`,
//! `DELETE /networks/{id}`, `POST /networks/prune`, `POST /networks/{id}/connect` and
//! `/disconnect`, in Docker's shapes and words. The built-in networks are `bridge` (the
//! default bridge, when berthd has one), `host` and `none`; the user-defined ones are
//! bridges with a record each (network.rs).

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use berth_api::filters::Filters;
use berth_network::ipam::{Subnet, Subnet6};
use berth_network::{netns, Bridge};
use serde_json::{json, Value};

use crate::error::{EngineError, Result};
use crate::network::{
    endpoint_id, network_id_of, parse_endpoint_settings, EndpointConfig, NetworkRecord, UserNet,
    DEFAULT,
};
use crate::Engine;

/// The filters `network ls` takes (Docker's).
const FILTERS: &[&str] = &["name", "id", "driver", "type", "scope", "label", "dangling"];

/// Driver options berth applies, and the values it takes of those it only accepts.
const BRIDGE_NAME: &str = "com.docker.network.bridge.name";
const ENABLE_ICC: &str = "com.docker.network.bridge.enable_icc";

/// `network create`'s `Options` berth does not apply but takes at Docker's default value.
fn default_option(k: &str, v: &str) -> bool {
    matches!(
        (k, v),
        ("com.docker.network.bridge.enable_ip_masquerade", "true")
            | ("com.docker.network.bridge.host_binding_ipv4", "0.0.0.0")
            | ("com.docker.network.driver.mtu", "1500")
            | ("com.docker.network.bridge.default_bridge", "false")
    )
}

/// `POST /networks/create`'s body, field by field (anything else non-zero is refused).
#[derive(Debug, Default)]
pub struct CreateNetwork {
    pub name: String,
    pub internal: bool,
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub subnet: Option<Subnet>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<Subnet>,
    /// `--ipv6` (`EnableIPv6`): an IPv6 subnet too, the one given or one of the default
    /// IPv6 pool.
    pub enable_ipv6: bool,
    pub subnet6: Option<Subnet6>,
    pub gateway6: Option<Ipv6Addr>,
    pub ip_range6: Option<Subnet6>,
}

fn refuse(field: &str, v: &Value) -> EngineError {
    EngineError::Invalid(format!(
        "network create: {field} is not supported by berth yet: refused rather than ignored \
         (value: {v})"
    ))
}

/// An IPv6 subnet a network may have (Docker's `validateIPv6Subnet` and more): written
/// without host bits, /16 to /124 (`::/0` would take the host's default route), not
/// multicast, loopback, link-local or IPv4-mapped.
fn check_subnet6(given: &str, s: &berth_network::ipam::Subnet6) -> Result<()> {
    let written: Option<Ipv6Addr> = given.split('/').next().and_then(|a| a.parse().ok());
    if written != Some(s.addr) {
        return Err(EngineError::Invalid(format!(
            "invalid subnet {given}: it should be {s}"
        )));
    }
    let first = s.addr.segments()[0];
    let special = if !(16..=124).contains(&s.prefix) {
        Some("berth's IPv6 networks are /16 to /124")
    } else if first & 0xff00 == 0xff00 {
        Some("multicast")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if s.addr.to_ipv4_mapped().is_some() {
        Some("IPv4-mapped")
    } else if s.addr.is_loopback() || s.addr.is_unspecified() {
        Some("loopback or unspecified")
    } else {
        None
    };
    match special {
        Some(why) => Err(EngineError::Invalid(format!(
            "invalid subnet {given}: {why}"
        ))),
        None => Ok(()),
    }
}

/// Docker's words for a subnet overlapping another network's, and which one.
fn overlap(s: &dyn std::fmt::Display, name: &str, other: &dyn std::fmt::Display) -> EngineError {
    EngineError::Forbidden(format!(
        "invalid pool request: Pool overlaps with other one on this address space: {s} \
         overlaps network {name} ({other})"
    ))
}

fn boolean(field: &str, v: &Value) -> Result<bool> {
    match v {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        _ => Err(EngineError::Invalid(format!(
            "network create: {field} must be true or false (value: {v})"
        ))),
    }
}

fn string_map(field: &str, v: &Value) -> Result<BTreeMap<String, String>> {
    if !(v.is_object() || v.is_null()) {
        return Err(EngineError::Invalid(format!(
            "network create: {field} must be an object of strings (value: {v})"
        )));
    }
    let mut out = BTreeMap::new();
    for (k, val) in v.as_object().into_iter().flatten() {
        let Some(s) = val.as_str() else {
            return Err(EngineError::Invalid(format!(
                "network create: {field}.{k} must be a string"
            )));
        };
        out.insert(k.clone(), s.to_string());
    }
    Ok(out)
}

impl CreateNetwork {
    /// Reads Docker's `NetworkCreateRequest`.
    pub fn parse(body: &Value) -> Result<CreateNetwork> {
        let Some(map) = body.as_object() else {
            return Err(EngineError::Invalid(
                "network create: the body must be an object".into(),
            ));
        };
        let mut out = CreateNetwork::default();
        for (field, v) in map {
            match field.as_str() {
                "Name" => out.name = v.as_str().unwrap_or_default().to_string(),
                "Driver" => match v.as_str().unwrap_or_default() {
                    "" | "bridge" => {}
                    other => {
                        return Err(EngineError::NotFound(format!(
                            "plugin \"{other}\" not found: berth's networks are bridges \
                             (--driver bridge)"
                        )))
                    }
                },
                "Internal" => out.internal = boolean(field, v)?,
                "Attachable" => out.attachable = boolean(field, v)?,
                "Labels" => out.labels = string_map("Labels", v)?,
                "Options" => out.options = string_map("Options", v)?,
                "Scope" => {
                    if !matches!(v, Value::Null) && !matches!(v.as_str(), Some("local" | "")) {
                        return Err(refuse(field, v));
                    }
                }
                "EnableIPv4" => {
                    if !matches!(v, Value::Null | Value::Bool(true)) {
                        return Err(refuse("EnableIPv4 other than true", v));
                    }
                }
                "EnableIPv6" => match v {
                    Value::Null => {}
                    Value::Bool(b) => out.enable_ipv6 = *b,
                    _ => return Err(refuse("EnableIPv6 (--ipv6)", v)),
                },
                "IPAM" => {
                    if !(v.is_object() || v.is_null()) {
                        return Err(EngineError::Invalid(
                            "network create: IPAM must be an object".into(),
                        ));
                    }
                    out.ipam(v)?
                }
                // Docker's (deprecated) duplicate check: names are always unique here.
                "CheckDuplicate" => {}
                // `ConfigFrom: {"Network": ""}` is what inspect shows: zero.
                _ if crate::unapplied::is_zero_struct(v) => {}
                _ => return Err(refuse(field, v)),
            }
        }
        if out.name.is_empty() {
            return Err(EngineError::Invalid(
                "network name must not be empty".into(),
            ));
        }
        // Docker passes over an IPv6 subnet of a network without IPv6: refused here.
        if let (Some(s), false) = (out.subnet6, out.enable_ipv6) {
            return Err(EngineError::Invalid(format!(
                "network create: the IPv6 subnet {s} needs IPv6 on the network (--ipv6, \
                 EnableIPv6): refused rather than ignored"
            )));
        }
        // Docker's names' characters (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`): a name is a file
        // name here, and a bridge's default name comes from it nowhere.
        let mut chars = out.name.chars();
        if !chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(EngineError::Invalid(format!(
                "invalid network name {:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                out.name
            )));
        }
        for (k, v) in &out.options {
            match k.as_str() {
                BRIDGE_NAME => {
                    let ok = !v.is_empty()
                        && v.len() <= 15
                        && v.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                        && !["all", "default", ".", ".."].contains(&v.as_str());
                    if !ok {
                        return Err(EngineError::Invalid(format!(
                            "invalid bridge name {v:?}: 1 to 15 letters, digits, '-', '_' or \
                             '.' (not \"all\" or \"default\")"
                        )));
                    }
                }
                ENABLE_ICC if v == "true" || v == "false" => {}
                _ if default_option(k, v) => {}
                _ => {
                    return Err(refuse(
                        &format!("Options.{k} (-o)"),
                        &Value::from(v.clone()),
                    ))
                }
            }
        }
        Ok(out)
    }

    fn ipam(&mut self, v: &Value) -> Result<()> {
        for (field, v) in v.as_object().into_iter().flatten() {
            match field.as_str() {
                "Driver" if matches!(v.as_str(), Some("default") | Some("")) => {}
                "Config" => {
                    if !(v.is_array() || v.is_null()) {
                        return Err(EngineError::Invalid(
                            "network create: IPAM.Config must be a list".into(),
                        ));
                    }
                    for c in v.as_array().into_iter().flatten() {
                        self.ipam_config(c, v)?;
                    }
                }
                _ if crate::unapplied::is_zero(v) => {}
                _ => return Err(refuse(&format!("IPAM.{field}"), v)),
            }
        }
        Ok(())
    }

    /// One entry of `IPAM.Config`: a subnet of either family with its gateway and range
    /// (at most one entry of each family).
    fn ipam_config(&mut self, c: &Value, all: &Value) -> Result<()> {
        let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
        for (k, val) in c.as_object().into_iter().flatten() {
            match k.as_str() {
                "Subnet" | "IPRange" | "Gateway" if val.is_string() || val.is_null() => {}
                _ if crate::unapplied::is_zero(val) => {}
                _ => return Err(refuse(&format!("IPAM.Config.{k}"), val)),
            }
        }
        let (subnet, range, gateway) = (text("Subnet"), text("IPRange"), text("Gateway"));
        if subnet.is_empty() {
            if gateway.is_empty() && range.is_empty() {
                return Ok(());
            }
            return Err(EngineError::Invalid(
                "invalid pool request: a gateway or an ip-range needs a subnet".into(),
            ));
        }
        let v6 = subnet.contains(':');
        let family = if v6 { "IPv6" } else { "IPv4" };
        // The other family's address in this entry: Docker's words.
        let same_family = |what: &str, s: &str| {
            if !s.is_empty() && s.contains(':') != v6 {
                return Err(EngineError::Invalid(format!(
                    "invalid {what} {s}: parent subnet is an {family} block"
                )));
            }
            Ok(())
        };
        same_family("ip-range", range)?;
        same_family("gateway", gateway)?;
        let invalid = |what: &str, s: &str| EngineError::Invalid(format!("invalid {what}: {s}"));
        let taken = if v6 {
            self.subnet6.is_some()
        } else {
            self.subnet.is_some()
        };
        if taken {
            return Err(refuse(
                &format!("IPAM.Config with several {family} subnets"),
                all,
            ));
        }
        if v6 {
            let parsed: berth_network::ipam::Subnet6 =
                subnet.parse().map_err(|_| invalid("subnet", subnet))?;
            check_subnet6(subnet, &parsed)?;
            self.subnet6 = Some(parsed);
            if !range.is_empty() {
                let r: berth_network::ipam::Subnet6 =
                    range.parse().map_err(|_| invalid("ip-range", range))?;
                let written: Option<Ipv6Addr> =
                    range.split('/').next().and_then(|a| a.parse().ok());
                if written != Some(r.addr) {
                    return Err(EngineError::Invalid(format!(
                        "invalid ip-range {range}: it should be {r}"
                    )));
                }
                self.ip_range6 = Some(r);
            }
            if !gateway.is_empty() {
                self.gateway6 = Some(gateway.parse().map_err(|_| invalid("gateway", gateway))?);
            }
        } else {
            let parsed: Subnet = subnet.parse().map_err(|_| invalid("subnet", subnet))?;
            if parsed.to_string() != subnet {
                return Err(EngineError::Invalid(format!(
                    "invalid subnet {subnet}: it should be {parsed}"
                )));
            }
            if !(8..=30).contains(&parsed.prefix) {
                return Err(EngineError::Invalid(format!(
                    "invalid subnet {subnet}: berth's networks are /8 to /30"
                )));
            }
            self.subnet = Some(parsed);
            if !range.is_empty() {
                let r: Subnet = range.parse().map_err(|_| invalid("ip-range", range))?;
                if r.to_string() != range {
                    return Err(EngineError::Invalid(format!(
                        "invalid ip-range {range}: it should be {r}"
                    )));
                }
                self.ip_range = Some(r);
            }
            if !gateway.is_empty() {
                self.gateway = Some(gateway.parse().map_err(|_| invalid("gateway", gateway))?);
            }
        }
        Ok(())
    }
}

impl Engine {
    /// `POST /networks/create` (blocking: it makes the bridge). Returns the new id.
    pub fn network_create(&self, req: CreateNetwork) -> Result<String> {
        // One change at a time: the name and the subnet are checked against the others.
        let mut users = self.net.user.write().unwrap_or_else(|p| p.into_inner());
        if ["bridge", "host", "none", "default"].contains(&req.name.as_str())
            && (req.name != DEFAULT || self.net.has_bridge())
        {
            return Err(EngineError::Forbidden(format!(
                "{} is a pre-defined network and cannot be created",
                req.name
            )));
        }
        if users.values().any(|n| n.rec.name == req.name) {
            return Err(EngineError::Conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let mut ours: Vec<(String, Subnet)> = users
            .values()
            .filter_map(|n| Some((n.rec.name.clone(), n.rec.subnet.parse().ok()?)))
            .collect();
        if let Some((subnet, _, _)) = self.net.bridge_info() {
            if let Ok(s) = subnet.parse() {
                ours.push((DEFAULT.to_string(), s));
            }
        }
        let subnet = match req.subnet {
            Some(s) => {
                if let Some((name, other)) = ours.iter().find(|(_, o)| o.overlaps(&s)) {
                    return Err(overlap(&s, name, other));
                }
                s
            }
            None => {
                let mut taken = berth_network::host_subnets()
                    .map_err(|e| EngineError::Internal(e.to_string()))?;
                taken.extend(ours.iter().map(|(_, s)| *s));
                berth_network::ipam::choose(&self.net.candidates, &taken).ok_or_else(|| {
                    EngineError::Forbidden(
                        "could not find an available, non-overlapping IPv4 address pool among \
                         the defaults to assign to the network"
                            .into(),
                    )
                })?
            }
        };
        let gateway = req.gateway.unwrap_or_else(|| subnet.host(1));
        let broadcast = subnet.host((1u32 << (32 - subnet.prefix)) - 1);
        if !subnet.contains(gateway) || gateway == subnet.addr || gateway == broadcast {
            return Err(EngineError::Invalid(format!(
                "the gateway {gateway} is not a host address of the subnet {subnet}"
            )));
        }
        if let Some(r) = req.ip_range {
            if !(subnet.contains(r.addr) && r.prefix >= subnet.prefix) {
                return Err(EngineError::Invalid(format!(
                    "the ip-range {r} is not in the subnet {subnet}"
                )));
            }
        }
        let v6 = if req.enable_ipv6 {
            Some(self.network_v6(&users, &req)?)
        } else {
            None
        };
        // An id whose first five characters name no other network (they name its veth
        // pairs).
        let id = loop {
            let id = crate::container::create::new_id();
            if !users.values().any(|n| n.rec.veth_tag == id[..5]) {
                break id;
            }
        };
        let bridge = match req.options.get(BRIDGE_NAME) {
            Some(name) => {
                if users.values().any(|n| &n.rec.bridge == name)
                    || self.net.bridge_info().is_some_and(|b| &b.2 == name)
                    || name == berth_network::DEFAULT_BRIDGE
                {
                    return Err(EngineError::Conflict(format!(
                        "bridge name {name} is used by another network"
                    )));
                }
                name.clone()
            }
            None => format!("br-{}", &id[..12]),
        };
        // berth makes the bridge and removes it with the network: an interface already
        // there (the host's br0, Docker's docker0) is never adopted, so never removed.
        if std::path::Path::new("/sys/class/net")
            .join(&bridge)
            .exists()
        {
            return Err(EngineError::Conflict(format!(
                "an interface named {bridge} exists already: berth makes a network's bridge \
                 itself (choose another com.docker.network.bridge.name)"
            )));
        }
        let rec = NetworkRecord {
            veth_tag: id[..5].to_string(),
            id: id.clone(),
            name: req.name,
            created: chrono::Utc::now(),
            subnet: subnet.to_string(),
            gateway,
            ip_range: req.ip_range.map(|r| r.to_string()),
            subnet6: v6.map(|v| v.0.to_string()),
            gateway6: v6.map(|v| v.1),
            ip_range6: req.ip_range6.map(|r| r.to_string()),
            internal: req.internal,
            attachable: req.attachable,
            icc: req.options.get(ENABLE_ICC).is_none_or(|v| v == "true"),
            bridge,
            labels: req.labels,
            options: req.options,
        };
        let bridge = Bridge::setup(&rec.bridge_config()?).map_err(|e| {
            // Whatever the set-up made before it failed goes: the link (berth's, checked
            // above) and the table.
            if let Ok(nl) = berth_network::netlink::Netlink::new() {
                let _ = nl.delete_link(&rec.bridge);
            }
            let _ = berth_network::nft::delete_table(&berth_network::nft::table_name(&rec.bridge));
            match e {
                berth_network::Error::Invalid(m) => EngineError::Invalid(m),
                e => EngineError::Internal(format!("creating network {}: {e}", rec.name)),
            }
        })?;
        std::fs::create_dir_all(&self.net.dir)
            .map_err(|e| EngineError::io("create", &self.net.dir, e))?;
        if let Err(e) = crate::fsutil::write_json(&self.net.dir.join(format!("{id}.json")), &rec) {
            for left in bridge.remove() {
                tracing::warn!("undoing a failed network create: {left}");
            }
            return Err(e);
        }
        self.emit_network(&rec.id, &rec.name, "create", None);
        users.insert(
            id.clone(),
            UserNet {
                rec,
                bridge: Ok(Arc::new(bridge)),
            },
        );
        Ok(id)
    }

    /// The IPv6 subnet and gateway of a new network: the subnet asked for (refused when it
    /// overlaps another network's, naming it) or the first /64 of berthd's own ULA /48
    /// (Docker's default IPv6 pool) overlapping neither a host route nor another network.
    fn network_v6(
        &self,
        users: &BTreeMap<String, UserNet>,
        req: &CreateNetwork,
    ) -> Result<(Subnet6, Ipv6Addr)> {
        let ours: Vec<(String, Subnet6)> = users
            .values()
            .filter_map(|n| Some((n.rec.name.clone(), n.rec.subnet6.as_ref()?.parse().ok()?)))
            .collect();
        let subnet = match req.subnet6 {
            Some(s) => {
                if let Some((name, other)) = ours.iter().find(|(_, o)| o.overlaps(&s)) {
                    return Err(overlap(&s, name, other));
                }
                s
            }
            None => {
                let mut taken = berth_network::host_subnets6()
                    .map_err(|e| EngineError::Internal(e.to_string()))?;
                taken.extend(ours.iter().map(|(_, s)| *s));
                let pool = berth_network::ipam::ula_candidates(self.net.ula_id);
                berth_network::ipam::choose6(pool, &taken).ok_or_else(|| {
                    EngineError::Forbidden(
                        "could not find an available, non-overlapping IPv6 address pool among \
                         the defaults to assign to the network: give one with --subnet"
                            .into(),
                    )
                })?
            }
        };
        let gateway = req.gateway6.unwrap_or_else(|| subnet.host(1));
        // Not the subnet-router anycast address (the subnet's own).
        if !subnet.contains(gateway) || gateway == subnet.addr {
            return Err(EngineError::Invalid(format!(
                "the gateway {gateway} is not a host address of the subnet {subnet}"
            )));
        }
        if let Some(r) = req.ip_range6 {
            if !(subnet.contains(r.addr) && r.prefix >= subnet.prefix) {
                return Err(EngineError::Invalid(format!(
                    "the ip-range {r} is not in the subnet {subnet}"
                )));
            }
        }
        Ok((subnet, gateway))
    }

    /// The running containers with an endpoint on the network `id`: (id, name).
    fn members(&self, network_id: &str) -> Vec<(String, String)> {
        self.all()
            .into_iter()
            .filter(|c| {
                c.state()
                    .networks
                    .values()
                    .any(|ep| ep.network_id == network_id)
            })
            .map(|c| (c.id.clone(), c.name()))
            .collect()
    }

    /// `DELETE /networks/{id}` (blocking).
    pub fn network_remove(&self, name_or_id: &str) -> Result<()> {
        // No start or connect is making an endpoint not yet counted below.
        let _changes = self.net.changes.write().unwrap_or_else(|p| p.into_inner());
        let Some(net) = self.net.find_user(name_or_id) else {
            if self.builtin(name_or_id).is_some() {
                let name = self.builtin(name_or_id).unwrap_or_default();
                return Err(EngineError::Forbidden(format!(
                    "{name} is a pre-defined network and cannot be removed"
                )));
            }
            return Err(EngineError::NotFound(format!(
                "network {name_or_id} not found"
            )));
        };
        let mut users = self.net.user.write().unwrap_or_else(|p| p.into_inner());
        let members = self.members(&net.rec.id);
        if !members.is_empty() {
            let list: Vec<String> = members
                .iter()
                .map(|(id, name)| format!("name:{name:?} id:{:?}", &id[..12]))
                .collect();
            return Err(EngineError::Forbidden(format!(
                "error while removing network: network {} has active endpoints ({})",
                net.rec.name,
                list.join(", ")
            )));
        }
        let path = self.net.dir.join(format!("{}.json", net.rec.id));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(EngineError::io("remove", path, e)),
        }
        users.remove(&net.rec.id);
        drop(users);
        if let Ok(bridge) = &net.bridge {
            for e in bridge.remove() {
                tracing::warn!(network = net.rec.name, "removing the network: {e}");
            }
        }
        self.emit_network(&net.rec.id, &net.rec.name, "destroy", None);
        Ok(())
    }

    /// `POST /networks/prune` (blocking): removes the user-defined networks no running
    /// container is on; returns their names.
    pub fn network_prune(&self, filters: &Filters) -> Result<Vec<String>> {
        filters
            .validate(&["label", "label!", "until"])
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let until = filters
            .get("until")
            .first()
            .map(|u| crate::container::misc::parse_until(u))
            .transpose()?;
        let candidates: Vec<NetworkRecord> =
            self.net.users().values().map(|n| n.rec.clone()).collect();
        let mut removed = Vec::new();
        for rec in candidates {
            let labels: HashMap<String, String> = rec.labels.clone().into_iter().collect();
            let unwanted = filters.get("label!");
            if !berth_api::filters::labels_match(filters.get("label"), Some(&labels))
                || (!unwanted.is_empty()
                    && unwanted.iter().any(|w| {
                        berth_api::filters::labels_match(std::slice::from_ref(w), Some(&labels))
                    }))
                || until.is_some_and(|u| rec.created >= u)
            {
                continue;
            }
            match self.network_remove(&rec.id) {
                Ok(()) => removed.push(rec.name),
                // In use: kept, as Docker's prune keeps it; gone already: a remove beside.
                Err(EngineError::Forbidden(_) | EngineError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.emit_prune("network", 0);
        Ok(removed)
    }

    /// `POST /networks/{id}/connect`: on the record, and on the running container at once.
    pub async fn network_connect(
        self: &Arc<Self>,
        network: &str,
        container: &str,
        settings: &Value,
    ) -> Result<()> {
        let c = self.get(container)?;
        let _op = c.op.lock().await;
        let (name, cfg) = match network {
            "host" | "none" => {
                return Err(EngineError::Forbidden(
                    "container cannot be disconnected from host network or connected to host \
                     network"
                        .into(),
                ))
            }
            "bridge" | "default" => {
                self.net
                    .bridge_info()
                    .ok_or_else(|| EngineError::NotFound(format!("network {network} not found")))?;
                (DEFAULT.to_string(), network_id_of(DEFAULT))
            }
            other => {
                let n = self
                    .net
                    .find_user(other)
                    .ok_or_else(|| EngineError::NotFound(format!("network {other} not found")))?;
                (n.rec.name, n.rec.id)
            }
        };
        let ep = parse_endpoint_settings(&name, cfg, settings)?;
        if let Some(ip6) = ep.ip6 {
            if name != DEFAULT
                && self
                    .net
                    .find_user(&name)
                    .is_some_and(|n| n.rec.subnet6.is_none())
            {
                return Err(crate::network::no_ipv6(&name, ip6));
            }
        }
        if name == DEFAULT && (ep.ip.is_some() || ep.ip6.is_some() || !ep.aliases.is_empty()) {
            return Err(EngineError::Invalid(
                "user specified IP address and network-scoped aliases are supported on user \
                 defined networks only"
                    .into(),
            ));
        }
        let rec = c.record().clone();
        let mode = rec.host_config.network_mode.as_str();
        if mode == "host" || mode == "none" || mode.starts_with("container:") {
            return Err(EngineError::Forbidden(format!(
                "container sharing network namespace with another container or host cannot \
                 be connected to any other network (network mode {mode})"
            )));
        }
        if rec.endpoints.contains_key(&name) {
            return Err(EngineError::Forbidden(format!(
                "endpoint with name {} already exists in network {name}",
                rec.name
            )));
        }
        let st = c.state();
        if st.status.is_active() && st.pid > 0 {
            let (engine, c2, name2, ep2, pid) =
                (self.clone(), c.clone(), name.clone(), ep.clone(), st.pid);
            tokio::task::spawn_blocking(move || engine.attach_running(&c2, pid, &name2, &ep2))
                .await
                .map_err(|e| EngineError::Internal(format!("connect: {e}")))??;
        }
        c.update_record(&self.cfg, |r| {
            r.endpoints.insert(name.clone(), ep.clone());
        })?;
        self.emit_network(&ep.network_id, &name, "connect", Some(&c.id));
        Ok(())
    }

    /// Connects a running container (its init is `pid`) to a network as its next `ethN`
    /// (blocking).
    fn attach_running(
        &self,
        c: &crate::container::Container,
        pid: i64,
        name: &str,
        cfg: &EndpointConfig,
    ) -> Result<()> {
        let _changes = self.net.changes.read().unwrap_or_else(|p| p.into_inner());
        let id = c.id.as_str();
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
            .map_err(|e| EngineError::Invalid(format!("the container's network: {e}")))?;
        let sandbox = netns::Sandbox::join(ns.into())
            .map_err(|e| EngineError::Internal(format!("joining the container's network: {e}")))?;
        let names = sandbox
            .link_names()
            .map_err(|e| EngineError::Internal(format!("the container's interfaces: {e}")))?;
        let n = (0..)
            .find(|n| !names.iter().any(|l| *l == format!("eth{n}")))
            .unwrap_or(0);
        // A container without a default route (its networks were internal, or it had none
        // of IPv6) gets it from this network when it can give one.
        let mut routes = crate::network::Routes {
            v4: !sandbox.has_default_route(false).unwrap_or(true),
            v6: !sandbox.has_default_route(true).unwrap_or(true),
        };
        let state = self.attach_one(id, &sandbox, name, cfg, n, &mut routes)?;
        // Kept only while this run goes on: an exit that came meanwhile took the others
        // already and would never release this one.
        let mut kept = false;
        let recorded = c.update_state(&self.cfg, false, |s| {
            if s.status.is_active() && s.pid == pid {
                s.networks.insert(name.to_string(), state.clone());
                kept = true;
            }
        });
        if !kept {
            let mut gone = BTreeMap::new();
            gone.insert(name.to_string(), state);
            self.release_network(id, gone);
            return Err(EngineError::Conflict(format!(
                "container {} exited while it was being connected to {name}",
                c.name()
            )));
        }
        if let Err(e) = recorded {
            tracing::warn!(container = id, "recording the endpoint: {e}");
        }
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`: off the record, and off the running container at
    /// once (its interface and address on that network go; its ports with it when they
    /// were published there).
    pub async fn network_disconnect(
        self: &Arc<Self>,
        network: &str,
        container: &str,
        _force: bool,
    ) -> Result<()> {
        let c = self.get(container)?;
        let _op = c.op.lock().await;
        let name = match network {
            "host" | "none" => {
                return Err(EngineError::Forbidden(
                    "container cannot be disconnected from host network or connected to host \
                     network"
                        .into(),
                ))
            }
            "bridge" | "default" => DEFAULT.to_string(),
            other => match self.net.find_user(other) {
                Some(n) => n.rec.name,
                None => return Err(EngineError::NotFound(format!("network {other} not found"))),
            },
        };
        let (cname, known) = {
            let r = c.record();
            (r.name.clone(), r.endpoints.get(&name).cloned())
        };
        let Some(cfg) = known else {
            return Err(EngineError::Forbidden(format!(
                "container {cname} is not connected to network {name}"
            )));
        };
        let mut gone = BTreeMap::new();
        c.update_state(&self.cfg, false, |s| {
            if let Some(ep) = s.networks.remove(&name) {
                gone.insert(name.clone(), ep);
            }
        })?;
        if !gone.is_empty() {
            let (engine, id) = (self.clone(), c.id.clone());
            tokio::task::spawn_blocking(move || engine.release_network(&id, gone))
                .await
                .map_err(|e| EngineError::Internal(format!("disconnect: {e}")))?;
        }
        c.update_record(&self.cfg, |r| {
            r.endpoints.remove(&name);
        })?;
        self.emit_network(&cfg.network_id, &name, "disconnect", Some(&c.id));
        Ok(())
    }

    /// A network event: `create`, `destroy`, `connect`, `disconnect`.
    fn emit_network(&self, id: &str, name: &str, action: &str, container: Option<&str>) {
        let mut attributes = BTreeMap::new();
        attributes.insert("name".to_string(), name.to_string());
        attributes.insert("type".to_string(), "bridge".to_string());
        if let Some(c) = container {
            attributes.insert("container".to_string(), c.to_string());
        }
        self.events.publish(
            berth_api::events::NETWORK,
            action,
            berth_api::events::Actor {
                id: id.to_string(),
                attributes,
            },
        );
    }

    /// The name of the built-in network `name_or_id` means, if any.
    fn builtin(&self, name_or_id: &str) -> Option<&'static str> {
        let names: &[&'static str] = if self.net.has_bridge() {
            &[DEFAULT, "host", "none"]
        } else {
            &["host", "none"]
        };
        names.iter().copied().find(|n| {
            *n == name_or_id || (!name_or_id.is_empty() && network_id_of(n).starts_with(name_or_id))
        })
    }

    /// The running containers on a network, as inspect's `Containers`.
    fn containers_of(&self, network_id: &str) -> serde_json::Map<String, Value> {
        let mut members = serde_json::Map::new();
        for c in self.all() {
            for (name, ep) in c.state().networks {
                if ep.network_id == network_id {
                    members.insert(
                        c.id.clone(),
                        json!({
                            "Name": c.name(),
                            "EndpointID": endpoint_id(&c.id, &name),
                            "MacAddress": ep.mac,
                            "IPv4Address": format!("{}/{}", ep.ip, ep.prefix),
                            "IPv6Address": ep
                                .v6
                                .map(|v| format!("{}/{}", v.ip, v.prefix))
                                .unwrap_or_default(),
                        }),
                    );
                }
            }
        }
        members
    }

    /// Every network, each as Docker's `NetworkResource`; `containers` fills `Containers`
    /// (inspect does, the list does not, as Docker's).
    fn network_resources(&self, containers: bool) -> Vec<Value> {
        let created = crate::record::format_time(Some(self.started_at));
        let mut out = Vec::new();
        let members = |id: &str| {
            if containers {
                self.containers_of(id)
            } else {
                serde_json::Map::new()
            }
        };
        if let Some(bridge) = self.net.bridge_info() {
            let id = network_id_of(DEFAULT);
            out.push(json!({
                "Name": DEFAULT,
                "Id": id,
                "Created": created,
                "Scope": "local",
                "Driver": "bridge",
                "EnableIPv4": true,
                "EnableIPv6": false,
                "IPAM": {
                    "Driver": "default",
                    "Options": null,
                    "Config": [{"Subnet": bridge.0, "Gateway": bridge.1}],
                },
                "Internal": false,
                "Attachable": false,
                "Ingress": false,
                "ConfigFrom": {"Network": ""},
                "ConfigOnly": false,
                "Containers": members(&id),
                "Options": {
                    "com.docker.network.bridge.default_bridge": "true",
                    "com.docker.network.bridge.enable_icc": "true",
                    "com.docker.network.bridge.enable_ip_masquerade": "true",
                    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                    "com.docker.network.bridge.name": bridge.2,
                    "com.docker.network.driver.mtu": "1500",
                },
                "Labels": {},
            }));
        }
        for (name, driver) in [("host", "host"), ("none", "null")] {
            out.push(json!({
                "Name": name,
                "Id": network_id_of(name),
                "Created": created,
                "Scope": "local",
                "Driver": driver,
                "EnableIPv4": true,
                "EnableIPv6": false,
                "IPAM": {"Driver": "default", "Options": null, "Config": []},
                "Internal": false,
                "Attachable": false,
                "Ingress": false,
                "ConfigFrom": {"Network": ""},
                "ConfigOnly": false,
                "Containers": {},
                "Options": {},
                "Labels": {},
            }));
        }
        let users: Vec<NetworkRecord> = self.net.users().values().map(|n| n.rec.clone()).collect();
        for rec in users {
            let mut config = json!({"Subnet": rec.subnet, "Gateway": rec.gateway.to_string()});
            if let Some(r) = &rec.ip_range {
                config["IPRange"] = r.clone().into();
            }
            let mut configs = vec![config];
            if let Some(subnet6) = &rec.subnet6 {
                let gateway6 = rec.gateway6.map(|g| g.to_string()).unwrap_or_default();
                let mut config = json!({"Subnet": subnet6, "Gateway": gateway6});
                if let Some(r) = &rec.ip_range6 {
                    config["IPRange"] = r.clone().into();
                }
                configs.push(config);
            }
            out.push(json!({
                "Name": rec.name,
                "Id": rec.id,
                "Created": crate::record::format_time(Some(rec.created)),
                "Scope": "local",
                "Driver": "bridge",
                "EnableIPv4": true,
                "EnableIPv6": rec.subnet6.is_some(),
                "IPAM": {"Driver": "default", "Options": {}, "Config": configs},
                "Internal": rec.internal,
                "Attachable": rec.attachable,
                "Ingress": false,
                "ConfigFrom": {"Network": ""},
                "ConfigOnly": false,
                "Containers": members(&rec.id),
                "Options": rec.options,
                "Labels": rec.labels,
            }));
        }
        out
    }

    /// `GET /networks`, filtered as Docker's.
    pub fn network_list(&self, filters: &Filters) -> Result<Vec<Value>> {
        filters
            .validate(FILTERS)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        for t in filters.get("type") {
            if t != "builtin" && t != "custom" {
                return Err(EngineError::Invalid(format!(
                    "invalid filter: 'type'='{t}'"
                )));
            }
        }
        for d in filters.get("dangling") {
            if !["true", "false", "1", "0"].contains(&d.as_str()) {
                return Err(EngineError::Invalid(format!(
                    "invalid filter 'dangling={d}'"
                )));
            }
        }
        let field = |n: &Value, k: &str| n[k].as_str().unwrap_or("").to_string();
        let builtin = [DEFAULT, "host", "none"].map(network_id_of);
        // The members only for `dangling` (each network's scans every container's state).
        let dangling = !filters.get("dangling").is_empty();
        Ok(self
            .network_resources(dangling)
            .into_iter()
            .filter(|n| {
                let any = |key: &str, ok: &dyn Fn(&str) -> bool| {
                    let wanted = filters.get(key);
                    wanted.is_empty() || wanted.iter().any(|w| ok(w))
                };
                let name = field(n, "Name");
                let id = field(n, "Id");
                let is_builtin = builtin.contains(&id);
                let used = n["Containers"].as_object().is_some_and(|m| !m.is_empty());
                let labels: HashMap<String, String> =
                    serde_json::from_value(n["Labels"].clone()).unwrap_or_default();
                any("name", &|w| name.contains(w))
                    && any("id", &|w| id.starts_with(w))
                    && any("driver", &|w| field(n, "Driver") == w)
                    && any("scope", &|w| w == "local")
                    && any("type", &|w| (w == "builtin") == is_builtin)
                    // Docker's: a custom network no container is on.
                    && any("dangling", &|w| {
                        (w == "true" || w == "1") == (!is_builtin && !used)
                    })
                    && berth_api::filters::labels_match(filters.get("label"), Some(&labels))
            })
            .map(|mut n| {
                n["Containers"] = json!({});
                n
            })
            .collect())
    }

    /// `GET /networks/{id}`: by name, full id or unique id prefix.
    pub fn network_inspect(&self, name_or_id: &str) -> Result<Value> {
        let all = self.network_resources(true);
        let by = |k: &str| all.iter().find(|n| n[k].as_str() == Some(name_or_id));
        let found = by("Name").or_else(|| by("Id")).or_else(|| {
            let mut m = all.iter().filter(|n| {
                !name_or_id.is_empty()
                    && n["Id"].as_str().is_some_and(|i| i.starts_with(name_or_id))
            });
            match (m.next(), m.next()) {
                (Some(n), None) => Some(n),
                _ => None,
            }
        });
        found
            .cloned()
            .ok_or_else(|| EngineError::NotFound(format!("network {name_or_id} not found")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_subnets_that_would_take_over_routing_are_refused() {
        let ok = |s: &str| {
            CreateNetwork::parse(&json!({"Name": "n", "EnableIPv6": true,
                "IPAM": {"Config": [{"Subnet": s}]}}))
        };
        assert!(ok("fd00:be:1::/64").is_ok());
        for (bad, says) in [
            ("::/0", "/16 to /124"),
            ("fd00:77::5/64", "it should be fd00:77::/64"),
            ("ff00::/16", "multicast"),
            ("fe80::/64", "link-local"),
            ("::ffff:0:0/96", "IPv4-mapped"),
            ("::1/128", "/16 to /124"),
        ] {
            let e = ok(bad).expect_err(bad).to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn docker_s_create_body_is_read_and_the_unapplied_refused() {
        let body = json!({
            "Name": "mynet", "CheckDuplicate": true, "Driver": "bridge", "Scope": "",
            "EnableIPv6": false, "IPAM": {"Driver": "default", "Options": {},
            "Config": [{"Subnet": "10.7.0.0/24", "IPRange": "10.7.0.128/25",
                        "Gateway": "10.7.0.254"}]},
            "Internal": true, "Attachable": false, "Ingress": false, "ConfigOnly": false,
            "ConfigFrom": null, "Options": {"com.docker.network.bridge.enable_icc": "false"},
            "Labels": {"app": "emr"}
        });
        let req = CreateNetwork::parse(&body).unwrap();
        assert_eq!(req.name, "mynet");
        assert!(req.internal);
        assert_eq!(req.subnet, Some("10.7.0.0/24".parse().unwrap()));
        assert_eq!(req.ip_range, Some("10.7.0.128/25".parse().unwrap()));
        assert_eq!(req.gateway, Some(Ipv4Addr::new(10, 7, 0, 254)));
        assert_eq!(req.labels["app"], "emr");
        for (bad, says) in [
            (json!({"Name": "n", "Driver": "overlay"}), "overlay"),
            (
                json!({"Name": "n", "IPAM": {"Config": [{"Subnet": "fd00:be::/64"}]}}),
                "needs IPv6 on the network (--ipv6",
            ),
            (
                json!({"Name": "n", "EnableIPv6": true, "IPAM": {"Config": [
                    {"Subnet": "fd00:be::/64"}, {"Subnet": "fd00:bf::/64"}]}}),
                "several IPv6 subnets",
            ),
            (
                json!({"Name": "n", "IPAM": {"Config": [
                    {"Subnet": "10.0.0.0/24"}, {"Subnet": "10.0.1.0/24"}]}}),
                "several IPv4 subnets",
            ),
            (
                json!({"Name": "n", "EnableIPv6": true, "IPAM": {"Config": [
                    {"Subnet": "fd00:be::/64", "Gateway": "10.0.0.1"}]}}),
                "invalid gateway 10.0.0.1: parent subnet is an IPv6 block",
            ),
            (
                json!({"Name": "n", "IPAM": {"Config": [
                    {"Subnet": "10.0.0.0/24", "IPRange": "fd00::/80"}]}}),
                "invalid ip-range fd00::/80: parent subnet is an IPv4 block",
            ),
            (
                json!({"Name": "n", "EnableIPv6": true, "IPAM": {"Config": [
                    {"Subnet": "fd00:be::/129"}]}}),
                "invalid subnet",
            ),
            (json!({"Name": "n", "Ingress": true}), "Ingress"),
            (
                json!({"Name": "n", "Options": {"com.docker.network.driver.mtu": "9000"}}),
                "mtu",
            ),
            (
                json!({"Name": "n", "IPAM": {"Driver": "dhcp"}}),
                "IPAM.Driver",
            ),
            (
                json!({"Name": "n", "IPAM": {"Config": [{"Gateway": "10.0.0.1"}]}}),
                "subnet",
            ),
            (
                json!({"Name": "n", "IPAM": {"Config": [{"Subnet": "10.0.0.0/33"}]}}),
                "subnet",
            ),
            (
                json!({"Name": "n", "IPAM": {"Config": [{"Subnet": "10.0.0.0/24",
                       "AuxiliaryAddresses": {"a": "10.0.0.9"}}]}}),
                "AuxiliaryAddresses",
            ),
            (json!({"Name": ""}), "empty"),
            (json!({"Name": "a/b"}), "invalid network name"),
        ] {
            let e = CreateNetwork::parse(&bad).expect_err(&bad.to_string());
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn an_ipv6_network_s_body_is_read_both_families() {
        // docker network create --ipv6 --subnet 10.7.0.0/24 --subnet fd00:be:7::/64
        //   --gateway fd00:be:7::fe --ip-range fd00:be:7::100/120
        let body = json!({
            "Name": "v6net", "Driver": "bridge", "EnableIPv6": true,
            "IPAM": {"Driver": "default", "Options": {}, "Config": [
                {"Subnet": "10.7.0.0/24"},
                {"Subnet": "fd00:be:7::/64", "Gateway": "fd00:be:7::fe",
                 "IPRange": "fd00:be:7::100/120"}]},
        });
        let req = CreateNetwork::parse(&body).unwrap();
        assert!(req.enable_ipv6);
        assert_eq!(req.subnet, Some("10.7.0.0/24".parse().unwrap()));
        assert_eq!(req.subnet6, Some("fd00:be:7::/64".parse().unwrap()));
        assert_eq!(req.gateway6, Some("fd00:be:7::fe".parse().unwrap()));
        assert_eq!(req.ip_range6, Some("fd00:be:7::100/120".parse().unwrap()));
        assert_eq!(req.gateway, None);
        // --ipv6 alone: the subnets are chosen.
        let req = CreateNetwork::parse(&json!({"Name": "n", "EnableIPv6": true})).unwrap();
        assert!(req.enable_ipv6 && req.subnet6.is_none() && req.subnet.is_none());
        // --ipv6=false: IPv4 only, as before.
        let req = CreateNetwork::parse(&json!({"Name": "n", "EnableIPv6": false})).unwrap();
        assert!(!req.enable_ipv6);
    }
}
