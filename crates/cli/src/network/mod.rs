//! The `network` verbs (`ls`, `inspect`, `create`, `rm`, `prune`, `connect`,
//! `disconnect`) and `port`, with docker's flags, bodies and output.

pub mod create;
pub mod endpoint;

use std::collections::BTreeMap;

use anyhow::Result;
use berth_client::{Client, ErrorKind};
use clap::{ArgAction, Args};
use serde_json::{json, Value};

use crate::container::{parse_filters, print_raw};
use crate::format::Formatter;
use crate::{confirm, outln};
use endpoint::{validate_link, Endpoint, EndpointIpam};

/// docker's default `network ls` table.
const NETWORKS_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";

/// One value of a pflag string-slice flag (`--alias a,b`): comma-separated, read as a CSV
/// record (so `"a,b"` is one item), and an empty value adds nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StringSlice(pub Vec<String>);

impl StringSlice {
    /// The clap parser.
    pub fn parse(value: &str) -> Result<StringSlice, String> {
        if value.is_empty() {
            return Ok(StringSlice::default());
        }
        endpoint::csv_fields(value).map(StringSlice)
    }

    /// Every item of every occurrence, in order.
    pub fn flatten(values: &[StringSlice]) -> Vec<String> {
        values.iter().flat_map(|s| s.0.iter().cloned()).collect()
    }
}

/// `network ls`.
#[derive(Debug, Clone, Args)]
pub struct NetworkLsArgs {
    /// Only display network IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
}

/// `network inspect`.
#[derive(Debug, Clone, Args)]
pub struct NetworkInspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Networks
    #[arg(value_name = "NETWORK", required = true)]
    pub networks: Vec<String>,
}

/// `network rm`.
#[derive(Debug, Clone, Args)]
pub struct NetworkRmArgs {
    /// Do not error if the network does not exist
    #[arg(short = 'f', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    pub force: bool,
    /// Networks
    #[arg(value_name = "NETWORK", required = true)]
    pub networks: Vec<String>,
}

/// `network prune`.
#[derive(Debug, Clone, Args)]
pub struct NetworkPruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long)]
    pub filter: Vec<String>,
}

/// `network connect`.
#[derive(Debug, Clone, Args)]
pub struct NetworkConnectArgs {
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long, default_value = "", hide_default_value = true)]
    pub ip: String,
    /// IPv6 address (e.g., "2001:db8::33")
    #[arg(long, default_value = "", hide_default_value = true)]
    pub ip6: String,
    /// Add link to another container
    #[arg(long, value_parser = validate_link)]
    pub link: Vec<String>,
    /// Add network-scoped alias for the container
    #[arg(long, value_parser = StringSlice::parse)]
    pub alias: Vec<StringSlice>,
    /// Add a link-local address for the container
    #[arg(long = "link-local-ip", value_parser = StringSlice::parse)]
    pub link_local_ip: Vec<StringSlice>,
    /// driver options for the network
    #[arg(long = "driver-opt", value_parser = StringSlice::parse)]
    pub driver_opt: Vec<StringSlice>,
    /// Highest gw-priority provides the default gateway. Accepts positive and negative values.
    #[arg(long = "gw-priority", default_value = "0", allow_hyphen_values = true)]
    pub gw_priority: i64,
    /// The network
    #[arg(value_name = "NETWORK")]
    pub network: String,
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `network disconnect`.
#[derive(Debug, Clone, Args)]
pub struct NetworkDisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    pub force: bool,
    /// The network
    #[arg(value_name = "NETWORK")]
    pub network: String,
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `port`.
#[derive(Debug, Clone, Args)]
pub struct PortArgs {
    /// The container
    pub container: String,
    /// PRIVATE_PORT[/PROTO]
    pub port: Option<String>,
}

