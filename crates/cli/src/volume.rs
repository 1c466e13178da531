//! The `volume` verbs (`create`, `ls`, `inspect`, `rm`, `prune`), with docker 28's flags,
//! bodies and output; and berth's own `export` and `import` (backup and restore).

use std::collections::BTreeMap;

use anyhow::Result;
use berth_client::{Client, ErrorKind};
use clap::{ArgAction, Args};
use serde_json::{json, Value};

use crate::container::{parse_filters, print_raw};
use crate::format::Formatter;
use crate::network::natural_cmp;
use crate::{confirm, outln};

/// docker's default `volume ls` table.
const VOLUMES_TABLE: &str = "table {{.Driver}}\t{{.Name}}";

/// `volume create`.
#[derive(Debug, Clone, Args)]
pub struct VolumeCreateArgs {
    /// Specify volume driver name
    #[arg(short = 'd', long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long)]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// Specify volume name
    #[arg(long, hide = true)]
    pub name: Option<String>,
    /// The volume's name
    #[arg(value_name = "VOLUME")]
    pub volume: Option<String>,
}

/// `volume ls`.
#[derive(Debug, Clone, Args)]
pub struct VolumeLsArgs {
    /// Only display volume names
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
}

/// `volume inspect`.
#[derive(Debug, Clone, Args)]
pub struct VolumeInspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Volumes
    #[arg(value_name = "VOLUME", required = true)]
    pub volumes: Vec<String>,
}

/// `volume rm`.
#[derive(Debug, Clone, Args)]
pub struct VolumeRmArgs {
    /// Force the removal of one or more volumes
    #[arg(short = 'f', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    pub force: bool,
    /// Volumes
    #[arg(value_name = "VOLUME", required = true)]
    pub volumes: Vec<String>,
}

/// `volume prune`.
#[derive(Debug, Clone, Args)]
pub struct VolumePruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short = 'a', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    pub force: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long)]
    pub filter: Vec<String>,
}

/// `volume export` (berth's own).
#[derive(Debug, Clone, Args)]
pub struct VolumeExportArgs {
    /// Write to a file instead of STDOUT ("-": STDOUT)
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Compress the archive: none, gzip or zstd
    #[arg(long, value_name = "none|gzip|zstd", value_parser = ["none", "gzip", "zstd"])]
    pub compress: Option<String>,
    /// Pause the running containers writing to the volume for the copy (else refused)
    #[arg(long)]
    pub pause: bool,
    /// The volume
    #[arg(value_name = "VOLUME")]
    pub volume: String,
}

/// `volume import` (berth's own).
#[derive(Debug, Clone, Args)]
pub struct VolumeImportArgs {
    /// Replace the content of a volume that is not empty
    #[arg(short = 'f', long)]
    pub force: bool,
    /// The volume
    #[arg(value_name = "VOLUME")]
    pub volume: String,
    /// A tar archive, plain, gzip or zstd ("-": STDIN)
    #[arg(value_name = "FILE")]
    pub file: String,
}

/// docker's `ConvertKVStringsToMap`: `k=v`, or `k` alone for an empty value.
fn kv_map(values: &[String]) -> BTreeMap<String, String> {
    values
        .iter()
        .map(|v| match v.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (v.clone(), String::new()),
        })
        .collect()
}

/// The `POST /volumes/create` body docker 28 sends for these flags (empty maps left out,
/// as its `omitempty` does).
pub fn create_request(args: &VolumeCreateArgs) -> Result<Value, String> {
    let name =
        match (&args.name, &args.volume) {
            (Some(_), Some(_)) => return Err(
                "conflicting options: either specify --name or provide positional arg, not both"
                    .into(),
            ),
            (Some(n), None) | (None, Some(n)) => n.clone(),
            (None, None) => String::new(),
        };
    let mut body = serde_json::Map::new();
    if !args.driver.is_empty() {
        body.insert("Driver".into(), json!(args.driver));
    }
    let opts = kv_map(&args.opt);
    if !opts.is_empty() {
        body.insert("DriverOpts".into(), json!(opts));
    }
    let labels = kv_map(&args.label);
    if !labels.is_empty() {
        body.insert("Labels".into(), json!(labels));
    }
    if !name.is_empty() {
        body.insert("Name".into(), json!(name));
    }
    Ok(Value::Object(body))
}

/// `volume create`: prints the volume's name.
pub async fn create(client: &Client, args: &VolumeCreateArgs) -> Result<i32> {
    let body = create_request(args).map_err(anyhow::Error::msg)?;
    let v = client.volume_create(&body).await?;
    outln(v["Name"].as_str().unwrap_or(""));
    Ok(0)
}

