//! A container's networks at start and exit: which namespace it gets (made ahead by
//! berth-network's pool), its endpoints on the default bridge and on user-defined networks,
//! and the teardown that collects every error and goes on. The networks themselves (the
//! default bridge, set up when the engine opens, and the user-defined ones, each with a
//! record under `<root>/networks/`) live in [`Networks`]; their API is networks.rs.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock, Weak};

use berth_network::dns;

use berth_api::container::NetworkSettings;
use berth_network::ports::{PortMap, Request, Target};
use berth_network::{netns, Attach, Bridge, BridgeConfig, Endpoint, Endpoint6};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::record::{ContainerRecord, ContainerState};
use crate::Engine;

/// Namespaces kept ready.
const AHEAD: usize = 1;

/// The default bridge's name in the API.
pub(crate) const DEFAULT: &str = "bridge";

/// A user-defined network, as `<root>/networks/<id>.json` keeps it (written atomically at
/// create, removed at `network rm`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    pub created: chrono::DateTime<chrono::Utc>,
    pub subnet: String,
    pub gateway: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// Its IPv6 subnet (`--ipv6`); `None`: IPv4 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<String>,
    /// The bridge's IPv6 address, the containers' IPv6 gateway (with `subnet6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range6: Option<String>,
    pub internal: bool,
    pub attachable: bool,
    pub icc: bool,
    /// The bridge's interface name (`br-<id12>`, or the `bridge.name` option).
    pub bridge: String,
    /// Five characters of the id naming its veth pairs (unique among networks).
    pub veth_tag: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The driver options as given (inspect shows them).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl NetworkRecord {
    pub(crate) fn bridge_config(&self) -> Result<BridgeConfig> {
        let subnet: berth_network::ipam::Subnet =
            self.subnet.parse().map_err(EngineError::Invalid)?;
        let mut cfg = BridgeConfig::new(&self.bridge);
        cfg.bip = Some((self.gateway, subnet.prefix));
        cfg.ip_range = self
            .ip_range
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(EngineError::Invalid)?;
        if let Some(subnet6) = &self.subnet6 {
            let subnet6: berth_network::ipam::Subnet6 =
                subnet6.parse().map_err(EngineError::Invalid)?;
            let gateway6 = self.gateway6.unwrap_or_else(|| subnet6.host(1));
            cfg.v6 = Some((gateway6, subnet6.prefix));
            cfg.ip_range6 = self
                .ip_range6
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(EngineError::Invalid)?;
        }
        cfg.internal = self.internal;
        cfg.icc = self.icc;
        cfg.veth_tag = Some(self.veth_tag.clone());
        Ok(cfg)
    }
}

/// A user-defined network: its record and its bridge (or why it could not be set up).
#[derive(Clone)]
pub(crate) struct UserNet {
    pub rec: NetworkRecord,
    pub bridge: std::result::Result<Arc<Bridge>, String>,
}

/// The engine's networks.
pub(crate) struct Networks {
    /// The default bridge: `None` with `berthd --bridge none`; the set-up error when it
    /// could not be made (each start that needs it reports it).
    default: Option<std::result::Result<Arc<Bridge>, String>>,
    /// The user-defined networks by id.
    pub(crate) user: RwLock<BTreeMap<String, UserNet>>,
    /// Where their records are.
    pub(crate) dir: PathBuf,
    pub(crate) pool: netns::Pool,
    /// The sockets that reserve each running container's published host ports.
    held: std::sync::Mutex<HashMap<String, Vec<OwnedFd>>>,
    /// Where new networks' subnets come from (berthd's `--default-address-pool`).
    pub(crate) candidates: Vec<berth_network::ipam::Subnet>,
    /// The global id of berthd's own ULA /48, where new networks' IPv6 subnets come from
    /// when none is given (Docker's default IPv6 pool): from the machine's id and the
    /// root, so stable across restarts and distinct for two daemons on one host.
    pub(crate) ula_id: u64,
    /// The containers' names for the embedded DNS (set once the engine exists).
    names: OnceLock<Arc<dyn dns::Names>>,
    /// The embedded DNS served to each container on a user-defined network, by its id.
    dns: std::sync::Mutex<HashMap<String, dns::ServeHandle>>,
    /// Held (read) while endpoints are made and recorded (a start, a connect), and
    /// (write) by `network rm`: a network is never removed under a container that is
    /// being connected to it and not yet counted among its members.
    pub(crate) changes: RwLock<()>,
    /// Host clients of published TCP ports straight to the container (redirect.rs).
    pub(crate) redirects: crate::redirect::Redirects,
}

impl Networks {
    /// Sets the default bridge and every recorded user-defined network up (blocking:
    /// netlink and one `nft` each). A network that cannot be set up is kept with its error.
    /// `redirect`: the socket redirect's lease, if it is on.
    pub(crate) fn open(
        bridge: Option<&BridgeConfig>,
        root: &Path,
        redirect: Option<std::time::Duration>,
    ) -> Networks {
        let default = bridge.map(|cfg| {
            Bridge::setup(cfg).map(Arc::new).map_err(|e| {
                tracing::error!("the default bridge {}: {e}", cfg.name);
                e.to_string()
            })
        });
        let dir = root.join("networks");
        let mut user = BTreeMap::new();
        for rec in read_records(&dir) {
            let bridge = rec
                .bridge_config()
                .map_err(|e| e.to_string())
                .and_then(|cfg| Bridge::setup(&cfg).map_err(|e| e.to_string()))
                .map(Arc::new);
            if let Err(e) = &bridge {
                tracing::error!("network {}: {e}", rec.name);
            }
            user.insert(rec.id.clone(), UserNet { rec, bridge });
        }
        Networks {
            default,
            user: RwLock::new(user),
            dir,
            pool: netns::Pool::new(AHEAD),
            held: Default::default(),
            candidates: bridge
                .map(|b| b.candidates.clone())
                .unwrap_or_else(berth_network::ipam::default_candidates),
            ula_id: ula_id(root),
            names: OnceLock::new(),
            dns: Default::default(),
            changes: RwLock::new(()),
            redirects: match redirect {
                Some(lease) => {
                    crate::redirect::Redirects::open(&crate::redirect::pin_dir(root), lease)
                }
                None => crate::redirect::Redirects::off(Some(&crate::redirect::pin_dir(root))),
            },
        }
    }

