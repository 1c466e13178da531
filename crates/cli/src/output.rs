//! Rows for `ps`, `images` and `history` as template data, with docker's column values.

use berth_api::container::{Port, Summary};
use berth_api::image::{HistoryItem, Summary as ImageSummary};
use serde_json::{json, Map, Value};

use crate::format::{ellipsis, truncate_id};
use crate::human::{ago, go_time_string, human_size_precision};
use crate::template::go_quote;

use crate::template::HIDDEN;

/// Default `ps` table (docker's).
pub const PS_TABLE: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";
/// `ps -s`.
pub const PS_TABLE_SIZE: &str = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}";
/// Default `images` table.
pub const IMAGES_TABLE: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
/// `images --digests`.
pub const IMAGES_TABLE_DIGESTS: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
/// Default `history` table.
pub const HISTORY_TABLE: &str =
    "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";

/// Column titles for `ps` templates.
pub fn ps_header() -> Value {
    let mut m = Map::new();
    for (k, v) in [
        ("Command", "COMMAND"),
        ("CreatedAt", "CREATED AT"),
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Labels", "LABELS"),
        ("LocalVolumes", "LOCAL VOLUMES"),
        ("Mounts", "MOUNTS"),
        ("Names", "NAMES"),
        ("Networks", "NETWORKS"),
        ("Platform", "PLATFORM"),
        ("Ports", "PORTS"),
        ("RunningFor", "CREATED"),
        ("Size", "SIZE"),
        ("State", "STATE"),
        ("Status", "STATUS"),
    ] {
        m.insert(k.into(), Value::String(v.into()));
    }
    m.insert(format!("{HIDDEN}Label"), Value::String("LABEL".into()));
    Value::Object(m)
}

/// One `ps` row.
pub fn ps_row(c: &Summary, trunc: bool) -> Value {
    let command = if trunc {
        ellipsis(&c.command, 20)
    } else {
        c.command.clone()
    };
    let mut labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    let mut networks: Vec<&String> = c.network_settings.networks.keys().collect();
    networks.sort();
    let mounts: Vec<String> = c
        .mounts
        .iter()
        .map(|m| {
            let name = m.name.clone().unwrap_or_else(|| m.source.clone());
            if trunc {
                ellipsis(&name, 15)
            } else {
                name
            }
        })
        .collect();
    let local_volumes = c.mounts.iter().filter(|m| m.kind == "volume").count();
    let size = match (c.size_rw.unwrap_or(0), c.size_root_fs.unwrap_or(0)) {
        (rw, 0) => human_size_precision(rw as f64, 3),
        (rw, v) => format!(
            "{} (virtual {})",
            human_size_precision(rw as f64, 3),
            human_size_precision(v as f64, 3)
        ),
    };
    let label_map: Map<String, Value> = c
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut row = json!({
        "Command": go_quote(&command),
        "CreatedAt": go_time_string(c.created),
        "ID": if trunc { truncate_id(&c.id) } else { c.id.clone() },
        "Image": ps_image(c, trunc),
        "Labels": labels.join(","),
        "LocalVolumes": local_volumes.to_string(),
        "Mounts": mounts.join(","),
        "Names": ps_names(&c.names, trunc),
        "Networks": networks.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","),
        "Platform": Value::Null,
        "Ports": display_ports(&c.ports),
        "RunningFor": ago(c.created),
        "Size": size,
        "State": c.state,
        "Status": c.status,
    });
    row.as_object_mut()
        .expect("object")
        .insert(format!("{HIDDEN}Label"), Value::Object(label_map));
    row
}

fn ps_names(names: &[String], trunc: bool) -> String {
    let stripped: Vec<&str> = names
        .iter()
        .map(|n| n.strip_prefix('/').unwrap_or(n))
        .collect();
    if trunc {
        // Legacy link names (`/other/alias`) are hidden unless --no-trunc.
        if let Some(n) = stripped.iter().find(|n| !n.contains('/')) {
            return n.to_string();
        }
    }
    stripped.join(",")
}

fn ps_image(c: &Summary, trunc: bool) -> String {
    if c.image.is_empty() {
        return "<no image>".into();
    }
    if !trunc {
        return c.image.clone();
    }
    if truncate_id(&c.image_id) == truncate_id(&c.image) {
        return truncate_id(&c.image_id);
    }
    familiar(c.image.split('@').next().unwrap_or(&c.image))
}

/// Drops `docker.io/` and `docker.io/library/` for display.
pub fn familiar(name: &str) -> String {
    let n = name.strip_prefix("docker.io/").unwrap_or(name);
    n.strip_prefix("library/").unwrap_or(n).to_string()
}

