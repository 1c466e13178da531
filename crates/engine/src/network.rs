//! A container's network at start and exit: which namespace it gets (made ahead by
//! berth-network's pool), its place on the default bridge, and the teardown that collects
//! every error and goes on. The bridge is set up once, when the engine opens.

use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use std::collections::HashMap;

use berth_api::container::NetworkSettings;
use berth_network::ports::{PortMap, Request};
use berth_network::{netns, Bridge, BridgeConfig, Endpoint};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::record::ContainerState;
use crate::Engine;

/// Namespaces kept ready.
const AHEAD: usize = 1;

/// The engine's networks.
pub(crate) struct Networks {
    /// The default bridge: `None` with `berthd --bridge none`; the set-up error when it
    /// could not be made (each start that needs it reports it).
    bridge: Option<std::result::Result<Bridge, String>>,
    pub(crate) pool: netns::Pool,
    /// The sockets that reserve each running container's published host ports.
    held: std::sync::Mutex<HashMap<String, Vec<OwnedFd>>>,
}

impl Networks {
    /// Sets the default bridge up (blocking: netlink and one `nft`).
    pub(crate) fn open(bridge: Option<&BridgeConfig>) -> Networks {
        let bridge = bridge.map(|cfg| {
            Bridge::setup(cfg).map_err(|e| {
                tracing::error!("the default bridge {}: {e}", cfg.name);
                e.to_string()
            })
        });
        Networks {
            bridge,
            pool: netns::Pool::new(AHEAD),
            held: Default::default(),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<OwnedFd>>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks every 30 s that another firewall's FORWARD chain let the bridge's traffic
    /// through (berth_network::coexist): dockerd started after berthd sets its policy to
    /// DROP, and the containers' egress would stop without a word.
    pub(crate) fn watch_other_firewalls(self: &Arc<Self>) {
        let Some(name) = self.bridge_info().map(|b| b.2) else {
            return;
        };
        let net = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut known = None;
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                if net.upgrade().is_none() {
                    return;
                }
                let bridge = name.clone();
                let found = tokio::task::spawn_blocking(move || {
                    berth_network::coexist::open_forward(&bridge)
                })
                .await;
                match found {
                    Ok(Ok(chain)) if chain != known => {
                        if let Some(chain) = chain {
                            tracing::info!(
                                "another firewall's FORWARD chain drops: berth's accepts for \
                                 {name} are in iptables' {chain}"
                            );
                        }
                        known = chain;
                    }
                    Ok(Err(e)) => tracing::warn!("{e}: containers on {name} may not reach out"),
                    _ => {}
                }
            }
        });
    }

    /// The default bridge's subnet, gateway and interface name, when it is up.
    pub(crate) fn bridge_info(&self) -> Option<(String, String, String)> {
        match &self.bridge {
            Some(Ok(b)) => Some((b.subnet.to_string(), b.gateway.to_string(), b.name.clone())),
            _ => None,
        }
    }

    pub(crate) fn has_bridge(&self) -> bool {
        self.bridge.is_some()
    }

    fn bridge(&self) -> Result<&Bridge> {
        match &self.bridge {
            Some(Ok(b)) => Ok(b),
            Some(Err(e)) => Err(EngineError::Invalid(format!(
                "the default bridge network is not available: {e}"
            ))),
            None => Err(EngineError::Invalid("network bridge not found".into())),
        }
    }
}

/// A container's network, by `HostConfig.NetworkMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Host,
    /// A namespace of its own with `lo` only.
    None,
    /// The default bridge.
    Bridge,
}

/// What a running container holds on a network, kept in its state so that a berthd
/// restart can take the address back and an exit can release it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointState {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    pub host_veth: String,
    #[serde(default)]
    pub host_index: u32,
    /// Its published ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<crate::ports::Published>,
}

impl EndpointState {
    fn of(ep: &Endpoint) -> EndpointState {
        EndpointState {
            ip: ep.ip,
            prefix: ep.prefix,
            gateway: ep.gateway,
            mac: berth_network::ipam::format_mac(ep.mac),
            host_veth: ep.host_veth.clone(),
            host_index: ep.host_index,
            ports: Vec::new(),
        }
    }

    fn maps(&self) -> Vec<PortMap> {
        self.ports.iter().filter_map(|p| p.map()).collect()
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint {
            ip: self.ip,
            prefix: self.prefix,
            gateway: self.gateway,
            mac: berth_network::ipam::mac_of(self.ip),
            host_veth: self.host_veth.clone(),
            host_index: self.host_index,
        }
    }
}

