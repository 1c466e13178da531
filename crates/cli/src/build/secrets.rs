//! `berth build --secret`: docker buildx's syntax (`id=...,src=<file>`, `id=...,env=<VAR>`,
//! `type=file|env`), read on the client and sent to berthd in the frame berth adds to
//! `POST /build` ([`berth_api::build_secrets`]).

use std::io::Read;
use std::path::PathBuf;

use berth_api::build_secrets::{Secrets, MAX_SECRET_SIZE};

/// Where a secret's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `src=` / `source=`: a file.
    File(PathBuf),
    /// `env=`: an environment variable.
    Env(String),
}

/// One `--secret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    pub id: String,
    pub source: Source,
}

/// Reads one `--secret` value as buildx does: without `src` or `env`, the environment
/// variable named as the id when it is set, else the file of that name.
pub fn parse(spec: &str, env_has: impl Fn(&str) -> bool) -> Result<SecretSpec, String> {
    let (mut kind, mut id, mut src, mut env) = (None, None, None, None);
    for field in spec.split(',') {
        let Some((key, value)) = field.split_once('=') else {
            return Err(format!("invalid field '{field}' must be a key=value pair"));
        };
        match key.to_ascii_lowercase().as_str() {
            "type" => {
                if value != "file" && value != "env" {
                    return Err(format!("unsupported secret type {value:?}"));
                }
                kind = Some(value.to_string());
            }
            "id" => id = Some(value.to_string()),
            "source" | "src" => src = Some(value.to_string()),
            "env" => env = Some(value.to_string()),
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    let id = id.filter(|i| !i.is_empty()).ok_or("secret ID missing")?;
    let source = match (kind.as_deref(), src, env) {
        (_, Some(_), Some(_)) => return Err(format!("secret {id}: both src and env are set")),
        (Some("file"), None, Some(_)) => {
            return Err(format!("secret {id}: env= with type=file"));
        }
        (Some("env"), Some(var), None) | (_, None, Some(var)) => Source::Env(var),
        (_, Some(path), None) => Source::File(PathBuf::from(path)),
        (Some("env"), None, None) => Source::Env(id.clone()),
        (Some("file"), None, None) => Source::File(PathBuf::from(&id)),
        (_, None, None) if env_has(&id) => Source::Env(id.clone()),
        (_, None, None) => Source::File(PathBuf::from(&id)),
    };
    Ok(SecretSpec { id, source })
}

/// Reads every `--secret`'s content. A variable that is not set leaves its secret out (a
/// RUN that requires it fails, as BuildKit's); a file that cannot be read fails here.
pub fn load(specs: &[String]) -> Result<Secrets, String> {
    let mut secrets = Secrets::default();
    for spec in specs {
        let s = parse(spec, |k| std::env::var_os(k).is_some())?;
        let content = match &s.source {
            Source::Env(var) => match std::env::var_os(var) {
                Some(v) => std::os::unix::ffi::OsStringExt::into_vec(v),
                None => continue,
            },
            Source::File(path) => {
                let fail = |e: std::io::Error| {
                    format!("failed to read secret {}: {}: {e}", s.id, path.display())
                };
                let mut f = std::fs::File::open(path).map_err(fail)?;
                let mut buf = Vec::new();
                (&mut f)
                    .take(MAX_SECRET_SIZE as u64 + 1)
                    .read_to_end(&mut buf)
                    .map_err(fail)?;
                buf
            }
        };
        secrets.insert(&s.id, content).map_err(|e| e.0)?;
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_specs_read_as_buildx_reads_them() {
        let none = |_: &str| false;
        let p = |s: &str| parse(s, none).unwrap();
        assert_eq!(
            p("id=tok,src=/a/b"),
            SecretSpec {
                id: "tok".into(),
                source: Source::File("/a/b".into())
            }
        );
        assert_eq!(p("id=tok,source=f").source, Source::File("f".into()));
        assert_eq!(p("id=tok,env=TOKEN").source, Source::Env("TOKEN".into()));
        assert_eq!(p("type=env,id=tok,src=T").source, Source::Env("T".into()));
        assert_eq!(p("type=env,id=TOK").source, Source::Env("TOK".into()));
        assert_eq!(p("id=tok").source, Source::File("tok".into()));
        let set = |k: &str| k == "TOK";
        assert_eq!(
            parse("id=TOK", set).unwrap().source,
            Source::Env("TOK".into())
        );
        let e = |s: &str| parse(s, none).unwrap_err();
        assert_eq!(e("src=x"), "secret ID missing");
        assert_eq!(
            e("id=a,src"),
            "invalid field 'src' must be a key=value pair"
        );
        assert_eq!(
            e("id=a,colour=red"),
            "unexpected key 'colour' in 'colour=red'"
        );
        assert_eq!(e("type=ssh,id=a"), "unsupported secret type \"ssh\"");
        assert_eq!(e("id=a,src=f,env=V"), "secret a: both src and env are set");
    }

    #[test]
    fn secrets_load_from_files_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, b"from-file").unwrap();
        let spec = format!("id=f,src={}", f.display());
        let s = load(&[spec, "id=unset,env=BERTH_TEST_SURELY_UNSET_VAR".into()]).unwrap();
        assert_eq!(s.get("f"), Some(&b"from-file"[..]));
        assert_eq!(s.get("unset"), None);
        let missing = format!("id=m,src={}", dir.path().join("nope").display());
        assert!(load(&[missing])
            .unwrap_err()
            .starts_with("failed to read secret m: "));
        std::fs::write(&f, vec![b'x'; MAX_SECRET_SIZE + 1]).unwrap();
        let spec = format!("id=big,src={}", f.display());
        assert!(load(&[spec]).unwrap_err().contains("more than"));
    }
}
