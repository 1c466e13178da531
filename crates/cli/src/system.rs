//! `version` and `info`, laid out like docker's.

use anyhow::Result;
use berth_api::system::{Info, Version};
use berth_client::Client;
use clap::Args;
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

#[cfg(test)]
mod tests {
    use super::*;

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