/// docker's `DisplayablePorts`: consecutive ports grouped into ranges, host mappings last.
pub fn display_ports(ports: &[Port]) -> String {
    let mut ports = ports.to_vec();
    ports.sort_by(|a, b| {
        (
            a.private_port,
            a.ip.as_deref().unwrap_or(""),
            a.public_port,
            &a.kind,
        )
            .cmp(&(
                b.private_port,
                b.ip.as_deref().unwrap_or(""),
                b.public_port,
                &b.kind,
            ))
    });
    let mut groups: Vec<(String, u16, u16)> = Vec::new();
    let mut result = Vec::new();
    let mut host_mappings = Vec::new();
    for p in &ports {
        let current = p.private_port;
        let mut key = p.kind.clone();
        if let Some(ip) = p.ip.as_deref().filter(|ip| !ip.is_empty()) {
            let public = p.public_port.unwrap_or(0);
            if public != current {
                let host = if ip.contains(':') {
                    format!("[{ip}]:{public}")
                } else {
                    format!("{ip}:{public}")
                };
                host_mappings.push(format!("{host}->{}/{}", p.private_port, p.kind));
                continue;
            }
            key = format!("{ip}/{}", p.kind);
        }
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            None => groups.push((key, current, current)),
            Some(g) if current == g.2 + 1 => g.2 = current,
            Some(g) => {
                result.push(form_group(&g.0, g.1, g.2));
                g.1 = current;
                g.2 = current;
            }
        }
    }
    for (k, first, last) in &groups {
        result.push(form_group(k, *first, *last));
    }
    result.extend(host_mappings);
    result.join(", ")
}

fn form_group(key: &str, first: u16, last: u16) -> String {
    let (ip, kind) = match key.rsplit_once('/') {
        Some((ip, kind)) => (ip, kind),
        None => ("", key),
    };
    let mut group = first.to_string();
    if first != last {
        group = format!("{group}-{last}");
    }
    if !ip.is_empty() {
        group = format!("{ip}:{group}->{group}");
    }
    format!("{group}/{kind}")
}

/// Column titles for `images` templates.
pub fn images_header() -> Value {
    json!({
        "Containers": "CONTAINERS",
        "CreatedAt": "CREATED AT",
        "CreatedSince": "CREATED",
        "Digest": "DIGEST",
        "ID": "IMAGE ID",
        "Repository": "REPOSITORY",
        "SharedSize": "SHARED SIZE",
        "Size": "SIZE",
        "Tag": "TAG",
        "UniqueSize": "UNIQUE SIZE",
        "VirtualSize": "VIRTUAL SIZE",
    })
}

/// `images` rows: one per repository tag (docker's expansion), `<none>` for dangling.
pub fn image_rows(img: &ImageSummary, trunc: bool) -> Vec<Value> {
    image_rows_plain(img, trunc)
        .into_iter()
        .map(mark_row)
        .collect()
}

/// Marks a row as a docker formatter context (see `template::json`).
fn mark_row(mut row: Value) -> Value {
    if let Some(m) = row.as_object_mut() {
        m.insert(format!("{HIDDEN}context"), Value::Bool(true));
    }
    row
}

fn image_rows_plain(img: &ImageSummary, trunc: bool) -> Vec<Value> {
    let split_tag = |t: &str| -> (String, String) {
        match t.rfind(':') {
            Some(i) if !t[i..].contains('/') => (t[..i].to_string(), t[i + 1..].to_string()),
            _ => (t.to_string(), "<none>".to_string()),
        }
    };
    let digests: Vec<(String, String)> = img
        .repo_digests
        .iter()
        .filter(|d| d.as_str() != "<none>@<none>")
        .filter_map(|d| {
            d.split_once('@')
                .map(|(r, d)| (r.to_string(), d.to_string()))
        })
        .collect();
    let mut pairs: Vec<(String, String, String)> = Vec::new();
    for t in img
        .repo_tags
        .iter()
        .filter(|t| t.as_str() != "<none>:<none>")
    {
        let (repo, tag) = split_tag(t);
        let digest = digests
            .iter()
            .find(|(r, _)| *r == repo)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| "<none>".into());
        pairs.push((familiar(&repo), tag, digest));
    }
    for (repo, digest) in &digests {
        if !pairs.iter().any(|(r, _, _)| *r == familiar(repo)) {
            pairs.push((familiar(repo), "<none>".into(), digest.clone()));
        }
    }
    if pairs.is_empty() {
        pairs.push(("<none>".into(), "<none>".into(), "<none>".into()));
    }
    // docker's `Size` keeps 3 significant digits; the other sizes use `units.HumanSize` (4).
    let size_with = |n: i64, precision: usize| {
        if n < 0 {
            "N/A".to_string()
        } else {
            human_size_precision(n as f64, precision)
        }
    };
    let size = |n: i64| size_with(n, 4);
    let virtual_size = if img.virtual_size > 0 {
        img.virtual_size
    } else {
        img.size
    };
    pairs
        .into_iter()
        .map(|(repo, tag, digest)| {
            json!({
                "Containers": if img.containers < 0 { "N/A".to_string() } else { img.containers.to_string() },
                "CreatedAt": go_time_string(img.created),
                "CreatedSince": ago(img.created),
                "Digest": digest,
                "ID": if trunc { truncate_id(&img.id) } else { img.id.clone() },
                "Repository": repo,
                "SharedSize": size(img.shared_size),
                "Size": size_with(img.size, 3),
                "Tag": tag,
                "UniqueSize": size(if img.shared_size < 0 { -1 } else { img.size - img.shared_size }),
                "VirtualSize": size(virtual_size),
            })
        })
        .collect()
}