    /// Gives the embedded DNS the engine's containers to answer from.
    pub(crate) fn init_dns(&self, engine: Weak<Engine>) {
        let _ = self.names.set(Arc::new(EngineNames(engine)));
    }

    fn dns(&self) -> std::sync::MutexGuard<'_, HashMap<String, dns::ServeHandle>> {
        self.dns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<OwnedFd>>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn users(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, UserNet>> {
        self.user.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks every 30 s that another firewall's FORWARD chain let the bridges' traffic
    /// through (berth_network::coexist): dockerd started after berthd sets its policy to
    /// DROP, and the containers' egress would stop without a word.
    pub(crate) fn watch_other_firewalls(self: &Arc<Self>) {
        let net = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut known: HashMap<String, Option<&'static str>> = HashMap::new();
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                let Some(net) = net.upgrade() else {
                    return;
                };
                let mut bridges: Vec<String> = net.bridge_info().map(|b| b.2).into_iter().collect();
                bridges.extend(
                    net.users()
                        .values()
                        .filter(|n| n.bridge.is_ok())
                        .map(|n| n.rec.bridge.clone()),
                );
                let weak = Arc::downgrade(&net);
                drop(net);
                for name in bridges {
                    let bridge = name.clone();
                    let weak = weak.clone();
                    let found = tokio::task::spawn_blocking(move || {
                        let net = weak.upgrade()?;
                        // A network removed since the list was made is not let in again:
                        // `network rm` holds this lock (write) while its bridge goes.
                        let _changes = net.changes.read().unwrap_or_else(|p| p.into_inner());
                        let still = net.bridge_info().is_some_and(|b| b.2 == bridge)
                            || net
                                .users()
                                .values()
                                .any(|n| n.bridge.is_ok() && n.rec.bridge == bridge);
                        if !still {
                            return None;
                        }
                        // firewalld started (or reloaded without berth's zone) since.
                        if let Err(e) = berth_network::firewalld::open(&bridge) {
                            tracing::warn!("{e}: containers on {bridge} may not reach out");
                        }
                        Some(berth_network::coexist::open_forward(&bridge))
                    })
                    .await
                    .ok()
                    .flatten();
                    match found {
                        Some(Ok(chain)) if known.get(&name) != Some(&chain) => {
                            if let Some(chain) = chain {
                                tracing::info!(
                                    "another firewall's FORWARD chain drops: berth's accepts \
                                     for {name} are in iptables' {chain}"
                                );
                            }
                            known.insert(name, chain);
                        }
                        Some(Err(e)) => {
                            tracing::warn!("{e}: containers on {name} may not reach out")
                        }
                        _ => {}
                    }
                }
            }
        });
    }

    /// The default bridge's subnet, gateway and interface name, when it is up.
    pub(crate) fn bridge_info(&self) -> Option<(String, String, String)> {
        match &self.default {
            Some(Ok(b)) => Some((b.subnet.to_string(), b.gateway.to_string(), b.name.clone())),
            _ => None,
        }
    }

    pub(crate) fn has_bridge(&self) -> bool {
        self.default.is_some()
    }

    /// The default bridge.
    fn default_bridge(&self) -> Result<Arc<Bridge>> {
        match &self.default {
            Some(Ok(b)) => Ok(b.clone()),
            Some(Err(e)) => Err(EngineError::Invalid(format!(
                "the default bridge network is not available: {e}"
            ))),
            // 400, not 404: the docker CLI reads a 404 of a create as an image to pull.
            None => Err(EngineError::Invalid("network bridge not found".into())),
        }
    }

    /// The bridge of the network with this id.
    pub(crate) fn bridge_of(&self, network_id: &str, name: &str) -> Result<Arc<Bridge>> {
        if network_id == network_id_of(DEFAULT) {
            return self.default_bridge();
        }
        match self.users().get(network_id) {
            Some(n) => n
                .bridge
                .clone()
                .map_err(|e| EngineError::Invalid(format!("network {name} is not available: {e}"))),
            None => Err(EngineError::Invalid(format!("network {name} not found"))),
        }
    }

    /// A user-defined network by name, full id or unique id prefix (Docker's order).
    pub(crate) fn find_user(&self, name_or_id: &str) -> Option<UserNet> {
        let users = self.users();
        if let Some(n) = users.values().find(|n| n.rec.name == name_or_id) {
            return Some(n.clone());
        }
        if let Some(n) = users.get(name_or_id) {
            return Some(n.clone());
        }
        let mut m = users
            .values()
            .filter(|n| !name_or_id.is_empty() && n.rec.id.starts_with(name_or_id));
        match (m.next(), m.next()) {
            (Some(n), None) => Some(n.clone()),
            _ => None,
        }
    }
}

/// The global id of the default IPv6 pool (see [`Networks::ula_id`]).
fn ula_id(root: &Path) -> u64 {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(std::fs::read("/etc/machine-id").unwrap_or_default());
    hash.update(root.as_os_str().as_encoded_bytes());
    let digest = hash.finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(id)
}

/// The records in `dir`; one that does not parse is logged and passed over.
fn read_records(dir: &Path) -> Vec<NetworkRecord> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<NetworkRecord>(&b).map_err(|e| e.to_string()))
        {
            Ok(rec) => out.push(rec),
            Err(e) => tracing::error!("network record {}: {e}", path.display()),
        }
    }
    out
}

/// A container's network, by `HostConfig.NetworkMode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    Host,
    /// A namespace of its own with `lo` only.
    None,
    /// The namespace of another container (`container:X`).
    Container(String),
    /// A namespace of its own on the networks of its record's endpoints.
    Networks,
}

/// A container's membership of a network, as its record keeps it (`--network`,
/// `NetworkingConfig`, `network connect`): what was asked, not what it got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointConfig {
    pub network_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// `--ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    /// `--ip6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    /// `--mac-address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// What a running container holds on a network, kept in its state so that a berthd
/// restart can take the address back and an exit can release it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointState {
    #[serde(default)]
    pub network_id: String,
    /// Its interface in the container (`eth0`, `eth1`...).
    #[serde(default)]
    pub ifname: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// Its IPv6 address, on a network with IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v6: Option<EndpointV6>,
    pub mac: String,
    pub host_veth: String,
    #[serde(default)]
    pub host_index: u32,
    /// Its published ports (on the container's first network only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<crate::ports::Published>,
}