pub async fn ls(client: &Client, args: &NetworkLsArgs) -> Result<i32> {
    let mut list = client.network_list(&parse_filters(&args.filter)?).await?;
    // docker sorts by name on its side.
    list.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
    let format = if args.quiet && matches!(args.format.as_deref(), None | Some("") | Some("table"))
    {
        Some("{{.ID}}")
    } else {
        args.format.as_deref()
    };
    let f = Formatter::new(format, NETWORKS_TABLE)?;
    let header = json!({
        "ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
        "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED",
    });
    let rows: Vec<Value> = list
        .iter()
        .map(|n| {
            let id = n["Id"].as_str().unwrap_or("");
            let id = if args.no_trunc {
                id
            } else {
                &id[..id.len().min(12)]
            };
            json!({
                "ID": id,
                "Name": n["Name"],
                "Driver": n["Driver"],
                "Scope": n["Scope"],
                "IPv6": n["EnableIPv6"],
                "Internal": n["Internal"],
                "Labels": "",
                "CreatedAt": n["Created"],
            })
        })
        .collect();
    print_raw(&f.render(&header, &rows)?);
    Ok(0)
}

pub async fn inspect(client: &Client, args: &NetworkInspectArgs) -> Result<i32> {
    let template = match &args.format {
        Some(f) => Some(
            crate::template::Template::parse(f)
                .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?,
        ),
        None => None,
    };
    let mut found = Vec::new();
    let mut status = 0;
    for name in &args.networks {
        match client.network_inspect_raw(name).await {
            Ok(v) => found.push(v),
            Err(e) => {
                eprintln!("{e}");
                status = 1;
            }
        }
    }
    match template {
        Some(t) => {
            for v in &found {
                outln(&t.render(v)?);
            }
        }
        None => outln(&crate::container::indent_json(&Value::Array(found))),
    }
    Ok(status)
}

/// What docker's client checks of a name or id before any request: it is trimmed, and a
/// blank one is refused.
fn trimmed_id<'a>(kind: &str, id: &'a str) -> Result<&'a str, String> {
    let id = id.trim();
    if id.is_empty() {
        return Err(format!("invalid {kind} name or ID: value is empty"));
    }
    Ok(id)
}

/// `network rm`: each network removed is printed as given; a failure is printed on stderr
/// and the others still go, then docker's `exit status 1` line and status 1. With `-f` a
/// network that does not exist is passed over in silence.
pub async fn rm(client: &Client, args: &NetworkRmArgs) -> Result<i32> {
    let mut status = 0;
    for name in &args.networks {
        let result = match trimmed_id("network", name) {
            Ok(id) => client
                .network_remove(id)
                .await
                .map_err(|e| (e.kind(), e.to_string())),
            Err(e) => Err((ErrorKind::InvalidArgument, e)),
        };
        match result {
            Ok(()) => outln(name),
            Err((ErrorKind::NotFound, _)) if args.force => {}
            Err((_, e)) => {
                eprintln!("{e}");
                status = 1;
            }
        }
    }
    if status != 0 {
        eprintln!("exit status {status}");
    }
    Ok(status)
}

/// docker's question before `network prune`.
const PRUNE_WARNING: &str = "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ";

/// `network prune`: asks first unless `-f` (a "no" ends it quietly, status 0, as docker);
/// prints `Deleted Networks:`, the names and a blank line when some were removed, nothing
/// otherwise.
pub async fn prune(client: &Client, args: &NetworkPruneArgs) -> Result<i32> {
    let filters = parse_filters(&args.filter)?;
    if !args.force && !confirm(PRUNE_WARNING) {
        return Ok(0);
    }
    let report = client.network_prune(&filters).await?;
    let deleted: Vec<&str> = report["NetworksDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !deleted.is_empty() {
        let mut out = String::from("Deleted Networks:\n");
        for name in deleted {
            out.push_str(name);
            out.push('\n');
        }
        out.push('\n');
        print_raw(&out);
    }
    Ok(0)
}

/// docker's `convertDriverOpt` for `connect --driver-opt`: `k=v`, both trimmed, a key
/// required.
fn connect_driver_opts(opts: &[String]) -> Result<BTreeMap<String, String>, String> {
    opts.iter()
        .map(|opt| match opt.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err("invalid key/value pair format in driver options".to_string()),
        })
        .collect()
}