/// Column titles for `history` templates.
pub fn history_header() -> Value {
    json!({"Comment": "COMMENT", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
        "CreatedSince": "CREATED", "ID": "IMAGE", "Size": "SIZE"})
}

/// One `history` row.
pub fn history_row(h: &HistoryItem, trunc: bool) -> Value {
    mark_row(history_row_plain(h, trunc))
}

fn history_row_plain(h: &HistoryItem, trunc: bool) -> Value {
    let id = if h.id == "<missing>" {
        h.id.clone()
    } else if trunc {
        truncate_id(&h.id)
    } else {
        h.id.clone()
    };
    let created_by = h.created_by.replace('\t', " ");
    json!({
        "Comment": h.comment,
        "CreatedAt": chrono::DateTime::from_timestamp(h.created, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default(),
        "CreatedBy": if trunc { ellipsis(&created_by, 45) } else { created_by },
        "CreatedSince": ago(h.created),
        "ID": id,
        "Size": human_size_precision(h.size as f64, 3),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Formatter;

    fn port(ip: Option<&str>, private: u16, public: Option<u16>) -> Port {
        Port {
            ip: ip.map(str::to_string),
            private_port: private,
            public_port: public,
            kind: "tcp".into(),
        }
    }

    #[test]
    fn ports_display_like_docker() {
        assert_eq!(display_ports(&[port(None, 80, None)]), "80/tcp");
        assert_eq!(
            display_ports(&[
                port(Some("0.0.0.0"), 80, Some(8080)),
                port(Some("::"), 80, Some(8080)),
            ]),
            "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
        );
        assert_eq!(
            display_ports(&[
                port(None, 81, None),
                port(None, 80, None),
                port(None, 82, None)
            ]),
            "80-82/tcp"
        );
        assert_eq!(
            display_ports(&[port(Some("0.0.0.0"), 80, Some(80))]),
            "0.0.0.0:80->80/tcp"
        );
    }

    fn summary() -> Summary {
        Summary {
            id: "4dfd1f0c3b8e4d7a9b2c1e0f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b".into(),
            names: vec!["/web".into()],
            image: "busybox".into(),
            image_id: "sha256:1b2374978900aaaa".into(),
            command: "sh -c 'while true; do sleep 1; done'".into(),
            created: chrono::Utc::now().timestamp() - 150,
            state: "running".into(),
            status: "Up 2 minutes".into(),
            labels: [("a".to_string(), "b".to_string())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn ps_table_matches_docker_layout() {
        let f = Formatter::new(None, PS_TABLE).unwrap();
        let out = f.render(&ps_header(), &[ps_row(&summary(), true)]).unwrap();
        assert_eq!(
            out,
            "CONTAINER ID   IMAGE     COMMAND                  CREATED         STATUS         PORTS     NAMES\n\
             4dfd1f0c3b8e   busybox   \"sh -c 'while true; …\"   2 minutes ago   Up 2 minutes             web\n"
        );
    }

    #[test]
    fn ps_templates_see_label_method_and_json_hides_it() {
        let row = ps_row(&summary(), true);
        let f = Formatter::new(Some(r#"{{.Names}} {{.Label "a"}} {{.State}}"#), PS_TABLE).unwrap();
        assert_eq!(
            f.render(&ps_header(), std::slice::from_ref(&row)).unwrap(),
            "web b running\n"
        );
        let f = Formatter::new(Some("json"), PS_TABLE).unwrap();
        let out = f.render(&ps_header(), &[row]).unwrap();
        let v: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["Names"], "web");
        assert_eq!(v["Labels"], "a=b");
        assert!(!out.contains("\\u0000"));
    }

    #[test]
    fn images_expand_tags_and_format_sizes() {
        let img = ImageSummary {
            id: "sha256:1b2374978900bbbbbbbb".into(),
            repo_tags: vec!["busybox:latest".into(), "localhost:5000/busybox:1".into()],
            size: 4_261_550,
            created: chrono::Utc::now().timestamp() - 3 * 7 * 86400,
            ..Default::default()
        };
        let rows = image_rows(&img, true);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1]["Repository"], "localhost:5000/busybox");
        assert_eq!(rows[1]["Tag"], "1");
        let f = Formatter::new(None, IMAGES_TABLE).unwrap();
        assert_eq!(
            f.render(&images_header(), &rows[..1]).unwrap(),
            "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE\n\
             busybox      latest    1b2374978900   3 weeks ago   4.26MB\n"
        );
        let dangling = ImageSummary {
            id: "sha256:ab".into(),
            ..Default::default()
        };
        assert_eq!(image_rows(&dangling, true)[0]["Repository"], "<none>");
    }
}
