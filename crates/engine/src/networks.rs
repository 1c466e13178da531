//! `GET /networks` and `GET /networks/{id}`: the networks berth has, in Docker's
//! `NetworkResource` shape: `bridge` (the default bridge, when berthd has one), `host` and
//! `none`. User-defined networks come with issue 14's next steps.

use berth_api::filters::Filters;
use serde_json::{json, Value};

use crate::error::{EngineError, Result};
use crate::network::network_id;
use crate::Engine;

/// The filters `network ls` takes (Docker's).
const FILTERS: &[&str] = &["name", "id", "driver", "type", "scope", "label", "dangling"];

impl Engine {
    /// Every network, each as Docker's `NetworkResource`; `containers` fills `Containers`
    /// (inspect does, the list does not, as Docker's).
    fn network_resources(&self, containers: bool) -> Vec<Value> {
        let created = crate::record::format_time(Some(self.started_at));
        let mut out = Vec::new();
        if let Some(bridge) = self.net.bridge_info() {
            let mut members = serde_json::Map::new();
            if containers {
                for c in self.all() {
                    if let Some(ep) = c.state().network {
                        members.insert(
                            c.id.clone(),
                            json!({
                                "Name": c.name(),
                                "EndpointID": crate::network::endpoint_id(&c.id, "bridge"),
                                "MacAddress": ep.mac,
                                "IPv4Address": format!("{}/{}", ep.ip, ep.prefix),
                                "IPv6Address": "",
                            }),
                        );
                    }
                }
            }
            out.push(json!({
                "Name": "bridge",
                "Id": network_id("bridge"),
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
                "Containers": members,
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
                "Id": network_id(name),
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
        let field = |n: &Value, k: &str| n[k].as_str().unwrap_or("").to_string();
        Ok(self
            .network_resources(false)
            .into_iter()
            .filter(|n| {
                let any = |key: &str, ok: &dyn Fn(&str) -> bool| {
                    let wanted = filters.get(key);
                    wanted.is_empty() || wanted.iter().any(|w| ok(w))
                };
                let name = field(n, "Name");
                let id = field(n, "Id");
                any("name", &|w| name.contains(w))
                    && any("id", &|w| id.starts_with(w))
                    && any("driver", &|w| field(n, "Driver") == w)
                    && any("scope", &|w| w == "local")
                    // Every network berth has is built in.
                    && any("type", &|w| w == "builtin")
                    // Built-in networks are never dangling; they have no labels.
                    && any("dangling", &|w| w == "false" || w == "0")
                    && filters.get("label").is_empty()
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
