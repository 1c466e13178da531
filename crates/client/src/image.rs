//! Image endpoints.

use berth_api::filters::Filters;
use berth_api::image::{DeleteItem, HistoryItem, Inspect, PruneResponse, Summary};
use http::Method;
use serde::{Deserialize, Serialize};

use crate::stream::{bytes_of, json_lines, ByteStream, JsonStream};
use crate::{reader_body, segment, Client, ClientError, Query};

/// One line of a JSON progress stream (`load`, `import`, pull, push, build). Lowercase keys,
/// as Docker sends them. Failures after the stream began arrive in `error`/`errorDetail`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JsonMessage {
    /// Free text (`Loaded image: x:1\n`), printed as is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// A status line (`Pulling fs layer`, or the new image id for import).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The layer or object the status is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A pre-rendered progress bar.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// `{"current":..,"total":..}`.
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<serde_json::Value>,
    /// The failure text (legacy field).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The failure with its code.
    #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<JsonMessageError>,
    /// Auxiliary data (`{"ID":"sha256:.."}` from build).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
}

/// `errorDetail` of a [`JsonMessage`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JsonMessageError {
    /// An exit status, when the failure has one (build `RUN` steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// The message.
    pub message: String,
}

impl JsonMessage {
    /// The in-band error of this line, if it carries one.
    pub fn failure(&self) -> Option<String> {
        self.error_detail
            .as_ref()
            .map(|d| d.message.clone())
            .or_else(|| self.error.clone())
    }
}

/// `POST /images/create?fromSrc=` (import) parameters.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Repository to tag the new image with (may be empty).
    pub repo: Option<String>,
    /// Tag for `repo`.
    pub tag: Option<String>,
    /// Dockerfile instructions applied to the config (`-c`), one per `changes=`.
    pub changes: Vec<String>,
    /// Commit message (`-m`).
    pub message: Option<String>,
}

impl Client {
    /// `GET /images/json`.
    pub async fn image_list(
        &self,
        all: bool,
        filters: &Filters,
    ) -> Result<Vec<Summary>, ClientError> {
        let mut q = Query::new();
        q.flag("all", all).filters(filters);
        self.call_json(Method::GET, "/images/json", &q, None::<&()>)
            .await
    }

    /// `GET /images/{name}/json`, typed.
    pub async fn image_inspect(&self, name: &str) -> Result<Inspect, ClientError> {
        let path = format!("/images/{}/json", segment(name));
        self.call_json(Method::GET, &path, &Query::new(), None::<&()>)
            .await
    }

    /// `GET /images/{name}/json` as raw JSON.
    pub async fn image_inspect_raw(&self, name: &str) -> Result<serde_json::Value, ClientError> {
        let path = format!("/images/{}/json", segment(name));
        self.call_json(Method::GET, &path, &Query::new(), None::<&()>)
            .await
    }

    /// `POST /images/{name}/tag?repo=&tag=`.
    pub async fn image_tag(&self, name: &str, repo: &str, tag: &str) -> Result<(), ClientError> {
        let mut q = Query::new();
        q.push("repo", repo).push("tag", tag);
        let path = format!("/images/{}/tag", segment(name));
        self.call_empty(Method::POST, &path, &q).await.map(drop)
    }

    /// `DELETE /images/{name}[?force=1][&noprune=1]`.
    pub async fn image_remove(
        &self,
        name: &str,
        force: bool,
        noprune: bool,
    ) -> Result<Vec<DeleteItem>, ClientError> {
        let mut q = Query::new();
        q.flag("force", force).flag("noprune", noprune);
        let path = format!("/images/{}", segment(name));
        self.call_json(Method::DELETE, &path, &q, None::<&()>).await
    }

    /// `GET /images/{name}/history`.
    pub async fn image_history(&self, name: &str) -> Result<Vec<HistoryItem>, ClientError> {
        let path = format!("/images/{}/history", segment(name));
        self.call_json(Method::GET, &path, &Query::new(), None::<&()>)
            .await
    }

    /// `POST /images/prune[?filters=]` (`dangling=false` in the filters means `-a`).
    pub async fn image_prune(&self, filters: &Filters) -> Result<PruneResponse, ClientError> {
        let mut q = Query::new();
        q.filters(filters);
        self.call_json(Method::POST, "/images/prune", &q, None::<&()>)
            .await
    }

