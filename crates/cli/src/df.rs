//! `system df`: docker 28's summary table (TYPE TOTAL ACTIVE SIZE RECLAIMABLE), its `-v`
//! sections and its `--format`, with the numbers docker's formatter derives from
//! `GET /system/df` (cli/command/formatter/disk_usage.go).

use anyhow::Result;
use berth_api::container::Summary;
use berth_api::image::Summary as ImageSummary;
use berth_api::system::DiskUsage;
use berth_client::Client;
use clap::Args;
use serde_json::{json, Map, Value};

use crate::container::print_raw;
use crate::format::Formatter;
use crate::human::human_size;
use crate::output::{image_rows, images_header, ps_header, ps_row};
use crate::template::{Template, HIDDEN};

/// `system df` options.
#[derive(Debug, Clone, Args)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json' or a Go template)
    #[arg(long)]
    pub format: Option<String>,
}

const DF_TABLE: &str = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";
/// docker's `--format raw` of the summary.
const DF_RAW: &str =
    "type: {{.Type}}\ntotal: {{.TotalCount}}\nactive: {{.Active}}\nsize: {{.Size}}\nreclaimable: {{.Reclaimable}}\n";
const IMAGES_TABLE: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}";
const CONTAINERS_TABLE: &str = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}";
const VOLUMES_TABLE: &str = "table {{.Name}}\t{{.Links}}\t{{.Size}}";
const BUILD_CACHE_TABLE: &str = "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}";

/// `system df [-v] [--format F]`.
pub async fn df(client: &Client, args: &DfArgs) -> Result<i32> {
    let du = client.disk_usage(&[]).await?;
    let format = args.format.as_deref().map(str::trim).unwrap_or("");
    let out = if args.verbose {
        verbose(&du, format)?
    } else if format == "raw" {
        // Each block ends with its own newline and docker's: a blank line between them.
        let t = Template::parse(DF_RAW).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut out = String::new();
        for row in summary_rows(&du) {
            out.push_str(&t.render(&row)?);
            out.push('\n');
        }
        out
    } else {
        let f = Formatter::new(Some(format), DF_TABLE)?;
        let header = json!({"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE",
            "Size": "SIZE", "Reclaimable": "RECLAIMABLE"});
        f.render(&header, &summary_rows(&du))?
    };
    print_raw(&out);
    Ok(0)
}

/// docker's `"%s (%v%%)"` when there is a total, the size alone otherwise.
fn reclaimable(reclaimable: i64, total: i64) -> String {
    if total > 0 {
        format!(
            "{} ({}%)",
            human_size(reclaimable as f64),
            reclaimable * 100 / total
        )
    } else {
        human_size(reclaimable as f64)
    }
}

fn row(kind: &str, total: usize, active: usize, size: String, reclaim: String) -> Value {
    let mut m = Map::new();
    m.insert("Active".into(), active.to_string().into());
    m.insert("Reclaimable".into(), reclaim.into());
    m.insert("Size".into(), size.into());
    m.insert("TotalCount".into(), total.to_string().into());
    m.insert("Type".into(), kind.into());
    Value::Object(m)
}

/// Running, paused and restarting containers are active (docker's `isActive`).
fn active_container(c: &Summary) -> bool {
    matches!(c.state.as_str(), "running" | "paused" | "restarting")
}

/// The four summary rows. Images: SIZE is `LayersSize`; what is in use is the unique part
/// (`Size - SharedSize`) of each image with containers. Containers: their rw layers, those
/// of inactive ones reclaimable. Volumes: their content, that of unused ones reclaimable.
fn summary_rows(du: &DiskUsage) -> Vec<Value> {
    let images = du.images.as_deref().unwrap_or_default();
    let used: i64 = images
        .iter()
        .filter(|i| i.containers != 0 && i.size != -1 && i.shared_size != -1)
        .map(|i| i.size - i.shared_size)
        .sum();
    let containers = du.containers.as_deref().unwrap_or_default();
    let rw = |c: &Summary| c.size_rw.unwrap_or(0);
    let containers_size: i64 = containers.iter().map(rw).sum();
    let containers_idle: i64 = containers
        .iter()
        .filter(|c| !active_container(c))
        .map(rw)
        .sum();
    let volumes = du.volumes.as_deref().unwrap_or_default();
    let usage = |v: &Value, k: &str| v["UsageData"][k].as_i64().unwrap_or(-1);
    let known: Vec<&Value> = volumes.iter().filter(|v| usage(v, "Size") != -1).collect();
    let volumes_size: i64 = known.iter().map(|v| usage(v, "Size")).sum();
    let volumes_unused: i64 = known
        .iter()
        .filter(|v| usage(v, "RefCount") == 0)
        .map(|v| usage(v, "Size"))
        .sum();
    let cache = du.build_cache.as_deref().unwrap_or_default();
    let cache_size = |c: &Value| c["Size"].as_i64().unwrap_or(0);
    let flag = |c: &Value, k: &str| c[k].as_bool().unwrap_or(false);
    let builder_size = builder_size(du);
    let cache_in_use: i64 = cache
        .iter()
        .filter(|c| flag(c, "InUse") && !flag(c, "Shared"))
        .map(cache_size)
        .sum();
    vec![
        row(
            "Images",
            images.len(),
            images.iter().filter(|i| i.containers > 0).count(),
            human_size(du.layers_size as f64),
            reclaimable(du.layers_size - used, du.layers_size),
        ),
        row(
            "Containers",
            containers.len(),
            containers.iter().filter(|c| active_container(c)).count(),
            human_size(containers_size as f64),
            reclaimable(containers_idle, containers_size),
        ),
        row(
            "Local Volumes",
            volumes.len(),
            volumes.iter().filter(|v| usage(v, "RefCount") > 0).count(),
            human_size(volumes_size as f64),
            reclaimable(volumes_unused, volumes_size),
        ),
        row(
            "Build Cache",
            cache.len(),
            cache.iter().filter(|c| flag(c, "InUse")).count(),
            human_size(builder_size as f64),
            human_size((builder_size - cache_in_use) as f64),
        ),
    ]
}