/// The `POST /networks/{id}/connect` path id and body docker 28 sends for these flags
/// (the IPAM block, `Aliases` and `DriverOpts` are sent even when empty, as docker does).
pub fn connect_request(args: &NetworkConnectArgs) -> Result<(String, Value), String> {
    let driver_opts = connect_driver_opts(&StringSlice::flatten(&args.driver_opt))?;
    let network = trimmed_id("network", &args.network)?;
    let container = trimmed_id("container", &args.container)?;
    let endpoint = Endpoint {
        ipam: Some(EndpointIpam {
            ipv4_address: args.ip.clone(),
            ipv6_address: args.ip6.clone(),
            link_local_ips: StringSlice::flatten(&args.link_local_ip),
        }),
        links: (!args.link.is_empty()).then(|| args.link.clone()),
        aliases: Some(StringSlice::flatten(&args.alias)),
        mac_address: String::new(),
        driver_opts: Some(driver_opts),
        gw_priority: args.gw_priority,
    };
    Ok((
        network.to_string(),
        json!({"Container": container, "EndpointConfig": endpoint.to_json()}),
    ))
}

/// `network connect`: silent on success, as docker.
pub async fn connect(client: &Client, args: &NetworkConnectArgs) -> Result<i32> {
    let (network, body) = connect_request(args).map_err(anyhow::Error::msg)?;
    client.network_connect(&network, &body).await?;
    Ok(0)
}

/// The `POST /networks/{id}/disconnect` path id and body docker 28 sends.
pub fn disconnect_request(args: &NetworkDisconnectArgs) -> Result<(String, Value), String> {
    let network = trimmed_id("network", &args.network)?;
    let container = trimmed_id("container", &args.container)?;
    Ok((
        network.to_string(),
        json!({"Container": container, "Force": args.force}),
    ))
}

/// `network disconnect`: silent on success, as docker.
pub async fn disconnect(client: &Client, args: &NetworkDisconnectArgs) -> Result<i32> {
    let (network, body) = disconnect_request(args).map_err(anyhow::Error::msg)?;
    client.network_disconnect(&network, &body).await?;
    Ok(0)
}

