//! `POST /build`: the classic builder's protocol, as the docker CLI speaks it.

use std::collections::BTreeMap;

use berth_api::build_secrets::{self, Secrets};
use http::Method;
use tokio::io::AsyncReadExt;

use crate::image::JsonMessage;
use crate::stream::{bytes_of, json_lines, JsonStream};
use crate::{check_status, reader_body, Client, ClientError, Query};

/// What `docker build` sends in the query of `POST /build` (moby's
/// `imageBuildOptionsToQuery`); each field is sent only when it differs from the daemon's
/// default.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `dockerfile`: the Dockerfile's path inside the context.
    pub dockerfile: String,
    /// `t`, repeated.
    pub tags: Vec<String>,
    /// `buildargs`, a JSON object.
    pub build_args: BTreeMap<String, String>,
    /// `labels`, a JSON object.
    pub labels: BTreeMap<String, String>,
    /// `q=1`.
    pub quiet: bool,
    /// `nocache=1`.
    pub no_cache: bool,
    /// `pull=1`.
    pub pull: bool,
    /// `rm=0` when false: the daemon removes intermediate containers by default.
    pub remove: bool,
    /// `forcerm=1`.
    pub force_remove: bool,
    /// `networkmode`, unless `default`.
    pub network_mode: String,
    /// `target`.
    pub target: Option<String>,
    /// `platform` (`os/arch[/variant]`).
    pub platform: Option<String>,
    /// `berthnocachefilter` (berthd's own; BuildKit's `--no-cache-filter`): a JSON list of
    /// the stages whose steps all run.
    pub no_cache_stages: Vec<String>,
    /// `berthcontextkey` (berthd's own): the key berthd keeps the context under.
    pub context_key: Option<String>,
    /// `berthcontextreuse=1` (berthd's own): no context is sent; berthd builds the one it
    /// kept under `context_key`, or answers 412.
    pub context_reuse: bool,
    /// `berthsecrets`: berth's extension, the secrets sent in a frame in front of the
    /// context ([`berth_api::build_secrets`]); berthd only.
    pub secrets: Secrets,
    /// The `X-Registry-Config` value (the credentials of every registry the client knows,
    /// for pulls of base images); `e30=` (`{}`) when `None`.
    pub registry_config: Option<String>,
}

impl BuildOptions {
    /// The query string, key for key as the docker CLI's.
    pub fn query(&self) -> Query {
        let mut q = Query::new();
        for t in &self.tags {
            q.push("t", t.clone());
        }
        q.flag("q", self.quiet)
            .flag("nocache", self.no_cache)
            .flag("forcerm", self.force_remove)
            .flag("pull", self.pull);
        if !self.remove {
            q.push("rm", "0");
        }
        if !self.network_mode.is_empty() && self.network_mode != "default" {
            q.push("networkmode", self.network_mode.clone());
        }
        if !self.dockerfile.is_empty() {
            q.push("dockerfile", self.dockerfile.clone());
        }
        q.opt("target", self.target.as_deref().filter(|t| !t.is_empty()));
        if !self.build_args.is_empty() {
            q.push("buildargs", go_json(&self.build_args));
        }
        if !self.labels.is_empty() {
            q.push("labels", go_json(&self.labels));
        }
        q.opt(
            "platform",
            self.platform.as_deref().filter(|p| !p.is_empty()),
        );
        if !self.no_cache_stages.is_empty() {
            q.push(
                "berthnocachefilter",
                serde_json::to_string(&self.no_cache_stages).unwrap_or_default(),
            );
        }
        q.opt("berthcontextkey", self.context_key.as_deref());
        q.flag("berthcontextreuse", self.context_reuse);
        if !self.secrets.is_empty() {
            q.push(
                build_secrets::QUERY_KEY,
                self.secrets.encode().len().to_string(),
            );
        }
        q.push("version", "1");
        q
    }
}