/// A container's IPv6 address on a network, as its state keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointV6 {
    pub ip: Ipv6Addr,
    pub prefix: u8,
    pub gateway: Ipv6Addr,
}

impl EndpointState {
    fn of(network_id: &str, ifname: &str, ep: &Endpoint) -> EndpointState {
        EndpointState {
            network_id: network_id.into(),
            ifname: ifname.into(),
            ip: ep.ip,
            prefix: ep.prefix,
            gateway: ep.gateway,
            v6: ep.v6.map(|v| EndpointV6 {
                ip: v.ip,
                prefix: v.prefix,
                gateway: v.gateway,
            }),
            mac: berth_network::ipam::format_mac(ep.mac),
            host_veth: ep.host_veth.clone(),
            host_index: ep.host_index,
            ports: Vec::new(),
        }
    }

    fn maps(&self) -> Vec<PortMap> {
        self.ports.iter().filter_map(|p| p.map()).collect()
    }

    /// Where its published ports go.
    fn target(&self) -> Target {
        Target {
            ip: self.ip,
            ip6: self.v6.map(|v| v.ip),
        }
    }

    /// Its addresses, both families.
    fn addresses(&self) -> impl Iterator<Item = IpAddr> {
        std::iter::once(IpAddr::V4(self.ip)).chain(self.v6.map(|v| IpAddr::V6(v.ip)))
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint {
            ip: self.ip,
            prefix: self.prefix,
            gateway: self.gateway,
            v6: self.v6.map(|v| Endpoint6 {
                ip: v.ip,
                prefix: v.prefix,
                gateway: v.gateway,
            }),
            mac: parse_mac(&self.mac).unwrap_or_else(|| berth_network::ipam::mac_of(self.ip)),
            host_veth: self.host_veth.clone(),
            host_index: self.host_index,
        }
    }
}

/// `02:42:ac:11:00:02`.
pub(crate) fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// A start's network, ready: the namespace for the runtime and the endpoints, if any.
pub(crate) struct Prepared {
    pub netns: Option<OwnedFd>,
    pub endpoints: BTreeMap<String, EndpointState>,
    /// The embedded DNS answers at 127.0.0.11 (a user-defined network is among them).
    pub dns: bool,
}

/// The embedded DNS's view of the engine's containers (Docker's `ResolveName` and
/// `ResolveIP`): what a container asks is answered from the running containers that share
/// a user-defined network with it.
struct EngineNames(Weak<Engine>);

impl dns::Names for EngineNames {
    fn lookup(&self, who: &str, name: &str) -> Option<Vec<IpAddr>> {
        let found = self.0.upgrade()?.on_shared_networks(who, |c, network, ep| {
            let rec = c.record();
            let matches = |n: &str| {
                n.eq_ignore_ascii_case(&rec.name)
                    || n.eq_ignore_ascii_case(&c.id[..12])
                    || rec
                        .endpoints
                        .get(network)
                        .is_some_and(|e| e.aliases.iter().any(|a| n.eq_ignore_ascii_case(a)))
            };
            // `name` or `name.network`, as Docker's.
            let scoped = name
                .strip_suffix(&network.to_ascii_lowercase())
                .and_then(|n| n.strip_suffix('.'));
            if matches(name) || scoped.is_some_and(matches) {
                ep.addresses().collect()
            } else {
                Vec::new()
            }
        });
        (!found.is_empty()).then_some(found)
    }

    fn name_of(&self, who: &str, ip: IpAddr) -> Option<String> {
        self.0
            .upgrade()?
            .on_shared_networks(who, |c, network, ep| {
                ep.addresses()
                    .any(|a| a == ip)
                    .then(|| format!("{}.{network}", c.name()))
            })
            .into_iter()
            .next()
    }
}

impl Engine {
    /// The mode of `HostConfig.NetworkMode`; at create, the network or container it names
    /// must exist.
    pub(crate) fn network_mode(&self, mode: &str) -> Result<Mode> {
        Ok(match mode {
            "host" => Mode::Host,
            "none" => Mode::None,
            // `berthd --bridge none`: the default network is a namespace of its own, as
            // Docker's with `-b none`; on the networks connected since, if any.
            "" | "default" if !self.net.has_bridge() => Mode::Networks,
            "" | "default" | "bridge" => {
                self.net.default_bridge()?;
                Mode::Networks
            }
            other => match other.strip_prefix("container:") {
                Some("") => {
                    return Err(EngineError::Invalid(
                        "invalid network mode: container: names no container".into(),
                    ))
                }
                Some(name) => Mode::Container(name.to_string()),
                None => {
                    if self.net.find_user(other).is_none() {
                        return Err(EngineError::Invalid(format!("network {other} not found")));
                    }
                    Mode::Networks
                }
            },
        })
    }