/// docker's order for `port` (Go's `sortorder.NaturalLess`): runs of digits compare as
/// numbers, so `80/tcp` comes before `7000/tcp`.
pub(crate) fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let run = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (run(a), run(b));
                let (da, db) = (&a[..na], &b[..nb]);
                let strip = |d: &[u8]| d.iter().skip_while(|c| **c == b'0').count();
                let order = strip(da).cmp(&strip(db)).then_with(|| {
                    let (ta, tb) = (&da[na - strip(da)..], &db[nb - strip(db)..]);
                    ta.cmp(tb)
                });
                if order != std::cmp::Ordering::Equal {
                    return order;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

/// docker's `port`: every published binding as `80/tcp -> 0.0.0.0:8080`, sorted; with a
/// port, its bindings alone (`0.0.0.0:8080`), or docker's error when it has none.
pub async fn port(client: &Client, args: &PortArgs) -> Result<i32> {
    let c = client.container_inspect_raw(&args.container).await?;
    let ports = c["NetworkSettings"]["Ports"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let host = |b: &Value| {
        let ip = b["HostIp"].as_str().unwrap_or("");
        let port = b["HostPort"].as_str().unwrap_or("");
        if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        }
    };
    if let Some(want) = &args.port {
        let key = if want.contains('/') {
            want.clone()
        } else {
            format!("{want}/tcp")
        };
        // docker: a port with `null` bindings is not published; an empty list prints
        // nothing. The error names the container as it was typed.
        let Some(bindings) = ports.get(&key).and_then(Value::as_array) else {
            anyhow::bail!(
                "Error: No public port '{want}' published for {}",
                args.container
            );
        };
        let mut lines: Vec<String> = bindings.iter().map(host).collect();
        lines.sort_by(|a, b| natural_cmp(a, b));
        for l in lines {
            outln(&l);
        }
        return Ok(0);
    }
    let mut lines: Vec<String> = ports
        .iter()
        .flat_map(|(key, list)| {
            list.as_array()
                .into_iter()
                .flatten()
                .map(move |b| format!("{key} -> {}", host(b)))
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort_by(|a, b| natural_cmp(a, b));
    for l in lines {
        outln(&l);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    enum Verb {
        Connect(NetworkConnectArgs),
        Disconnect(NetworkDisconnectArgs),
    }

    fn connect(args: &[&str]) -> Result<(String, Value), String> {
        let mut v = vec!["network", "connect"];
        v.extend_from_slice(args);
        match Verb::try_parse_from(v).unwrap() {
            Verb::Connect(a) => connect_request(&a),
            Verb::Disconnect(_) => unreachable!(),
        }
    }

    fn disconnect(args: &[&str]) -> Result<(String, Value), String> {
        let mut v = vec!["network", "disconnect"];
        v.extend_from_slice(args);
        match Verb::try_parse_from(v).unwrap() {
            Verb::Disconnect(a) => disconnect_request(&a),
            Verb::Connect(_) => unreachable!(),
        }
    }

    /// docker network connect n1 ctr, as docker 28 sent it (key order included).
    #[test]
    fn bare_connect_is_dockers_body() {
        let docker = r#"{"Container": "ctr", "EndpointConfig": {"IPAMConfig": {},
            "Links": null, "Aliases": [], "MacAddress": "", "DriverOpts": {}, "GwPriority": 0,
            "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "",
            "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "DNSNames": null}}"#;
        let docker: Value = serde_json::from_str(docker).unwrap();
        let (network, body) = connect(&["n1", "ctr"]).unwrap();
        assert_eq!(network, "n1");
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            serde_json::to_string(&docker).unwrap()
        );
    }

    #[test]
    fn connect_options_and_mistakes_follow_docker() {
        let (_, body) = connect(&[
            "--driver-opt",
            "a=b, c = d ",
            "--link-local-ip",
            "169.254.1.1,169.254.1.2",
            "--gw-priority",
            "-3",
            "n1",
            "ctr",
        ])
        .unwrap();
        let ep = &body["EndpointConfig"];
        assert_eq!(ep["DriverOpts"], json!({"a": "b", "c": "d"}));
        assert_eq!(
            ep["IPAMConfig"],
            json!({"LinkLocalIPs": ["169.254.1.1", "169.254.1.2"]})
        );
        assert_eq!(ep["GwPriority"], -3);
        // Names are trimmed on the wire; blank ones refused before any request.
        let (network, body) = connect(&[" n1 ", " ctr "]).unwrap();
        assert_eq!(
            (network.as_str(), &body["Container"]),
            ("n1", &json!("ctr"))
        );
        assert_eq!(
            connect(&["n1", " "]).unwrap_err(),
            "invalid container name or ID: value is empty"
        );
        assert_eq!(
            connect(&[" ", "ctr"]).unwrap_err(),
            "invalid network name or ID: value is empty"
        );
        assert_eq!(
            connect(&["--driver-opt", "bad", "n1", "ctr"]).unwrap_err(),
            "invalid key/value pair format in driver options"
        );
        assert_eq!(
            connect(&["--driver-opt", " =x", "n1", "ctr"]).unwrap_err(),
            "invalid key/value pair format in driver options"
        );
        let e = Verb::try_parse_from(["network", "connect", "--link", "a:b:c", "n", "c"])
            .err()
            .unwrap();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
    }

    #[test]
    fn disconnect_is_dockers_body() {
        assert_eq!(
            disconnect(&["n1", "ctr"]).unwrap(),
            (
                "n1".to_string(),
                json!({"Container": "ctr", "Force": false})
            )
        );
        assert_eq!(
            disconnect(&["-f", "n1", "ctr"]).unwrap().1,
            json!({"Container": "ctr", "Force": true})
        );
        assert_eq!(
            disconnect(&["n1", ""]).unwrap_err(),
            "invalid container name or ID: value is empty"
        );
    }

    #[test]
    fn ports_sort_as_numbers() {
        let mut v = vec![
            "7000/tcp -> x",
            "80/tcp -> y",
            "80/tcp -> a",
            "443/udp -> z",
        ];
        v.sort_by(|a, b| super::natural_cmp(a, b));
        assert_eq!(
            v,
            [
                "80/tcp -> a",
                "80/tcp -> y",
                "443/udp -> z",
                "7000/tcp -> x"
            ]
        );
    }
}
