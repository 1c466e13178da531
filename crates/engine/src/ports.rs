//! `-p`, `-P` and `--expose` in Docker's API shapes (`HostConfig.PortBindings`,
//! `HostConfig.PublishAllPorts`, `Config.ExposedPorts`): checked at create with Docker's
//! words, turned into berth-network's requests at start, and shown back as inspect's
//! `NetworkSettings.Ports` and `ps`'s `Ports`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use berth_api::container::{Config, HostConfig, Port, PortBinding};
use berth_network::ports::{PortMap, Proto, Request};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

/// A published port as the container's state keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub proto: String,
    /// `0.0.0.0` or `::`: every address of that family (a state written before IPv6 has
    /// IPv4 addresses only, in the same shape).
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
}

impl Published {
    pub(crate) fn of(m: &PortMap) -> Published {
        Published {
            proto: m.proto.as_str().into(),
            host_ip: m.host_ip,
            host_port: m.host_port,
            container_port: m.container_port,
        }
    }

    pub(crate) fn map(&self) -> Option<PortMap> {
        Some(PortMap {
            proto: Proto::parse(&self.proto)?,
            host_ip: self.host_ip,
            host_port: self.host_port,
            container_port: self.container_port,
        })
    }
}

fn invalid_spec(s: &str) -> EngineError {
    EngineError::Invalid(format!("invalid port specification: {s:?}"))
}

/// `80/tcp` (or `80`, tcp) as (port, protocol).
fn parse_key(key: &str) -> Result<(u16, Proto)> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| invalid_spec(port))?;
    let proto = Proto::parse(&proto.to_ascii_lowercase())
        .ok_or_else(|| EngineError::Invalid(format!("invalid proto: {proto}")))?;
    Ok((port, proto))
}

/// `""` (any), `8080`, or `8000-8010`.
fn parse_host_ports(s: &str) -> Result<(u16, u16)> {
    if s.is_empty() {
        return Ok((0, 0));
    }
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a.parse().map_err(|_| invalid_spec(s))?;
    let b: u16 = b.parse().map_err(|_| invalid_spec(s))?;
    // 0 asks for any port; in a range it would publish outside it.
    if b < a || a == 0 {
        return Err(invalid_spec(s));
    }
    Ok((a, b))
}

/// `""`: every address (both families when the container has IPv6, as Docker's); an
/// address: that one only (`0.0.0.0`: every IPv4 address, `::` every IPv6 one).
fn parse_host_ip(s: &str) -> Result<Option<IpAddr>> {
    match s {
        "" => Ok(None),
        s => s
            .parse::<IpAddr>()
            .map(Some)
            .map_err(|_| EngineError::Invalid(format!("invalid IP address: {s}"))),
    }
}

fn publish_all(hc: &HostConfig) -> bool {
    hc.extra
        .get("PublishAllPorts")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// What the container asks to publish, in a stable order: `-p` bindings, then with `-P`
/// every exposed port without one (a free port on every address). Checks everything: an
/// error here is the create's.
pub(crate) fn requests(config: &Config, hc: &HostConfig) -> Result<Vec<Request>> {
    let mut out = Vec::new();
    let mut bound: Vec<(u16, Proto)> = Vec::new();
    let bindings: BTreeMap<&String, &Option<Vec<PortBinding>>> =
        hc.port_bindings.iter().flatten().collect();
    for (key, list) in bindings {
        let (container_port, proto) = parse_key(key)?;
        let list = list.as_deref().unwrap_or_default();
        for b in list {
            out.push(Request {
                proto,
                container_port,
                host_ip: parse_host_ip(&b.host_ip)?,
                host_ports: parse_host_ports(&b.host_port)?,
            });
        }
        if !list.is_empty() {
            bound.push((container_port, proto));
        }
    }
    if publish_all(hc) {
        let exposed: BTreeMap<&String, _> = config.exposed_ports.iter().flatten().collect();
        for key in exposed.keys() {
            let (container_port, proto) = parse_key(key)?;
            if !bound.contains(&(container_port, proto)) {
                out.push(Request {
                    proto,
                    container_port,
                    host_ip: None,
                    host_ports: (0, 0),
                });
            }
        }
    } else {
        for key in config.exposed_ports.iter().flatten().map(|(k, _)| k) {
            parse_key(key)?;
        }
    }
    Ok(out)
}

/// `NetworkSettings.Ports`: every exposed or bound port (`80/tcp`), with its host bindings
/// while the container runs, `null` when it has none.
pub(crate) fn settings_ports(
    config: &Config,
    hc: &HostConfig,
    published: &[Published],
) -> HashMap<String, Option<Vec<PortBinding>>> {
    let mut out: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    let keys = config
        .exposed_ports
        .iter()
        .flatten()
        .map(|(k, _)| k)
        .chain(hc.port_bindings.iter().flatten().map(|(k, _)| k));
    for key in keys {
        if let Ok((port, proto)) = parse_key(key) {
            out.entry(format!("{port}/{}", proto.as_str()))
                .or_insert(None);
        }
    }
    for p in published {
        out.entry(format!("{}/{}", p.container_port, p.proto))
            .or_insert(None)
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: p.host_ip.to_string(),
                host_port: p.host_port.to_string(),
            });
    }
    out
}