/// The build cache's bytes, shared records left out (docker's `BuilderSize`).
fn builder_size(du: &DiskUsage) -> i64 {
    let cache = du.build_cache.as_deref().unwrap_or_default();
    cache
        .iter()
        .filter(|c| !c["Shared"].as_bool().unwrap_or(false))
        .map(|c| c["Size"].as_i64().unwrap_or(0))
        .sum()
}

/// Marks a row as a docker formatter context: `{{json .}}` escapes HTML as docker's does.
fn as_context(mut row: Value) -> Value {
    if let Some(m) = row.as_object_mut() {
        m.insert(format!("{HIDDEN}context"), Value::Bool(true));
    }
    row
}

/// An image's `-v` row: its first tag only (docker's), `<none>` when it has none; docker
/// leaves `Digest` empty here.
fn image_row(i: &ImageSummary, trunc: bool) -> Value {
    let first = ImageSummary {
        repo_tags: i.repo_tags.iter().take(1).cloned().collect(),
        repo_digests: Vec::new(),
        ..i.clone()
    };
    let mut row = image_rows(&first, trunc)
        .into_iter()
        .next()
        .unwrap_or(Value::Null);
    row["Digest"] = Value::String(String::new());
    row
}

/// A container's `-v` row: docker zeroes `SizeRootFs` so that SIZE shows the rw layer only.
fn container_row(c: &Summary, trunc: bool) -> Value {
    let c = Summary {
        size_root_fs: Some(0),
        ..c.clone()
    };
    ps_row(&c, trunc)
}

fn volume_header() -> Value {
    json!({
        "Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE",
        "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE",
        "Group": "GROUP", "Availability": "AVAILABILITY", "Status": "STATUS",
    })
}