/// A string map as Go's `json.Marshal` writes it: keys sorted, and `<`, `>`, `&`, U+2028 and
/// U+2029 escaped (they can only occur inside strings here).
fn go_json(map: &BTreeMap<String, String>) -> String {
    let plain = serde_json::to_string(map).expect("a string map serializes");
    let mut out = String::with_capacity(plain.len());
    for c in plain.chars() {
        match c {
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// What `POST /build/prune` answered.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct BuildPruneReport {
    #[serde(rename = "CachesDeleted", default)]
    pub caches_deleted: Option<Vec<String>>,
    #[serde(rename = "SpaceReclaimed", default)]
    pub space_reclaimed: u64,
}

impl Client {
    /// `POST /build/prune` (`docker builder prune`): `all`, `filters`, `keep-storage`.
    pub async fn build_prune(
        &self,
        all: bool,
        filters: &berth_api::filters::Filters,
        keep_storage: Option<i64>,
    ) -> Result<BuildPruneReport, ClientError> {
        let mut q = Query::new();
        q.flag("all", all);
        q.filters(filters);
        if let Some(k) = keep_storage.filter(|k| *k > 0) {
            q.push("keep-storage", k.to_string());
        }
        self.call_json(Method::POST, "/build/prune", &q, None::<&()>)
            .await
    }

    /// `POST /build` with the context tar (maybe compressed) streamed from `context`, sent
    /// chunked with the docker CLI's headers (`X-Registry-Config`: the credentials in
    /// `registry_config`, else `e30=`).
    /// The answer is the build's JSON lines. Secrets go in their frame in front of the
    /// context.
    pub async fn image_build(
        &self,
        context: impl tokio::io::AsyncRead + Send + 'static,
        options: &BuildOptions,
    ) -> Result<JsonStream<JsonMessage>, ClientError> {
        let uri = self.versioned("/build", &options.query()).await?;
        let frame = if options.secrets.is_empty() {
            Vec::new()
        } else {
            options.secrets.encode()
        };
        let body = std::io::Cursor::new(frame).chain(context);
        let mut req = self.build(
            Method::POST,
            &uri,
            reader_body(body),
            Some("application/x-tar"),
        );
        let registry_config = options
            .registry_config
            .as_deref()
            .and_then(|v| http::HeaderValue::from_str(v).ok())
            .unwrap_or_else(|| http::HeaderValue::from_static("e30="));
        req.headers_mut()
            .insert("X-Registry-Config", registry_config);
        let resp = check_status(self.send_raw(req).await?, &uri).await?;
        Ok(json_lines(bytes_of(resp.into_body())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_the_docker_clis() {
        let mut o = BuildOptions {
            dockerfile: "Dockerfile".into(),
            tags: vec!["a:1".into(), "b".into()],
            remove: true,
            network_mode: "default".into(),
            ..Default::default()
        };
        o.build_args.insert("FOO".into(), "bar".into());
        assert_eq!(
            o.query().to_suffix(),
            "?buildargs=%7B%22FOO%22%3A%22bar%22%7D&dockerfile=Dockerfile&t=a%3A1&t=b&version=1"
        );
        let mut with_secret = o.clone();
        with_secret.secrets.insert("tok", b"abc".to_vec()).unwrap();
        let frame = build_secrets::MAGIC.len() + 4 + 3 + 4 + 3;
        assert!(with_secret
            .query()
            .to_suffix()
            .contains(&format!("berthsecrets={frame}&")));
        o.remove = false;
        o.quiet = true;
        o.network_mode = "none".into();
        o.labels.insert("x".into(), "<&>".into());
        let q = o.query().to_suffix();
        assert!(q.contains("&rm=0&"), "{q}");
        assert!(q.contains("&q=1&"), "{q}");
        assert!(q.contains("networkmode=none"), "{q}");
        assert!(
            q.contains("labels=%7B%22x%22%3A%22%5Cu003c%5Cu0026%5Cu003e%22%7D"),
            "{q}"
        );
    }
}
