//! `docker import --change` / `docker commit --change`: the Dockerfile instructions Docker
//! accepts there (CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER,
//! VOLUME, WORKDIR), JSON or shell form, applied to an image's container config.

use std::collections::BTreeMap;

use crate::config::{ContainerConfig, Healthcheck};
use crate::error::ImageError;

fn invalid(msg: String) -> ImageError {
    ImageError::InvalidArgument(msg)
}

/// Apply one change line.
pub(crate) fn apply_change(config: &mut ContainerConfig, line: &str) -> Result<(), ImageError> {
    let line = line.trim();
    let (instruction, rest) = match line.split_once(char::is_whitespace) {
        Some((i, r)) => (i, r.trim()),
        None => (line, ""),
    };
    let instruction = instruction.to_ascii_uppercase();
    match instruction.as_str() {
        "CMD" => config.cmd = Some(command(rest)),
        "ENTRYPOINT" => config.entrypoint = Some(command(rest)),
        "ENV" => {
            let env = config.env.get_or_insert_with(Vec::new);
            for (k, v) in key_values(rest, "ENV")? {
                env.retain(|e| e.split_once('=').map_or(e.as_str(), |(ek, _)| ek) != k);
                env.push(format!("{k}={v}"));
            }
        }
        "LABEL" => {
            let labels = config.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in key_values(rest, "LABEL")? {
                labels.insert(k, v);
            }
        }
        "EXPOSE" => {
            let ports = config.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in words(rest) {
                let p = if p.contains('/') {
                    p
                } else {
                    format!("{p}/tcp")
                };
                ports.insert(p, serde_json::json!({}));
            }
        }
        "VOLUME" => {
            let volumes = config.volumes.get_or_insert_with(BTreeMap::new);
            let list = json_array(rest).unwrap_or_else(|| words(rest));
            for v in list {
                volumes.insert(v, serde_json::json!({}));
            }
        }
        "USER" => config.user = Some(rest.to_string()),
        "WORKDIR" => config.working_dir = Some(rest.to_string()),
        "STOPSIGNAL" => config.stop_signal = Some(rest.to_string()),
        "ONBUILD" => config
            .on_build
            .get_or_insert_with(Vec::new)
            .push(rest.to_string()),
        "HEALTHCHECK" => config.healthcheck = Some(healthcheck(rest)?),
        _ => {
            return Err(invalid(format!(
                "{instruction} is not a valid change command"
            )))
        }
    }
    if rest.is_empty() && instruction != "CMD" && instruction != "ENTRYPOINT" {
        return Err(invalid(format!(
            "{instruction} requires at least one argument"
        )));
    }
    Ok(())
}

/// JSON form as is; shell form wrapped in `/bin/sh -c` like the builder does.
fn command(rest: &str) -> Vec<String> {
    json_array(rest).unwrap_or_else(|| {
        if rest.is_empty() {
            Vec::new()
        } else {
            vec!["/bin/sh".into(), "-c".into(), rest.into()]
        }
    })
}

fn json_array(rest: &str) -> Option<Vec<String>> {
    if rest.starts_with('[') {
        serde_json::from_str(rest).ok()
    } else {
        None
    }
}

fn healthcheck(rest: &str) -> Result<Healthcheck, ImageError> {
    let (kind, cmd) = match rest.split_once(char::is_whitespace) {
        Some((k, c)) => (k.to_ascii_uppercase(), c.trim()),
        None => (rest.to_ascii_uppercase(), ""),
    };
    let test = match kind.as_str() {
        "NONE" => vec!["NONE".to_string()],
        "CMD" => match json_array(cmd) {
            Some(args) => std::iter::once("CMD".to_string()).chain(args).collect(),
            None => vec!["CMD-SHELL".to_string(), cmd.to_string()],
        },
        _ => {
            return Err(invalid(
                "HEALTHCHECK change must be NONE or CMD (options are not supported here)".into(),
            ))
        }
    };
    Ok(Healthcheck {
        test: Some(test),
        ..Healthcheck::default()
    })
}

/// Whitespace-separated words; quotes group and are removed, backslash escapes.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (q, '\\') if q != Some('\'') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// `k=v k2="v 2"` or the legacy single `k v w` form.
fn key_values(rest: &str, instruction: &str) -> Result<Vec<(String, String)>, ImageError> {
    let list = words(rest);
    let Some(first) = list.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .map(|(k, v)| (k.to_string(), words(v.trim()).join(" ")))
            .ok_or_else(|| invalid(format!("{instruction} {rest}: missing value")))?;
        return Ok(vec![(k, v)]);
    }
    list.into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(invalid(format!("{instruction} {w}: expected key=value"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(lines: &[&str]) -> ContainerConfig {
        let mut c = ContainerConfig::default();
        for l in lines {
            apply_change(&mut c, l).unwrap();
        }
        c
    }

    #[test]
    fn cmd_and_entrypoint_accept_json_and_shell_form() {
        let c = apply(&[r#"CMD ["sh","-c","echo hi"]"#, "ENTRYPOINT /bin/echo x"]);
        assert_eq!(c.cmd.unwrap(), ["sh", "-c", "echo hi"]);
        assert_eq!(c.entrypoint.unwrap(), ["/bin/sh", "-c", "/bin/echo x"]);
    }

    #[test]
    fn env_label_expose_volume_user_workdir() {
        let c = apply(&[
            r#"ENV A=1 B="two words""#,
            "ENV C 3 4",
            "env A=one",
            r#"LABEL com.x="y z" k=v"#,
            "EXPOSE 80 53/udp",
            r#"VOLUME ["/data"]"#,
            "VOLUME /a /b",
            "USER nobody",
            "WORKDIR /srv",
            "STOPSIGNAL SIGINT",
            "ONBUILD RUN true",
            "HEALTHCHECK CMD true",
        ]);
        assert_eq!(c.env.unwrap(), ["B=two words", "C=3 4", "A=one"]);
        let labels = c.labels.unwrap();
        assert_eq!(labels["com.x"], "y z");
        assert_eq!(labels["k"], "v");
        let ports: Vec<_> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, ["53/udp", "80/tcp"]);
        let vols: Vec<_> = c.volumes.unwrap().into_keys().collect();
        assert_eq!(vols, ["/a", "/b", "/data"]);
        assert_eq!(c.user.as_deref(), Some("nobody"));
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(c.on_build.unwrap(), ["RUN true"]);
        assert_eq!(c.healthcheck.unwrap().test.unwrap(), ["CMD-SHELL", "true"]);
    }

    #[test]
    fn unknown_instruction_is_rejected() {
        let mut c = ContainerConfig::default();
        let e = apply_change(&mut c, "RUN rm -rf /").unwrap_err();
        assert_eq!(e.to_string(), "RUN is not a valid change command");
        assert!(apply_change(&mut c, "USER").is_err());
    }
}