/// A start's network, ready: the namespace for the runtime and the endpoint, if any.
pub(crate) struct Prepared {
    pub netns: Option<OwnedFd>,
    pub endpoint: Option<EndpointState>,
}

impl Engine {
    pub(crate) fn network_mode(&self, mode: &str) -> Result<Mode> {
        Ok(match mode {
            "host" => Mode::Host,
            "none" => Mode::None,
            // `berthd --bridge none`: the default network is a namespace of its own, as
            // Docker's with `-b none`.
            "" | "default" if !self.net.has_bridge() => Mode::None,
            "" | "default" | "bridge" => {
                self.net.bridge()?;
                Mode::Bridge
            }
            other => return Err(EngineError::Invalid(format!("network {other} not found"))),
        })
    }

    /// Who holds a host port among the running containers (for the error of a second
    /// container asking for it).
    /// Read once per start, not once per port asked for: a start of 1000 ports would
    /// otherwise copy every container's state a thousand times.
    fn published_ports(&self) -> HashMap<(String, u16), Vec<(Ipv4Addr, String)>> {
        let mut out: HashMap<(String, u16), Vec<(Ipv4Addr, String)>> = HashMap::new();
        for c in self.all() {
            if let Some(ep) = c.state().network {
                for p in ep.ports {
                    out.entry((p.proto, p.host_port))
                        .or_default()
                        .push((p.host_ip, c.name()));
                }
            }
        }
        out
    }

    /// The namespace and the bridge endpoint of a start, with its published ports
    /// (blocking). Nothing is held when it fails.
    pub(crate) fn prepare_network(
        &self,
        id: &str,
        mode: Mode,
        ports: &[Request],
    ) -> Result<Prepared> {
        match mode {
            Mode::Host => Ok(Prepared {
                netns: None,
                endpoint: None,
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
                endpoint: None,
            }),
            Mode::Bridge => {
                let bridge = self.net.bridge()?;
                // The ports first: a port in use fails the start before anything is made.
                let published = self.published_ports();
                // Two bindings of a port collide when their addresses are the same or one
                // is every address.
                let (maps, held) = berth_network::ports::reserve(ports, &|proto, ip, port| {
                    let holders = published.get(&(proto.as_str().to_string(), port))?;
                    holders
                        .iter()
                        .find(|(other, _)| {
                            *other == ip || other.is_unspecified() || ip.is_unspecified()
                        })
                        .map(|(_, name)| name.clone())
                })
                .map_err(|e| EngineError::Invalid(e.to_string()))?;
                let sandbox = self.net.pool.take().map_err(|e| {
                    EngineError::Invalid(format!("creating a network namespace: {e}"))
                })?;
                let ep = bridge
                    .attach(id, &sandbox)
                    .map_err(|e| EngineError::Invalid(format!("connecting to bridge: {e}")))?;
                if let Err(e) = bridge.publish(ep.ip, &maps) {
                    for left in bridge.detach(&ep) {
                        tracing::warn!(container = id, "undoing a failed start: {left}");
                    }
                    return Err(EngineError::Invalid(e.to_string()));
                }
                let mut state = EndpointState::of(&ep);
                state.ports = maps.iter().map(crate::ports::Published::of).collect();
                if !held.is_empty() {
                    self.net.held().insert(id.to_string(), held);
                }
                Ok(Prepared {
                    netns: Some(sandbox.into_fd()),
                    endpoint: Some(state),
                })
            }
        }
    }

    /// Gives back what a run held on its networks (blocking): its ports (rules, then the
    /// reservations) and its address at once, so that a start right after (a restart) finds
    /// them free; the veth pair later, off the caller's path (a link's removal waits for
    /// the kernel's grace period; by index, never the next run's pair of the same name).
    /// Every step is tried; the errors are logged.
    pub(crate) fn release_network(&self, id: &str, endpoint: Option<EndpointState>) {
        let Some(ep) = endpoint else { return };
        match self.net.bridge() {
            Ok(bridge) => {
                // The rules before the reservation: the port is never free while traffic
                // to it still goes to the container.
                if let Err(e) = bridge.unpublish(ep.ip, &ep.maps()) {
                    tracing::warn!(container = id, "network teardown: {e}");
                }
                self.net.held().remove(id);
                bridge.release(ep.ip);
                let (net, id, ep) = (self.net.clone(), id.to_string(), ep.endpoint());
                tokio::task::spawn_blocking(move || {
                    if let Ok(bridge) = net.bridge() {
                        for e in bridge.remove_pair(&ep) {
                            tracing::warn!(container = id, "network teardown: {e}");
                        }
                    }
                });
            }
            Err(_) => {
                // No bridge this time (berthd restarted with another --bridge): the pair
                // went with the namespace; remove the host end if it is still there.
                if let Ok(nl) = berth_network::netlink::Netlink::new() {
                    if ep.host_index != 0 {
                        let _ = nl.delete_link_index(ep.host_index);
                    }
                }
            }
        }
    }