    /// The record's endpoints of a create: the network of `NetworkMode` and every entry
    /// of `NetworkingConfig.EndpointsConfig` (the docker CLI names the mode's network
    /// `default` there), each checked: the network exists, `--ip` and aliases are on a
    /// user-defined network, nothing berth would not apply.
    pub(crate) fn endpoints_at_create(
        &self,
        mode_name: &str,
        mode: &Mode,
        endpoints: Option<&HashMap<String, serde_json::Value>>,
        config_mac: Option<&str>,
    ) -> Result<BTreeMap<String, EndpointConfig>> {
        let mut out = BTreeMap::new();
        let asked: Vec<(&String, &serde_json::Value)> = endpoints.into_iter().flatten().collect();
        if *mode != Mode::Networks {
            if let Some((name, _)) = asked
                .iter()
                .find(|(name, v)| !crate::unapplied::is_zero_struct(v) || !is_mode(name, mode_name))
            {
                return Err(EngineError::Invalid(format!(
                    "container sharing network namespace with another container or host \
                     cannot be connected to any other network (network mode {mode_name}, \
                     endpoint settings for {name})"
                )));
            }
            if config_mac.is_some_and(|m| !m.is_empty()) {
                return Err(EngineError::Invalid(
                    "conflicting options: mac-address and the network mode".into(),
                ));
            }
            return Ok(out);
        }
        // `default` without a default bridge: no network of its own to start with.
        let primary = if matches!(mode_name, "" | "default") && !self.net.has_bridge() {
            None
        } else {
            Some(self.network_key(mode_name)?)
        };
        if let Some(primary) = &primary {
            out.insert(primary.0.clone(), primary.1.clone());
        }
        for (name, value) in asked {
            let key = match &primary {
                Some(primary) if is_mode(name, mode_name) => primary.clone(),
                None if is_mode(name, mode_name) => {
                    if !crate::unapplied::is_zero_struct(value) {
                        return Err(EngineError::Invalid(
                            "endpoint settings for the default network, which berthd does not \
                             have (berthd --bridge none): use --network NAME"
                                .into(),
                        ));
                    }
                    continue;
                }
                _ => self.network_key(name)?,
            };
            let ep = parse_endpoint_settings(&key.0, key.1.network_id.clone(), value)?;
            out.insert(key.0, ep);
        }
        if let Some(mac) = config_mac.filter(|m| !m.is_empty()) {
            let Some(ep) = primary.as_ref().and_then(|p| out.get_mut(&p.0)) else {
                return Err(EngineError::Invalid(
                    "--mac-address needs a network (berthd --bridge none has no default one)"
                        .into(),
                ));
            };
            if ep.mac.is_none() {
                ep.mac = Some(checked_mac(mac)?);
            }
        }
        for (name, ep) in &out {
            if let Some(ip6) = ep.ip6 {
                if name != DEFAULT
                    && self
                        .net
                        .find_user(name)
                        .is_some_and(|n| n.rec.subnet6.is_none())
                {
                    return Err(no_ipv6(name, ip6));
                }
            }
            let ip = ep.ip.is_some() || ep.ip6.is_some();
            if name == DEFAULT && (ip || !ep.aliases.is_empty()) {
                return Err(EngineError::Invalid(if ip {
                    "user specified IP address is supported on user defined networks only".into()
                } else {
                    "network-scoped alias is supported only for containers in user defined \
                     networks"
                        .into()
                }));
            }
        }
        Ok(out)
    }

    /// A network's name and an empty endpoint on it, by name or id.
    fn network_key(&self, name: &str) -> Result<(String, EndpointConfig)> {
        let (name, id) = match name {
            "" | "default" | DEFAULT => {
                self.net.default_bridge()?;
                (DEFAULT.to_string(), network_id_of(DEFAULT))
            }
            "host" | "none" => {
                return Err(EngineError::Invalid(format!(
                    "container cannot be connected to the {name} network and another one"
                )))
            }
            other => match self.net.find_user(other) {
                Some(n) => (n.rec.name, n.rec.id),
                None => return Err(EngineError::Invalid(format!("network {other} not found"))),
            },
        };
        Ok((
            name,
            EndpointConfig {
                network_id: id,
                ..Default::default()
            },
        ))
    }

    /// Who holds a host port among the running containers (for the error of a second
    /// container asking for it).
    /// Read once per start, not once per port asked for: a start of 1000 ports would
    /// otherwise copy every container's state a thousand times.
    fn published_ports(&self) -> HashMap<(String, u16), Vec<(IpAddr, String)>> {
        let mut out: HashMap<(String, u16), Vec<(IpAddr, String)>> = HashMap::new();
        for c in self.all() {
            for ep in c.state().networks.into_values() {
                for p in ep.ports {
                    out.entry((p.proto, p.host_port))
                        .or_default()
                        .push((p.host_ip, c.name()));
                }
            }
        }
        out
    }

    /// The namespace and the endpoints of a start, with its published ports on its first
    /// network (blocking). Nothing is held when it fails.
    pub(crate) fn prepare_network(
        &self,
        id: &str,
        mode: Mode,
        rec: &ContainerRecord,
        ports: &[Request],
    ) -> Result<Prepared> {
        match mode {
            Mode::Host => Ok(Prepared {
                netns: None,
                endpoints: BTreeMap::new(),
                dns: false,
            }),
            // Without a namespace made here the init makes its own: only slower.
            Mode::None => Ok(Prepared {
                netns: self
                    .net
                    .pool
                    .take()
                    .map_err(|e| tracing::debug!("a network namespace: {e}"))
                    .ok()
                    .map(netns::Sandbox::into_fd),
                endpoints: BTreeMap::new(),
                dns: false,
            }),
            Mode::Container(name) => {
                let other = self
                    .get(&name)
                    .map_err(|_| EngineError::NotFound(format!("No such container: {name}")))?;
                let st = other.state();
                if !st.status.is_active() || st.pid <= 0 {
                    return Err(EngineError::Conflict(format!(
                        "cannot join network namespace of a non running container: {name}"
                    )));
                }
                let ns = std::fs::File::open(format!("/proc/{}/ns/net", st.pid))
                    .map_err(|e| EngineError::Invalid(format!("joining {name}'s network: {e}")))?;
                Ok(Prepared {
                    netns: Some(ns.into()),
                    endpoints: BTreeMap::new(),
                    dns: false,
                })
            }
            Mode::Networks => {
                let _changes = self.net.changes.read().unwrap_or_else(|p| p.into_inner());
                let order = attach_order(rec);
                // The ports first: a port in use fails the start before anything is made.
                let mut reserved = None;
                if !ports.is_empty() {
                    let Some((first, cfg)) = order.first() else {
                        return Err(EngineError::Invalid(
                            "the container is on no network: its ports cannot be published".into(),
                        ));
                    };
                    let bridge = self.net.bridge_of(&cfg.network_id, first)?;
                    if bridge.internal {
                        return Err(EngineError::Invalid(format!(
                            "ports cannot be published on the internal network {first}"
                        )));
                    }
                    let published = self.published_ports();
                    // Two bindings of a port collide when their addresses are of one family
                    // and the same or one is every address. A container with an IPv6
                    // address there publishes on both families.
                    let v6 = bridge.v6.is_some();
                    reserved = Some(
                        berth_network::ports::reserve(ports, v6, &|proto, ip, port| {
                            let holders = published.get(&(proto.as_str().to_string(), port))?;
                            holders
                                .iter()
                                .find(|(other, _)| berth_network::ports::collide(*other, ip))
                                .map(|(_, name)| name.clone())
                        })
                        .map_err(|e| EngineError::Invalid(e.to_string()))?,
                    );
                }
                // The embedded DNS, on a user-defined network (Docker's rule: not on the
                // default bridge): its sockets made ahead with the namespace when ready.
                let wants_dns = order
                    .iter()
                    .any(|(_, cfg)| cfg.network_id != network_id_of(DEFAULT));
                let mut sandbox = self.net.pool.take_for(wants_dns).map_err(|e| {
                    EngineError::Invalid(format!("creating a network namespace: {e}"))
                })?;
                let mut endpoints = BTreeMap::new();
                let undo = |endpoints: &BTreeMap<String, EndpointState>| {
                    for (name, ep) in endpoints {
                        if let Ok(bridge) = self.net.bridge_of(&ep.network_id, name) {
                            self.net.redirects.remove(id, &ep.network_id);
                            let _ = bridge.unpublish(ep.target(), &ep.maps());
                            for left in bridge.detach(&ep.endpoint()) {
                                tracing::warn!(container = id, "undoing a failed start: {left}");
                            }
                        }
                    }
                };
                let mut routes = Routes { v4: true, v6: true };
                for (i, (name, cfg)) in order.iter().enumerate() {
                    let attached = self.attach_one(id, &sandbox, name, cfg, i, &mut routes);
                    match attached {
                        Ok(ep) => {
                            endpoints.insert(name.clone(), ep);
                        }
                        Err(e) => {
                            undo(&endpoints);
                            return Err(e);
                        }
                    }
                }
                if let Some((maps, held)) = reserved {
                    let (first, _) = &order[0];
                    let ep = endpoints.get_mut(first).expect("the first endpoint");
                    let published = self.net.bridge_of(&ep.network_id, first).and_then(|b| {
                        b.publish(ep.target(), &maps)
                            .map_err(|e| EngineError::Invalid(e.to_string()))
                    });
                    if let Err(e) = published {
                        undo(&endpoints);
                        return Err(e);
                    }
                    self.net
                        .redirects
                        .add(id, &ep.network_id, ep.target(), &maps);
                    ep.ports = maps.iter().map(crate::ports::Published::of).collect();
                    if !held.is_empty() {
                        self.net.held().insert(id.to_string(), held);
                    }
                }
                if wants_dns {
                    let external = self.has_external_access(&endpoints);
                    let made = sandbox.take_dns();
                    if let Err(e) = self.start_dns(id, sandbox.fd(), rec, external, made) {
                        self.net.held().remove(id);
                        undo(&endpoints);
                        return Err(e);
                    }
                }
                // Recorded before the lock goes: `network rm` counts them from here on.
                if let Ok(c) = self.get(id) {
                    c.set_state(|s| s.networks = endpoints.clone());
                }
                Ok(Prepared {
                    netns: Some(sandbox.into_fd()),
                    endpoints,
                    dns: wants_dns,
                })
            }
        }
    }