/// A volume's `-v` row: docker's volume context with `UsageData` (LINKS, SIZE).
fn volume_row(v: &Value) -> Value {
    let usage = &v["UsageData"];
    let (links, size) = match (usage["RefCount"].as_i64(), usage["Size"].as_i64()) {
        (Some(refs), Some(size)) => (refs.to_string(), human_size(size as f64)),
        _ => ("N/A".to_string(), "N/A".to_string()),
    };
    let mut labels: Vec<String> = v["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    labels.sort();
    as_context(json!({
        "Availability": "N/A",
        "Driver": v["Driver"],
        "Group": "N/A",
        "Labels": labels.join(","),
        "Links": links,
        "Mountpoint": v["Mountpoint"],
        "Name": v["Name"],
        "Scope": v["Scope"],
        "Size": size,
        "Status": "N/A",
    }))
}

fn build_cache_header() -> Value {
    json!({"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE",
        "CreatedSince": "CREATED", "LastUsedSince": "LAST USED", "UsageCount": "USAGE",
        "Shared": "SHARED", "Description": "DESCRIPTION", "InUse": "IN USE",
        "Parent": "PARENT", "CreatedAt": "CREATED AT", "LastUsedAt": "LAST USED AT"})
}

/// `-v`: docker's four tables, or the template run once over
/// `{Images, Containers, Volumes, BuildCache}` (ids untruncated then, as docker's).
fn verbose(du: &DiskUsage, format: &str) -> Result<String> {
    let table = format.is_empty() || format == "table";
    let images = du.images.as_deref().unwrap_or_default();
    let containers = du.containers.as_deref().unwrap_or_default();
    let volumes = du.volumes.as_deref().unwrap_or_default();
    let images: Vec<Value> = images.iter().map(|i| image_row(i, table)).collect();
    let containers: Vec<Value> = containers.iter().map(|c| container_row(c, table)).collect();
    let volumes: Vec<Value> = volumes.iter().map(volume_row).collect();
    // berth has no builder: the daemon's build cache is always empty.
    let cache: Vec<Value> = Vec::new();
    if !table {
        let format = if format == "json" {
            "{{json .}}"
        } else {
            format
        };
        let format = format.replace("\\t", "\t").replace("\\n", "\n");
        let t =
            Template::parse(&format).map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?;
        let mut data = json!({"Images": images, "Containers": containers,
            "Volumes": volumes, "BuildCache": cache});
        // docker marshals the rows with HTML escaping (`\u003cnone\u003e`).
        data[format!("{HIDDEN}context")] = Value::Bool(true);
        // docker executes this template straight to stdout: no newline of its own.
        return Ok(t.render(&data)?);
    }
    let section = |t: &str, header: &Value, rows: &[Value]| -> Result<String> {
        Ok(Formatter::new(Some(t), t)?.render(header, rows)?)
    };
    let mut out = String::from("Images space usage:\n\n");
    out.push_str(&section(IMAGES_TABLE, &images_header(), &images)?);
    out.push_str("\nContainers space usage:\n\n");
    out.push_str(&section(CONTAINERS_TABLE, &ps_header(), &containers)?);
    out.push_str("\nLocal Volumes space usage:\n\n");
    out.push_str(&section(VOLUMES_TABLE, &volume_header(), &volumes)?);
    out.push_str(&format!(
        "\nBuild cache usage: {}\n\n",
        human_size(builder_size(du) as f64)
    ));
    out.push_str(&section(BUILD_CACHE_TABLE, &build_cache_header(), &cache)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(size: i64, shared: i64, containers: i64) -> ImageSummary {
        ImageSummary {
            size,
            shared_size: shared,
            containers,
            ..ImageSummary::default()
        }
    }

    fn container(state: &str, rw: i64) -> Summary {
        Summary {
            state: state.into(),
            size_rw: Some(rw),
            ..Summary::default()
        }
    }

    #[test]
    fn summary_rows_follow_dockers_arithmetic() {
        let du = DiskUsage {
            // Two images sharing 600 bytes; the used one's unique 400 is not reclaimable.
            layers_size: 1_200,
            images: Some(vec![image(1_000, 600, 2), image(800, 600, 0)]),
            containers: Some(vec![
                container("running", 3_000),
                container("exited", 1_000),
                container("paused", 0),
            ]),
            volumes: Some(vec![
                json!({"UsageData": {"RefCount": 1, "Size": 2_000_000}}),
                json!({"UsageData": {"RefCount": 0, "Size": 1_000_000}}),
                json!({"UsageData": {"RefCount": 0, "Size": -1}}),
            ]),
            build_cache: Some(Vec::new()),
        };
        let f = Formatter::new(None, DF_TABLE).unwrap();
        let header = json!({"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE",
            "Size": "SIZE", "Reclaimable": "RECLAIMABLE"});
        assert_eq!(
            f.render(&header, &summary_rows(&du)).unwrap(),
            "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n\
             Images          2         1         1.2kB     800B (66%)\n\
             Containers      3         2         4kB       1kB (25%)\n\
             Local Volumes   3         1         3MB       1MB (33%)\n\
             Build Cache     0         0         0B        0B\n"
        );
        let f = Formatter::new(Some("json"), DF_TABLE).unwrap();
        let json = f.render(&header, &summary_rows(&du)).unwrap();
        assert_eq!(
            json.lines().next().unwrap(),
            r#"{"Active":"1","Reclaimable":"800B (66%)","Size":"1.2kB","TotalCount":"2","Type":"Images"}"#
        );
    }

    #[test]
    fn nothing_at_all_has_no_percentages() {
        let du = DiskUsage {
            images: Some(Vec::new()),
            containers: Some(Vec::new()),
            volumes: Some(Vec::new()),
            build_cache: Some(Vec::new()),
            ..DiskUsage::default()
        };
        let reclaim: Vec<String> = summary_rows(&du)
            .iter()
            .map(|r| r["Reclaimable"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(reclaim, ["0B", "0B", "0B", "0B"]);
    }

    #[test]
    fn verbose_tables_have_dockers_sections_and_headers() {
        let du = DiskUsage {
            images: Some(Vec::new()),
            containers: Some(Vec::new()),
            volumes: Some(vec![json!({"Name": "data", "Driver": "local",
                "UsageData": {"RefCount": 2, "Size": 1234}})]),
            build_cache: Some(Vec::new()),
            ..DiskUsage::default()
        };
        assert_eq!(
            verbose(&du, "").unwrap(),
            "Images space usage:\n\n\
             REPOSITORY   TAG       IMAGE ID   CREATED   SIZE      SHARED SIZE   UNIQUE SIZE   CONTAINERS\n\
             \nContainers space usage:\n\n\
             CONTAINER ID   IMAGE     COMMAND   LOCAL VOLUMES   SIZE      CREATED   STATUS    NAMES\n\
             \nLocal Volumes space usage:\n\n\
             VOLUME NAME   LINKS     SIZE\n\
             data          2         1.234kB\n\
             \nBuild cache usage: 0B\n\n\
             CACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED\n"
        );
        assert_eq!(
            verbose(
                &du,
                "{{range .Volumes}}{{.Name}} {{.Links}} {{.Size}}{{end}}"
            )
            .unwrap(),
            "data 2 1.234kB"
        );
    }
}
