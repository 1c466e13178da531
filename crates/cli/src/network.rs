//! `network ls`, `network inspect` and `port`, as docker prints them.

use anyhow::Result;
use berth_client::Client;
use clap::Args;
use serde_json::{json, Value};

use crate::container::{parse_filters, print_raw};
use crate::format::Formatter;
use crate::outln;

/// docker's default `network ls` table.
const NETWORKS_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";

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

/// docker's order for `port` (Go's `sortorder.NaturalLess`): runs of digits compare as
/// numbers, so `80/tcp` comes before `7000/tcp`.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
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