    /// Stops serving the embedded DNS to container `id` (a run's end; also when a
    /// disconnect took its last endpoint before). Cheap: no I/O.
    pub(crate) fn stop_dns(&self, id: &str) {
        self.net.dns().remove(id);
    }

    /// Whether one of these endpoints is on a network with a way out (not `--internal`).
    fn has_external_access(&self, endpoints: &BTreeMap<String, EndpointState>) -> bool {
        endpoints.iter().any(|(name, ep)| {
            self.net
                .bridge_of(&ep.network_id, name)
                .is_ok_and(|b| !b.internal)
        })
    }

    /// Serves the embedded DNS to container `id` in the namespace `ns` (blocking): at
    /// 127.0.0.11:53 there. Other names go, as the container's own queries would (from its
    /// namespace), to its `--dns` servers or else the host's; to a loopback server of the
    /// host's from berthd's namespace. A container without a way out (`external` false:
    /// only internal networks) gets no forwarding at all: its queries would otherwise
    /// carry data out of an internal network.
    pub(crate) fn start_dns(
        &self,
        id: &str,
        ns: BorrowedFd<'_>,
        rec: &ContainerRecord,
        external: bool,
        made: Option<dns::Sockets>,
    ) -> Result<()> {
        let names = self
            .net
            .names
            .get()
            .cloned()
            .ok_or_else(|| EngineError::Internal("the embedded DNS is not ready".into()))?;
        let asked = rec.host_config.dns.clone().unwrap_or_default();
        let (host_loopback, from_container): (Vec<SocketAddr>, Vec<SocketAddr>) = if asked
            .is_empty()
        {
            dns::upstream_from_resolv_conf(
                &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            )
            .into_iter()
            .partition(|s| s.ip().is_loopback())
        } else {
            let servers = asked
                .iter()
                .map(|s| {
                    s.parse::<IpAddr>()
                        .map(|ip| SocketAddr::new(ip, 53))
                        .map_err(|_| {
                            EngineError::Invalid(format!("invalid --dns {s}: not an IP address"))
                        })
                })
                .collect::<Result<_>>()?;
            (Vec::new(), servers)
        };
        let sockets = match made {
            Some(sockets) => sockets,
            None => dns::Sockets::open_redirected(ns)
                .map_err(|e| EngineError::Internal(format!("the embedded DNS: {e}")))?,
        };
        let resolver = if external {
            let ns = ns
                .try_clone_to_owned()
                .map_err(|e| EngineError::Internal(format!("the embedded DNS: {e}")))?;
            dns::Resolver::for_container(names, host_loopback, from_container, ns)
        } else {
            dns::Resolver::new(names, Vec::new())
        };
        let handle = resolver
            .serve(id.to_string(), sockets)
            .map_err(|e| EngineError::Internal(format!("the embedded DNS: {e}")))?;
        self.net.dns().insert(id.to_string(), handle);
        Ok(())
    }

    /// What `f` gives for each endpoint of a running container on a user-defined network
    /// that container `who` is on too: (container, network name, endpoint).
    fn on_shared_networks<T, I: IntoIterator<Item = T>>(
        &self,
        who: &str,
        f: impl Fn(&crate::container::Container, &str, &EndpointState) -> I,
    ) -> Vec<T> {
        let Ok(me) = self.get(who) else {
            return Vec::new();
        };
        let bridge = network_id_of(DEFAULT);
        let mine: Vec<String> = me
            .state()
            .networks
            .into_values()
            .map(|ep| ep.network_id)
            .filter(|n| *n != bridge)
            .collect();
        if mine.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for c in self.all() {
            let st = c.state();
            if !st.status.is_active() {
                continue;
            }
            for (network, ep) in &st.networks {
                if mine.contains(&ep.network_id) {
                    out.extend(f(&c, network, ep));
                }
            }
        }
        out
    }

