//! `version`, `info` and `events`, laid out like docker's.

use anyhow::Result;
use berth_api::events::Message;
use berth_api::system::{Info, Version};
use berth_client::{Client, EventsOptions};
use chrono::TimeZone;
use clap::Args;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::format::tabwrite;
use crate::human::bytes_size;
use crate::outln;
use crate::template::Template;

/// `version` / `info` options.
#[derive(Debug, Clone, Args)]
pub struct FormatArgs {
    /// Format output using a custom template ('json' or a Go template)
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

fn client_value(api_version: &str) -> Value {
    json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": api_version,
        "DefaultAPIVersion": berth_client::MAX_API_VERSION,
        "Os": std::env::consts::OS,
        "Arch": go_arch(),
        "Context": "default",
    })
}

/// Lets a template reach `json_key` by its Go field name too (docker's templates see Go
/// structs: `{{.Server.APIVersion}}`), without changing what `{{json .}}` prints.
fn go_field_alias(v: &mut Value, go_name: &str, json_key: &str) {
    if let Value::Object(m) = v {
        if let Some(x) = m.get(json_key).cloned() {
            m.insert(format!("{}{go_name}", crate::template::HIDDEN), x);
        }
    }
}

fn render_format(format: &str, data: &Value) -> Result<()> {
    let format = if format == "json" {
        "{{json .}}"
    } else {
        format
    };
    let t = Template::parse(format).map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?;
    outln(&t.render(data)?);
    Ok(())
}

/// The Client section of `version`.
pub fn client_section(api_version: &str) -> String {
    // docker notes a negotiated version below its own: "1.41 (downgraded from 1.44)".
    let api_version = if api_version != berth_client::MAX_API_VERSION {
        format!(
            "{api_version} (downgraded from {})",
            berth_client::MAX_API_VERSION
        )
    } else {
        api_version.to_string()
    };
    format!(
        "Client:\n Version:\t{}\n API version:\t{api_version}\n OS/Arch:\t{}/{}\n Context:\tdefault",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        go_arch()
    )
}

/// The Server section of `version`.
pub fn server_section(v: &Version) -> String {
    let mut s = format!("Server: {}", v.platform.name);
    let detail = |c: &berth_api::system::Component, k: &str| -> String {
        c.details
            .get(k)
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .to_string()
    };
    if v.components.is_empty() {
        s.push_str(&format!(
            "\n Engine:\n  Version:\t{}\n  API version:\t{} (minimum version {})\n  Git commit:\t{}\n  Built:\t{}\n  OS/Arch:\t{}/{}\n  Experimental:\tfalse",
            v.version, v.api_version, v.min_api_version, v.git_commit, v.build_time, v.os, v.arch
        ));
        return s;
    }
    for c in &v.components {
        s.push_str(&format!("\n {}:\n  Version:\t{}", c.name, c.version));
        if c.name == "Engine" {
            s.push_str(&format!(
                "\n  API version:\t{} (minimum version {})\n  Git commit:\t{}\n  Built:\t{}\n  OS/Arch:\t{}/{}\n  Experimental:\t{}",
                v.api_version,
                v.min_api_version,
                detail(c, "GitCommit"),
                detail(c, "BuildTime"),
                v.os,
                v.arch,
                c.details
                    .get("Experimental")
                    .and_then(|x| x.as_str())
                    .unwrap_or("false"),
            ));
        } else if let Some(commit) = c.details.get("GitCommit").and_then(|x| x.as_str()) {
            s.push_str(&format!("\n  GitCommit:\t{commit}"));
        }
    }
    s
}