/// `ps`'s `Ports`: the published ones with their host side, the exposed ones alone.
pub(crate) fn summary_ports(config: &Config, published: &[Published]) -> Vec<Port> {
    let mut out: Vec<Port> = published
        .iter()
        .map(|p| Port {
            ip: Some(p.host_ip.to_string()),
            private_port: p.container_port,
            public_port: Some(p.host_port),
            kind: p.proto.clone(),
        })
        .collect();
    for key in config.exposed_ports.iter().flatten().map(|(k, _)| k) {
        if let Ok((port, proto)) = parse_key(key) {
            if !published
                .iter()
                .any(|p| p.container_port == port && p.proto == proto.as_str())
            {
                out.push(Port {
                    ip: None,
                    private_port: port,
                    public_port: None,
                    kind: proto.as_str().into(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hc(v: serde_json::Value) -> HostConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn bindings_and_publish_all_become_requests() {
        let config = Config {
            exposed_ports: Some(
                [
                    ("80/tcp".to_string(), json!({})),
                    ("53/udp".to_string(), json!({})),
                ]
                .into(),
            ),
            ..Default::default()
        };
        let h = hc(json!({
            "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"},
                                         {"HostIp": "", "HostPort": "9000-9010"}]},
            "PublishAllPorts": true
        }));
        let r = requests(&config, &h).unwrap();
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(r[0].host_ip, Some(std::net::Ipv4Addr::LOCALHOST.into()));
        assert_eq!(r[1].host_ip, None, "no HostIp: every address");
        assert_eq!(r[0].host_ports, (8080, 8080));
        assert_eq!(r[1].host_ports, (9000, 9010));
        assert_eq!((r[2].container_port, r[2].proto), (53, Proto::Udp));
        assert_eq!(r[2].host_ports, (0, 0), "-P: any free port");
    }

    #[test]
    fn bad_specs_get_docker_s_words_and_unsupported_ones_are_refused() {
        let c = Config::default();
        let err = |v| requests(&c, &hc(v)).unwrap_err().to_string();
        assert_eq!(
            err(json!({"PortBindings": {"abc/tcp": [{"HostPort": "1"}]}})),
            "invalid port specification: \"abc\""
        );
        assert_eq!(
            err(json!({"PortBindings": {"80/tcp": [{"HostPort": "x"}]}})),
            "invalid port specification: \"x\""
        );
        assert_eq!(
            err(json!({"PortBindings": {"80/tcp": [{"HostIp": "1.2.3", "HostPort": "1"}]}})),
            "invalid IP address: 1.2.3"
        );
        assert_eq!(
            err(json!({"PortBindings": {"80/dccp": [{"HostPort": "1"}]}})),
            "invalid proto: dccp"
        );
        let sctp = requests(
            &Config::default(),
            &hc(json!({"PortBindings": {"80/sctp": [{"HostPort": "1"}]}})),
        )
        .unwrap();
        assert_eq!((sctp[0].container_port, sctp[0].proto), (80, Proto::Sctp));
        assert_eq!(
            err(json!({"PortBindings": {"80/tcp": [{"HostIp": "[::1]", "HostPort": "1"}]}})),
            "invalid IP address: [::1]"
        );
    }

    #[test]
    fn an_ipv6_host_ip_is_that_address_and_state_of_before_still_reads() {
        let c = Config::default();
        let r = requests(
            &c,
            &hc(
                json!({"PortBindings": {"80/tcp": [{"HostIp": "::1", "HostPort": "8080"},
                                                    {"HostIp": "::", "HostPort": "8081"}]}}),
            ),
        )
        .unwrap();
        assert_eq!(r[0].host_ip, Some(std::net::Ipv6Addr::LOCALHOST.into()));
        assert_eq!(r[1].host_ip, Some(std::net::Ipv6Addr::UNSPECIFIED.into()));
        // A container's state from before keeps IPv4 addresses as strings: they still read.
        let old: Published = serde_json::from_value(
            json!({"proto": "tcp", "host_ip": "0.0.0.0", "host_port": 8080, "container_port": 80}),
        )
        .unwrap();
        assert_eq!(old.host_ip, IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED));
        let v6 = Published {
            host_ip: std::net::Ipv6Addr::UNSPECIFIED.into(),
            ..old.clone()
        };
        let shown = settings_ports(&c, &HostConfig::default(), &[old, v6]);
        let bindings = shown["80/tcp"].as_ref().unwrap();
        assert_eq!(
            bindings
                .iter()
                .map(|b| format!("{}:{}", b.host_ip, b.host_port))
                .collect::<Vec<_>>(),
            ["0.0.0.0:8080", ":::8080"],
            "Docker's HostIp of both families"
        );
    }
}