    /// Connects `sandbox` to one network as `eth<n>`, with the default routes of `routes`
    /// still to place that this network can take (then placed).
    pub(crate) fn attach_one(
        &self,
        id: &str,
        sandbox: &netns::Sandbox,
        name: &str,
        cfg: &EndpointConfig,
        n: usize,
        routes: &mut Routes,
    ) -> Result<EndpointState> {
        let bridge = self.net.bridge_of(&cfg.network_id, name)?;
        let ifname = format!("eth{n}");
        let how = Attach {
            ifname: ifname.clone(),
            ip: cfg.ip,
            ip6: cfg.ip6,
            mac: cfg.mac.as_deref().and_then(parse_mac),
            route4: routes.v4 && !bridge.internal,
            route6: routes.v6 && !bridge.internal && bridge.v6.is_some(),
        };
        let ep = bridge.attach(id, sandbox, &how).map_err(|e| match e {
            berth_network::Error::Invalid(m) => EngineError::Invalid(m),
            e => EngineError::Invalid(format!("connecting to network {name}: {e}")),
        })?;
        routes.v4 &= !how.route4;
        routes.v6 &= !how.route6;
        Ok(EndpointState::of(&cfg.network_id, &ifname, &ep))
    }

    /// Gives back what a run held on its networks (blocking): its ports (rules, then the
    /// reservations) and its addresses at once, so that a start right after (a restart)
    /// finds them free; the veth pairs later, off the caller's path (a link's removal waits
    /// for the kernel's grace period; by index, never the next run's pair of the same
    /// name). Every step is tried; the errors are logged.
    pub(crate) fn release_network(&self, id: &str, endpoints: BTreeMap<String, EndpointState>) {
        let mut pairs = Vec::new();
        for (name, ep) in endpoints {
            match self.net.bridge_of(&ep.network_id, &name) {
                Ok(bridge) => {
                    // The redirects, then the rules, before the reservation: the port is
                    // never free while traffic to it still goes to the container.
                    self.net.redirects.remove(id, &ep.network_id);
                    if let Err(e) = bridge.unpublish(ep.target(), &ep.maps()) {
                        tracing::warn!(container = id, "network teardown: {e}");
                    }
                    if !ep.ports.is_empty() {
                        self.net.held().remove(id);
                    }
                    let endpoint = ep.endpoint();
                    bridge.release(&endpoint);
                    pairs.push((bridge, endpoint));
                }
                Err(_) => {
                    // The network is gone (berthd restarted with another --bridge): the
                    // pair went with the namespace; remove the host end if it is still
                    // there.
                    if let Ok(nl) = berth_network::netlink::Netlink::new() {
                        if ep.host_index != 0
                            && nl.link_name(ep.host_index).ok().flatten()
                                == Some(ep.host_veth.clone())
                        {
                            let _ = nl.delete_link_index(ep.host_index);
                        }
                    }
                }
            }
        }
        if pairs.is_empty() {
            return;
        }
        let id = id.to_string();
        tokio::task::spawn_blocking(move || {
            for (bridge, ep) in pairs {
                for e in bridge.remove_pair(&ep) {
                    tracing::warn!(container = id, "network teardown: {e}");
                }
            }
        });
    }

    /// Takes back the addresses and the published ports of a container found running at
    /// berthd's start (the bridges' set-up rewrote their tables: its ports go back in).
    pub(crate) fn reclaim_network(&self, id: &str, st: &ContainerState) {
        let bridge_id = network_id_of(DEFAULT);
        if st.networks.values().any(|ep| ep.network_id != bridge_id) && st.pid > 0 {
            let served = self.get(id).map_err(|e| e.to_string()).and_then(|c| {
                let ns = std::fs::File::open(format!("/proc/{}/ns/net", st.pid))
                    .map_err(|e| e.to_string())?;
                let external = self.has_external_access(&st.networks);
                self.start_dns(id, ns.as_fd(), &c.record().clone(), external, None)
                    .map_err(|e| e.to_string())
            });
            if let Err(e) = served {
                tracing::error!(container = id, "serving its DNS again: {e}");
            }
        }
        for (name, ep) in &st.networks {
            let Ok(bridge) = self.net.bridge_of(&ep.network_id, name) else {
                tracing::error!(
                    container = id,
                    "network {name} is gone: its endpoint is lost"
                );
                continue;
            };
            if !bridge.reclaim(ep.ip) {
                tracing::error!(container = id, "address {} was already leased", ep.ip);
            }
            if let Some(v6) = ep.v6 {
                if !bridge.reclaim6(v6.ip) {
                    tracing::error!(container = id, "address {} was already leased", v6.ip);
                }
            }
            if ep.ports.is_empty() {
                continue;
            }
            // Only the ports bound again are published again: one another program took
            // while berthd was down stays its (its traffic is not stolen).
            let mut maps = Vec::new();
            let mut held = Vec::new();
            for m in ep.maps() {
                match berth_network::ports::bind(m.proto, m.host_ip, m.host_port) {
                    Ok(fd) => {
                        held.push(fd);
                        maps.push(m);
                    }
                    Err(e) => tracing::error!(
                        container = id,
                        "host port {}/{} was taken while berthd was down ({e}): not \
                         published again",
                        berth_network::ports::host_port(m.host_ip, m.host_port),
                        m.proto.as_str()
                    ),
                }
            }
            if !held.is_empty() {
                self.net.held().insert(id.to_string(), held);
            }
            match bridge.publish(ep.target(), &maps) {
                Ok(()) => self
                    .net
                    .redirects
                    .add(id, &ep.network_id, ep.target(), &maps),
                Err(e) => tracing::error!(container = id, "publishing its ports again: {e}"),
            }
            // The state says what is published now: the exit's unpublish must name exactly
            // the elements that were added (an interval is deleted only whole).
            if maps.len() != ep.ports.len() {
                if let Ok(c) = self.get(id) {
                    let kept: Vec<crate::ports::Published> =
                        maps.iter().map(crate::ports::Published::of).collect();
                    if let Err(e) = c.update_state(&self.cfg, true, |s| {
                        if let Some(ep) = s.networks.get_mut(name) {
                            ep.ports = kept;
                        }
                    }) {
                        tracing::warn!(container = id, "recording the ports published again: {e}");
                    }
                }
            }
        }
    }