/// docker's `Labels` column: `k=v` joined by commas (sorted here; docker's order is its
/// map's).
fn joined_labels(v: &Value) -> String {
    let mut pairs: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// `volume ls`: docker's table sorted by name (`sortorder.NaturalLess`), `-q` names only.
pub async fn ls(client: &Client, args: &VolumeLsArgs) -> Result<i32> {
    let reply = client.volume_list(&parse_filters(&args.filter)?).await?;
    let mut list: Vec<Value> = reply["Volumes"].as_array().cloned().unwrap_or_default();
    list.sort_by(|a, b| {
        natural_cmp(
            a["Name"].as_str().unwrap_or(""),
            b["Name"].as_str().unwrap_or(""),
        )
    });
    let format = if args.quiet && matches!(args.format.as_deref(), None | Some("") | Some("table"))
    {
        Some("{{.Name}}")
    } else {
        args.format.as_deref()
    };
    let f = Formatter::new(format, VOLUMES_TABLE)?;
    let header = json!({
        "Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE",
        "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE",
        "Group": "GROUP", "Availability": "AVAILABILITY", "Status": "STATUS",
    });
    let rows: Vec<Value> = list
        .iter()
        .map(|v| {
            json!({
                "Availability": "N/A",
                "Driver": v["Driver"],
                "Group": "N/A",
                "Labels": joined_labels(&v["Labels"]),
                "Links": "N/A",
                "Mountpoint": v["Mountpoint"],
                "Name": v["Name"],
                "Scope": v["Scope"],
                "Size": "N/A",
                "Status": "N/A",
            })
        })
        .collect();
    print_raw(&f.render(&header, &rows)?);
    Ok(0)
}

/// `volume inspect`: docker's indented JSON array of those found (or `-f`'s template per
/// volume); each one not found is reported on stderr, status 1.
pub async fn inspect(client: &Client, args: &VolumeInspectArgs) -> Result<i32> {
    let template = match &args.format {
        Some(f) => Some(
            crate::template::Template::parse(f)
                .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?,
        ),
        None => None,
    };
    let mut found = Vec::new();
    let mut status = 0;
    for name in &args.volumes {
        match client.volume_inspect_raw(name).await {
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

/// `volume rm`: each volume removed is printed as given; a failure is printed on stderr
/// and the others still go, then status 1 (docker joins the errors). With `-f` a volume
/// that is not there is no error (the daemon's answer to `force`).
pub async fn rm(client: &Client, args: &VolumeRmArgs) -> Result<i32> {
    let mut status = 0;
    for name in &args.volumes {
        match client.volume_remove(name, args.force).await {
            Ok(()) => outln(name),
            Err(e) if e.kind() == ErrorKind::NotFound && args.force => {}
            Err(e) => {
                eprintln!("{e}");
                status = 1;
            }
        }
    }
    Ok(status)
}

/// docker's questions before `volume prune`, without and with `--all`.
const PRUNE_WARNING: &str = "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] ";
const PRUNE_ALL_WARNING: &str = "WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] ";

/// `volume prune`: asks first unless `-f`; `-a` adds the `all=true` filter (API 1.42+);
/// prints `Deleted Volumes:` and the names when some went, then the space reclaimed.
pub async fn prune(client: &Client, args: &VolumePruneArgs) -> Result<i32> {
    let mut filters = parse_filters(&args.filter)?;
    if args.all {
        if filters.contains("all") {
            anyhow::bail!("conflicting options: cannot specify both --all and --filter all=1");
        }
        filters.add("all", "true");
    }
    let warning = if args.all {
        PRUNE_ALL_WARNING
    } else {
        PRUNE_WARNING
    };
    if !args.force && !confirm(warning) {
        return Ok(0);
    }
    let report = client.volume_prune(&filters).await?;
    let deleted: Vec<&str> = report["VolumesDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut out = String::new();
    let mut reclaimed = 0;
    if !deleted.is_empty() {
        out.push_str("Deleted Volumes:\n");
        for name in deleted {
            out.push_str(name);
            out.push('\n');
        }
        out.push('\n');
        reclaimed = report["SpaceReclaimed"].as_u64().unwrap_or(0);
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        crate::human::human_size(reclaimed as f64)
    ));
    print_raw(&out);
    Ok(0)
}

/// `volume export`: the volume's content as a tar archive, to `-o FILE` (whole or not at
/// all: written beside it, then renamed) or STDOUT, never to a terminal.
pub async fn export(client: &Client, args: &VolumeExportArgs) -> Result<i32> {
    use std::io::IsTerminal;
    let output = args.output.as_deref().filter(|o| *o != "-");
    if output.is_none() && std::io::stdout().is_terminal() {
        anyhow::bail!(
            "cowardly refusing to write an archive to a terminal. Use the -o flag or redirect"
        );
    }
    let stream = client
        .volume_export(&args.volume, args.compress.as_deref(), args.pause)
        .await?;
    crate::image::write_stream(stream, output, "failed to export volume").await?;
    Ok(0)
}

/// `volume import`: a tar archive (plain, gzip or zstd) from FILE or STDIN (`-`) becomes
/// the volume's content.
pub async fn import(client: &Client, args: &VolumeImportArgs) -> Result<i32> {
    use std::io::IsTerminal;
    if args.file == "-" {
        if std::io::stdin().is_terminal() {
            anyhow::bail!("requested import from stdin, but stdin is a terminal");
        }
        client
            .volume_import(&args.volume, tokio::io::stdin(), args.force)
            .await?;
    } else {
        let file = tokio::fs::File::open(&args.file)
            .await
            .map_err(|e| anyhow::anyhow!("open {}: {}", args.file, crate::image::io_reason(&e)))?;
        client.volume_import(&args.volume, file, args.force).await?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(name: Option<&str>, labels: &[&str], opts: &[&str]) -> VolumeCreateArgs {
        VolumeCreateArgs {
            driver: "local".into(),
            label: labels.iter().map(|s| s.to_string()).collect(),
            opt: opts.iter().map(|s| s.to_string()).collect(),
            name: None,
            volume: name.map(str::to_string),
        }
    }

    #[test]
    fn create_body_is_dockers() {
        assert_eq!(
            create_request(&args(Some("data"), &[], &[])).unwrap(),
            json!({"Driver": "local", "Name": "data"})
        );
        assert_eq!(
            create_request(&args(None, &["a=b", "flag"], &["type=tmpfs"])).unwrap(),
            json!({"Driver": "local", "Labels": {"a": "b", "flag": ""},
                   "DriverOpts": {"type": "tmpfs"}})
        );
        let mut both = args(Some("x1"), &[], &[]);
        both.name = Some("x2".into());
        assert!(create_request(&both)
            .unwrap_err()
            .contains("conflicting options"));
    }
}