    /// `POST /images/load[?quiet=1]` with a tar body streamed from `tar` (a file, stdin).
    pub async fn image_load(
        &self,
        tar: impl tokio::io::AsyncRead + Send + 'static,
        quiet: bool,
    ) -> Result<JsonStream<JsonMessage>, ClientError> {
        let mut q = Query::new();
        q.flag("quiet", quiet);
        let resp = self
            .call(
                Method::POST,
                "/images/load",
                &q,
                reader_body(tar),
                Some("application/x-tar"),
            )
            .await?;
        Ok(json_lines(bytes_of(resp.into_body())))
    }

    /// `GET /images/get?names=..`: a tar archive of the images, as a byte stream.
    pub async fn image_save(&self, names: &[String]) -> Result<ByteStream, ClientError> {
        let mut q = Query::new();
        for n in names {
            q.push("names", n.clone());
        }
        let resp = self
            .call(Method::GET, "/images/get", &q, crate::empty(), None)
            .await?;
        Ok(bytes_of(resp.into_body()))
    }

    /// `POST /images/create?fromImage=..&tag=..`: a pull, with the credentials in
    /// `auth` (the `X-Registry-Auth` value) when there are any.
    pub async fn image_pull(
        &self,
        image: &str,
        tag: Option<&str>,
        platform: Option<&str>,
        auth: Option<&str>,
    ) -> Result<JsonStream<JsonMessage>, ClientError> {
        let mut q = Query::new();
        q.push("fromImage", image.to_string())
            .opt("tag", tag)
            .opt("platform", platform);
        let headers: Vec<(&'static str, String)> = auth
            .map(|a| vec![("X-Registry-Auth", a.to_string())])
            .unwrap_or_default();
        let resp = self
            .call_with(
                Method::POST,
                "/images/create",
                &q,
                crate::empty(),
                None,
                &headers,
            )
            .await?;
        Ok(json_lines(bytes_of(resp.into_body())))
    }

    /// `POST /images/{name}/push?tag=..`, with the credentials in `auth` (the
    /// `X-Registry-Auth` value); the docker CLI always sends the header.
    pub async fn image_push(
        &self,
        name: &str,
        tag: Option<&str>,
        auth: Option<&str>,
    ) -> Result<JsonStream<JsonMessage>, ClientError> {
        let mut q = Query::new();
        q.opt("tag", tag);
        let headers = vec![("X-Registry-Auth", auth.unwrap_or("e30=").to_string())];
        let resp = self
            .call_with(
                Method::POST,
                &format!("/images/{}/push", segment(name)),
                &q,
                crate::empty(),
                None,
                &headers,
            )
            .await?;
        Ok(json_lines(bytes_of(resp.into_body())))
    }

    /// `POST /auth`: the daemon checks `auth` (JSON: username, password, serveraddress)
    /// against the registry. Returns its status text.
    /// The identity token (an OAuth refresh token) the registry gave, if any: what the
    /// client keeps instead of the password.
    pub async fn registry_login(
        &self,
        auth: &berth_api::auth::AuthConfig,
    ) -> Result<Option<String>, ClientError> {
        let v: serde_json::Value = self
            .call_json(Method::POST, "/auth", &Query::new(), Some(auth))
            .await?;
        Ok(v["IdentityToken"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(str::to_string))
    }

    /// `POST /images/create?fromSrc=-` with a root filesystem tar streamed from `source`.
    pub async fn image_import(
        &self,
        source: impl tokio::io::AsyncRead + Send + 'static,
        options: &ImportOptions,
    ) -> Result<JsonStream<JsonMessage>, ClientError> {
        let mut q = Query::new();
        q.push("fromSrc", "-")
            .opt("message", options.message.as_deref())
            .opt("repo", options.repo.as_deref())
            .opt("tag", options.tag.as_deref());
        for c in &options.changes {
            q.push("changes", c.clone());
        }
        let resp = self
            .call(
                Method::POST,
                "/images/create",
                &q,
                reader_body(source),
                Some("application/x-tar"),
            )
            .await?;
        Ok(json_lines(bytes_of(resp.into_body())))
    }
}