    /// `NetworkSettings` of inspect: every network of the container (Docker's
    /// `Networks`), with the endpoint's addresses while it runs; the top-level fields are
    /// the default bridge's, as Docker's.
    pub(crate) fn network_settings(
        &self,
        rec: &ContainerRecord,
        st: &ContainerState,
    ) -> NetworkSettings {
        let id = rec.id.as_str();
        let hc = &rec.host_config;
        let mut settings = NetworkSettings::default();
        if st.pid > 0 && st.status.is_active() {
            settings.sandbox_id = hex_id(&format!("sandbox:{id}"));
            settings.sandbox_key = format!("/proc/{}/ns/net", st.pid);
        }
        let mut members: Vec<(String, Option<&EndpointConfig>)> = Vec::new();
        match hc.network_mode.as_str() {
            "host" | "none" => members.push((hc.network_mode.clone(), None)),
            "default" | "" if rec.endpoints.is_empty() => members.push(("none".into(), None)),
            m if m.starts_with("container:") => {}
            _ => members.extend(rec.endpoints.iter().map(|(n, e)| (n.clone(), Some(e)))),
        }
        for (name, cfg) in members {
            let user = name != DEFAULT && cfg.is_some();
            let mut endpoint = serde_json::json!({
                "IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": "",
                "DriverOpts": null, "GwPriority": 0,
                "NetworkID": cfg.map_or_else(|| network_id_of(&name), |c| c.network_id.clone()),
                "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
                "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                "DNSNames": null,
            });
            if let Some(cfg) = cfg {
                if cfg.ip.is_some() || cfg.ip6.is_some() {
                    let mut ipam = serde_json::Map::new();
                    if let Some(ip) = cfg.ip {
                        ipam.insert("IPv4Address".into(), ip.to_string().into());
                    }
                    if let Some(ip6) = cfg.ip6 {
                        ipam.insert("IPv6Address".into(), ip6.to_string().into());
                    }
                    endpoint["IPAMConfig"] = ipam.into();
                }
                if !cfg.aliases.is_empty() {
                    endpoint["Aliases"] = serde_json::json!(cfg.aliases);
                }
                if let Some(mac) = &cfg.mac {
                    endpoint["MacAddress"] = mac.clone().into();
                }
            }
            if let Some(ep) = st.networks.get(&name) {
                let endpoint_id = endpoint_id(id, &name);
                endpoint["EndpointID"] = endpoint_id.clone().into();
                endpoint["Gateway"] = ep.gateway.to_string().into();
                endpoint["IPAddress"] = ep.ip.to_string().into();
                endpoint["IPPrefixLen"] = ep.prefix.into();
                endpoint["MacAddress"] = ep.mac.clone().into();
                if let Some(v6) = ep.v6 {
                    endpoint["GlobalIPv6Address"] = v6.ip.to_string().into();
                    endpoint["GlobalIPv6PrefixLen"] = v6.prefix.into();
                    endpoint["IPv6Gateway"] = v6.gateway.to_string().into();
                }
                if user {
                    let mut names = vec![rec.name.clone()];
                    names.extend(cfg.into_iter().flat_map(|c| c.aliases.iter().cloned()));
                    names.push(id[..12].to_string());
                    endpoint["DNSNames"] = serde_json::json!(names);
                }
                if name == DEFAULT {
                    settings.endpoint_id = endpoint_id;
                    settings.gateway = ep.gateway.to_string();
                    settings.ip_address = ep.ip.to_string();
                    settings.ip_prefix_len = i64::from(ep.prefix);
                    settings.mac_address = ep.mac.clone();
                }
            }
            settings.networks.insert(name, endpoint);
        }
        if st.status.is_active() {
            let published: Vec<crate::ports::Published> = st
                .networks
                .values()
                .flat_map(|ep| ep.ports.iter().cloned())
                .collect();
            settings.ports = crate::ports::settings_ports(&rec.config, hc, &published);
        }
        settings
    }
}

/// The docker CLI names the mode's own network `default` in `EndpointsConfig`.
fn is_mode(name: &str, mode_name: &str) -> bool {
    name == mode_name || name == "default" || (name == DEFAULT && mode_name == "default")
}

/// The networks a start attaches, first the one of `NetworkMode` (its default route and
/// its ports), then the others by name.
pub(crate) fn attach_order(rec: &ContainerRecord) -> Vec<(String, EndpointConfig)> {
    let mode = match rec.host_config.network_mode.as_str() {
        "" | "default" => DEFAULT,
        m => m,
    };
    let mut order: Vec<(String, EndpointConfig)> = rec
        .endpoints
        .iter()
        .map(|(n, e)| (n.clone(), e.clone()))
        .collect();
    if let Some(i) = order
        .iter()
        .position(|(n, e)| n == mode || e.network_id == mode)
    {
        let first = order.remove(i);
        order.insert(0, first);
    }
    order
}

/// Most aliases of a container on one network (each is scanned by every DNS query).
const MAX_ALIASES: usize = 64;

/// A network alias is a DNS name: labels of letters, digits, `-` and `_`, 63 characters at
/// most each, 253 in all.
fn check_alias(a: &str) -> Result<()> {
    let ok = a.len() <= 253
        && a.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "invalid network alias {a:?}: a DNS name (letters, digits, '-', '_', dots between \
             labels of 63 characters at most)"
        )))
    }
}

/// A MAC as given, checked (Docker's message).
fn checked_mac(mac: &str) -> Result<String> {
    parse_mac(mac)
        .map(berth_network::ipam::format_mac)
        .ok_or_else(|| EngineError::Invalid(format!("invalid MAC address: {mac}")))
}