/// `version`: the client section always; the server's when reachable (exit 1 if not).
pub async fn version(client: &Client, args: &FormatArgs) -> Result<i32> {
    let server = client.version().await;
    let api = client
        .api_version()
        .await
        .unwrap_or_else(|_| berth_client::MAX_API_VERSION.to_string());
    if let Some(f) = &args.format {
        let mut server_value = server
            .as_ref()
            .ok()
            .map(|v| serde_json::to_value(v).unwrap_or(Value::Null));
        if let Some(v) = server_value.as_mut() {
            go_field_alias(v, "APIVersion", "ApiVersion");
            // docker's types.Version omits an empty BuildTime (`json:",omitempty"`).
            if let Some(m) = v.as_object_mut() {
                if m.get("BuildTime").is_some_and(|b| b == "") {
                    m.remove("BuildTime");
                    let hidden = format!("{}BuildTime", crate::template::HIDDEN);
                    m.insert(hidden, Value::String(String::new()));
                }
            }
        }
        let mut client_value = client_value(&api);
        go_field_alias(&mut client_value, "APIVersion", "ApiVersion");
        let data = json!({
            "Client": client_value,
            "Server": server_value,
        });
        render_format(f, &data)?;
        return Ok(if server.is_ok() { 0 } else { 1 });
    }
    let mut text = client_section(&api);
    let result = match &server {
        Ok(v) => {
            text.push_str("\n\n");
            text.push_str(&server_section(v));
            Ok(0)
        }
        Err(e) => Err(e.to_string()),
    };
    outln(&tabwrite(&text, 20, 1));
    match result {
        Ok(c) => Ok(c),
        Err(e) => {
            eprintln!("{e}");
            Ok(1)
        }
    }
}