    /// Takes back the address and the published ports of a container found running at
    /// berthd's start (the bridge's set-up rewrote the table: its ports go back in).
    pub(crate) fn reclaim_network(&self, id: &str, st: &ContainerState) {
        let (Some(ep), Ok(bridge)) = (&st.network, self.net.bridge()) else {
            return;
        };
        if !bridge.reclaim(ep.ip) {
            tracing::error!(container = id, "address {} was already leased", ep.ip);
        }
        // Only the ports bound again are published again: one another program took while
        // berthd was down stays its (its traffic is not stolen).
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
                    "host port {}:{}/{} was taken while berthd was down ({e}): not published \
                     again",
                    m.host_ip,
                    m.host_port,
                    m.proto.as_str()
                ),
            }
        }
        if !held.is_empty() {
            self.net.held().insert(id.to_string(), held);
        }
        if let Err(e) = bridge.publish(ep.ip, &maps) {
            tracing::error!(container = id, "publishing its ports again: {e}");
        }
        // The state says what is published now: the exit's unpublish must name exactly
        // the elements that were added (an interval is deleted only whole).
        if maps.len() != ep.ports.len() {
            if let Ok(c) = self.get(id) {
                let kept: Vec<crate::ports::Published> =
                    maps.iter().map(crate::ports::Published::of).collect();
                if let Err(e) = c.update_state(&self.cfg, true, |s| {
                    if let Some(ep) = s.network.as_mut() {
                        ep.ports = kept;
                    }
                }) {
                    tracing::warn!(container = id, "recording the ports published again: {e}");
                }
            }
        }
    }

    /// `NetworkSettings` of inspect: the endpoint's addresses while the container runs on
    /// the bridge (Docker's top-level fields and `Networks.bridge`), the mode's name else.
    pub(crate) fn network_settings(
        &self,
        id: &str,
        config: &berth_api::container::Config,
        hc: &berth_api::container::HostConfig,
        st: &ContainerState,
    ) -> NetworkSettings {
        let name = match hc.network_mode.as_str() {
            "default" | "" if self.net.has_bridge() => "bridge",
            "default" | "" => "none",
            m => m,
        }
        .to_string();
        let mut settings = NetworkSettings::default();
        let mut endpoint = serde_json::json!({
            "IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": "",
            "DriverOpts": null, "NetworkID": network_id(&name), "EndpointID": "",
            "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": null,
        });
        if st.pid > 0 && st.status.is_active() {
            settings.sandbox_id = hex_id(&format!("sandbox:{id}"));
            settings.sandbox_key = format!("/proc/{}/ns/net", st.pid);
        }
        if let Some(ep) = &st.network {
            let endpoint_id = endpoint_id(id, &name);
            settings.endpoint_id = endpoint_id.clone();
            settings.gateway = ep.gateway.to_string();
            settings.ip_address = ep.ip.to_string();
            settings.ip_prefix_len = i64::from(ep.prefix);
            settings.mac_address = ep.mac.clone();
            endpoint["EndpointID"] = endpoint_id.into();
            endpoint["Gateway"] = settings.gateway.clone().into();
            endpoint["IPAddress"] = settings.ip_address.clone().into();
            endpoint["IPPrefixLen"] = ep.prefix.into();
            endpoint["MacAddress"] = ep.mac.clone().into();
        }
        if st.status.is_active() {
            let published = st.network.as_ref().map_or(&[][..], |ep| &ep.ports[..]);
            settings.ports = crate::ports::settings_ports(config, hc, published);
        }
        settings.networks.insert(name, endpoint);
        settings
    }
}

/// A container's endpoint id on a network: stable for the pair.
pub(crate) fn endpoint_id(container: &str, network: &str) -> String {
    hex_id(&format!("endpoint:{container}:{network}"))
}

/// A network's id: stable, derived from its name (the built-in networks have no record).
pub(crate) fn network_id(name: &str) -> String {
    hex_id(&format!("network:{name}"))
}

fn hex_id(seed: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(seed.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