/// `EndpointSettings` of a create or a connect: what berth applies (IPv4 address,
/// aliases, MAC), the output fields a client may send back at their zero value, anything
/// else refused by name.
pub(crate) fn parse_endpoint_settings(
    network: &str,
    network_id: String,
    v: &serde_json::Value,
) -> Result<EndpointConfig> {
    let mut ep = EndpointConfig {
        network_id,
        ..Default::default()
    };
    let Some(map) = v.as_object() else {
        if v.is_null() {
            return Ok(ep);
        }
        return Err(EngineError::Invalid(format!(
            "endpoint settings for network {network} must be an object"
        )));
    };
    let refuse = |field: &str, value: &serde_json::Value| {
        EngineError::Invalid(format!(
            "{field} (EndpointsConfig.{network}.{field}) is not supported by berth yet: \
             refused rather than ignored (value: {value})"
        ))
    };
    for (field, value) in map {
        match field.as_str() {
            "IPAMConfig" => {
                let Some(ipam) = value.as_object() else {
                    if value.is_null() {
                        continue;
                    }
                    return Err(refuse(field, value));
                };
                for (k, v) in ipam {
                    match k.as_str() {
                        "IPv4Address" if v.as_str().is_some_and(|s| !s.is_empty()) => {
                            let s = v.as_str().unwrap_or_default();
                            ep.ip = Some(s.parse().map_err(|_| {
                                EngineError::Invalid(format!("invalid IPv4 address: {s}"))
                            })?);
                        }
                        "IPv6Address" if v.as_str().is_some_and(|s| !s.is_empty()) => {
                            let s = v.as_str().unwrap_or_default();
                            ep.ip6 = Some(s.parse().map_err(|_| {
                                EngineError::Invalid(format!("invalid IPv6 address: {s}"))
                            })?);
                        }
                        _ if crate::unapplied::is_zero(v) => {}
                        _ => return Err(refuse(&format!("IPAMConfig.{k}"), v)),
                    }
                }
            }
            "Aliases" => {
                if !(value.is_array() || value.is_null()) {
                    return Err(EngineError::Invalid(format!(
                        "Aliases (EndpointsConfig.{network}.Aliases) must be a list of names"
                    )));
                }
                for a in value.as_array().into_iter().flatten() {
                    let Some(a) = a.as_str() else {
                        return Err(EngineError::Invalid(format!(
                            "invalid network alias {a}: not a string"
                        )));
                    };
                    if !a.is_empty() && !ep.aliases.iter().any(|x| x == a) {
                        check_alias(a)?;
                        ep.aliases.push(a.to_string());
                    }
                }
                if ep.aliases.len() > MAX_ALIASES {
                    return Err(EngineError::Invalid(format!(
                        "{} aliases on network {network}: at most {MAX_ALIASES}",
                        ep.aliases.len()
                    )));
                }
            }
            "MacAddress" if value.as_str().is_some_and(|s| !s.is_empty()) => {
                ep.mac = Some(checked_mac(value.as_str().unwrap_or_default())?);
            }
            // Docker's own id of the network: the client may send it back.
            "NetworkID" => {}
            // Identities and names (inspect's), sent back by some clients: what they say
            // is berth's to decide.
            "EndpointID" | "DNSNames" => {}
            // Other output fields only at zero: a non-zero `IPAddress` is an address asked
            // for in the wrong place (IPAMConfig.IPv4Address), not to be dropped.
            _ if crate::unapplied::is_zero(value) => {}
            "Links" => return Err(refuse("Links (--link)", value)),
            _ => return Err(refuse(field, value)),
        }
    }
    Ok(ep)
}

/// `--ip6` on a network without IPv6.
pub(crate) fn no_ipv6(network: &str, ip6: Ipv6Addr) -> EngineError {
    EngineError::Invalid(format!(
        "cannot use the IPv6 address {ip6} (--ip6): network {network} has no IPv6 (network \
         create --ipv6)"
    ))
}

/// A container's endpoint id on a network: stable for the pair.
pub(crate) fn endpoint_id(container: &str, network: &str) -> String {
    hex_id(&format!("endpoint:{container}:{network}"))
}

/// A built-in network's id: stable, derived from its name (they have no record).
pub(crate) fn network_id_of(name: &str) -> String {
    hex_id(&format!("network:{name}"))
}

pub(crate) fn hex_id(seed: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(seed.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Which of a container's default routes are still to be placed, by family. As Docker's
/// gateway endpoint: the first network in attach order that is not internal gives the IPv4
/// default route, and the first such with IPv6 the IPv6 one (a container whose first network
/// is IPv4 only gets its IPv6 default route from its first network with IPv6).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Routes {
    pub v4: bool,
    pub v6: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoint_settings_take_ip_aliases_and_mac_and_refuse_the_rest() {
        let ep = parse_endpoint_settings(
            "n",
            "id".into(),
            &json!({"IPAMConfig": {"IPv4Address": "10.1.0.5", "IPv6Address": ""},
                    "Aliases": ["db", "db", ""], "MacAddress": "02:42:0A:01:00:05",
                    "Links": null, "DriverOpts": null, "GwPriority": 0, "NetworkID": "x"}),
        )
        .unwrap();
        assert_eq!(ep.ip, Some(Ipv4Addr::new(10, 1, 0, 5)));
        assert_eq!(ep.aliases, vec!["db"]);
        assert_eq!(ep.mac.as_deref(), Some("02:42:0a:01:00:05"));
        let v6 = parse_endpoint_settings(
            "n",
            "id".into(),
            &json!({"IPAMConfig": {"IPv6Address": "fd00:be::5"}}),
        )
        .unwrap();
        assert_eq!(v6.ip6, Some("fd00:be::5".parse().unwrap()));
        assert_eq!(v6.ip, None);
        for bad in [
            json!({"IPAMConfig": {"IPv6Address": "10.1.0.5"}}),
            json!({"IPAMConfig": {"LinkLocalIPs": ["fe80::1"]}}),
            json!({"Links": ["a:b"]}),
            json!({"DriverOpts": {"x": "y"}}),
            json!({"GwPriority": 5}),
            json!({"MacAddress": "zz"}),
            json!({"IPAMConfig": {"IPv4Address": "10.1.0"}}),
            json!({"Aliases": "db"}),
            json!({"Aliases": ["a b"]}),
            json!({"Aliases": ["-x"]}),
            json!({"IPAddress": "10.1.0.9"}),
        ] {
            assert!(
                parse_endpoint_settings("n", "id".into(), &bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn macs_parse_only_whole() {
        assert_eq!(
            parse_mac("02:42:ac:11:00:02"),
            Some([2, 0x42, 0xac, 0x11, 0, 2])
        );
        assert_eq!(parse_mac("02:42:ac:11:00"), None);
        assert_eq!(parse_mac("02:42:ac:11:00:02:03"), None);
        assert_eq!(parse_mac("2:42:ac:11:00:02"), None);
    }
}