/// The Server section of `info`.
pub fn info_text(i: &Info) -> String {
    let mut s = String::from("Server:\n");
    let mut line = |t: String| {
        s.push_str(&t);
        s.push('\n');
    };
    line(format!(" Containers: {}", i.containers));
    line(format!("  Running: {}", i.containers_running));
    line(format!("  Paused: {}", i.containers_paused));
    line(format!("  Stopped: {}", i.containers_stopped));
    line(format!(" Images: {}", i.images));
    line(format!(" Server Version: {}", i.server_version));
    line(format!(" Storage Driver: {}", i.driver));
    for [k, v] in &i.driver_status {
        line(format!("  {k}: {v}"));
    }
    line(format!(" Logging Driver: {}", i.logging_driver));
    line(format!(" Cgroup Driver: {}", i.cgroup_driver));
    line(format!(" Cgroup Version: {}", i.cgroup_version));
    if let Some(obj) = i.runtimes.as_object() {
        let mut names: Vec<&String> = obj.keys().collect();
        names.sort();
        line(format!(
            " Runtimes: {}",
            names
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    line(format!(" Default Runtime: {}", i.default_runtime));
    if !i.security_options.is_empty() {
        line(" Security Options:".into());
        for opt in &i.security_options {
            // `name=seccomp,profile=builtin` -> "seccomp" / "Profile: builtin".
            let mut name = opt.clone();
            let mut extra = Vec::new();
            for kv in opt.split(',') {
                match kv.split_once('=') {
                    Some(("name", n)) => name = n.to_string(),
                    Some((k, v)) => extra.push(format!("   {}: {v}", title(k))),
                    None => {}
                }
            }
            line(format!("  {name}"));
            for e in extra {
                line(e);
            }
        }
    }
    line(format!(" Kernel Version: {}", i.kernel_version));
    line(format!(" Operating System: {}", i.operating_system));
    line(format!(" OSType: {}", i.os_type));
    line(format!(" Architecture: {}", i.architecture));
    line(format!(" CPUs: {}", i.ncpu));
    line(format!(" Total Memory: {}", bytes_size(i.mem_total as f64)));
    line(format!(" Name: {}", i.name));
    line(format!(" ID: {}", i.id));
    line(format!(" Docker Root Dir: {}", i.docker_root_dir));
    line(" Debug Mode: false".into());
    if !i.labels.is_empty() {
        line(" Labels:".into());
        for l in &i.labels {
            line(format!("  {l}"));
        }
    }
    line(" Experimental: false".into());
    line(" Live Restore Enabled: false".into());
    s
}

fn title(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// `info`.
pub async fn info(client: &Client, args: &FormatArgs) -> Result<i32> {
    if let Some(f) = &args.format {
        let raw = client.info_raw().await?;
        render_format(f, &raw)?;
        return Ok(0);
    }
    outln(&format!(
        "Client:\n Version:    {}\n Context:    default\n Debug Mode: false\n",
        env!("CARGO_PKG_VERSION")
    ));
    let info = match client.info().await {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            return Ok(1);
        }
    };
    crate::container::print_raw(&info_text(&info));
    for w in info.warnings.iter().flatten() {
        eprintln!("{w}");
    }
    Ok(0)
}

/// `events` options.
#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template ('json' or a Go template)
    #[arg(long)]
    pub format: Option<String>,
    /// Show all events created since timestamp
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    pub until: Option<String>,
}

/// `events`: the daemon's events from `--since` (replayed), then live ones until `--until`
/// or until interrupted; one line each, docker's or the template's.
pub async fn events(client: &Client, args: &EventsArgs) -> Result<i32> {
    let template = match args.format.as_deref().filter(|f| !f.is_empty()) {
        None => None,
        Some(f) => match Template::parse(if f == "json" { "{{json .}}" } else { f }) {
            Ok(t) => Some(t),
            Err(e) => {
                // docker's status for a format it cannot parse.
                eprintln!("Error parsing format: template parsing error: {e}");
                return Ok(64);
            }
        },
    };
    let now = chrono::Utc::now();
    let ts = |v: &Option<String>| -> Result<Option<String>> {
        v.as_deref()
            .map(|s| crate::human::api_timestamp(s, now))
            .transpose()
            .map_err(|e| anyhow::anyhow!(e))
    };
    let options = EventsOptions {
        since: ts(&args.since)?,
        until: ts(&args.until)?,
        filters: crate::container::parse_filters(&args.filter)?,
    };
    let mut stream = client.events(&options).await?;
    while let Some(m) = stream.next().await {
        let m = m?;
        match &template {
            None => outln(&event_line(&m)),
            Some(t) => outln(&t.render(&event_data(&m))?),
        }
    }
    Ok(0)
}

/// docker's line: local time with nanoseconds, type, action, actor id, then the attributes
/// sorted by key: `2026-12-06T08:01:02.123456789Z container start 4dfd... (image=busybox,
/// name=web)`.
pub fn event_line(m: &Message) -> String {
    let mut s = String::new();
    let nanos = if m.time_nano != 0 {
        m.time_nano
    } else {
        m.time.saturating_mul(1_000_000_000)
    };
    if nanos != 0 {
        s.push_str(&local_time(nanos));
        s.push(' ');
    }
    s.push_str(&format!("{} {} {}", m.kind, m.action, m.actor.id));
    if !m.actor.attributes.is_empty() {
        let attrs: Vec<String> = m
            .actor
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        s.push_str(&format!(" ({})", attrs.join(", ")));
    }
    s
}

/// Go's `2006-01-02T15:04:05.000000000Z07:00` in the local zone (`Z` when it is UTC).
fn local_time(unix_nanos: i64) -> String {
    let t = chrono::Local.timestamp_nanos(unix_nanos);
    let zone = if t.offset().local_minus_utc() == 0 {
        "Z".to_string()
    } else {
        t.format("%:z").to_string()
    };
    format!("{}{zone}", t.format("%Y-%m-%dT%H:%M:%S%.9f"))
}

/// The template's view of an event: the JSON fields, and the Go names of those whose JSON
/// keys differ (`.Status`, `.ID`, `.From`, `.Scope`, `.Time`, `.TimeNano`), always there
/// as in Go's struct, empty or zero when the daemon left them out.
fn event_data(m: &Message) -> Value {
    let mut v = serde_json::to_value(m).unwrap_or(Value::Null);
    let aliases: [(&str, Value); 6] = [
        ("Status", json!(m.status)),
        ("ID", json!(m.id)),
        ("From", json!(m.from)),
        ("Scope", json!(m.scope)),
        ("Time", json!(m.time)),
        ("TimeNano", json!(m.time_nano)),
    ];
    if let Value::Object(map) = &mut v {
        for (go_name, value) in aliases {
            map.insert(format!("{}{go_name}", crate::template::ALIAS), value);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start_event() -> Message {
        let mut attributes = std::collections::BTreeMap::new();
        attributes.insert("name".to_string(), "web".to_string());
        attributes.insert("image".to_string(), "busybox".to_string());
        attributes.insert("com.x".to_string(), "1".to_string());
        Message::new(
            "container",
            "start",
            berth_api::events::Actor {
                id: "4dfd".into(),
                attributes,
            },
            1_795_345_379_003_371_510,
        )
    }

    #[test]
    fn event_lines_are_dockers() {
        let line = event_line(&start_event());
        let (time, rest) = line.split_once(' ').unwrap();
        assert_eq!(
            rest,
            "container start 4dfd (com.x=1, image=busybox, name=web)"
        );
        // Local time, nanoseconds always nine digits.
        assert_eq!(time, local_time(1_795_345_379_003_371_510));
        assert!(time.contains(".003371510"), "{time}");
        let local = chrono::Local.timestamp_nanos(5);
        if local.offset().local_minus_utc() == 0 {
            assert_eq!(local_time(5), "1970-01-01T00:00:00.000000005Z");
        } else {
            assert!(!local_time(5).ends_with('Z'));
        }
    }

    #[test]
    fn event_templates_see_go_field_names_and_json_keeps_the_wire_form() {
        let m = start_event();
        let data = event_data(&m);
        let t = |f: &str| Template::parse(f).unwrap().render(&data).unwrap();
        assert_eq!(
            t("{{.Type}} {{.Action}} {{.Actor.ID}} {{.Status}} {{.ID}} {{.From}} {{.Scope}}"),
            "container start 4dfd start 4dfd busybox local"
        );
        assert_eq!(
            t("{{.TimeNano}} {{.Time}}"),
            "1795345379003371510 1795345379"
        );
        assert_eq!(t(r#"{{index .Actor.Attributes "name"}}"#), "web");
        assert_eq!(t("{{json .}}"), serde_json::to_string(&m).unwrap());
    }

    #[test]
    fn version_sections_align_like_docker() {
        let v = Version {
            platform: berth_api::system::Platform {
                name: "berth".into(),
            },
            version: "0.1.0".into(),
            api_version: "1.44".into(),
            min_api_version: "1.24".into(),
            os: "linux".into(),
            arch: "amd64".into(),
            ..Default::default()
        };
        let text = tabwrite(&server_section(&v), 20, 1);
        assert!(text.starts_with("Server: berth\n Engine:\n  Version:          0.1.0\n"));
        assert!(text.contains("\n  API version:      1.44 (minimum version 1.24)\n"));
        let client = tabwrite(&client_section("1.44"), 20, 1);
        assert!(client.contains("\n Version:           "));
        assert!(client.contains("\n API version:       1.44\n"));
        let old = tabwrite(&client_section("1.41"), 20, 1);
        assert!(old.contains("\n API version:       1.41 (downgraded from 1.44)\n"));
    }

    #[test]
    fn info_lists_counts_and_memory() {
        let i = Info {
            containers: 3,
            containers_running: 1,
            containers_stopped: 2,
            mem_total: 8_053_063_680,
            security_options: vec!["name=seccomp,profile=builtin".into()],
            ..Default::default()
        };
        let t = info_text(&i);
        assert!(t.contains(" Containers: 3\n  Running: 1\n  Paused: 0\n  Stopped: 2\n"));
        assert!(t.contains(" Total Memory: 7.5GiB\n"));
        assert!(t.contains(" Security Options:\n  seccomp\n   Profile: builtin\n"));
    }
}
