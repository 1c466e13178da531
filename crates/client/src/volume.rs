//! `/volumes`.
//!
//! The bodies are the CLI's JSON (built to match the docker CLI's); these calls only carry
//! them.

use berth_api::filters::Filters;
use http::Method;
use serde_json::Value;

use crate::stream::{bytes_of, ByteStream};
use crate::{reader_body, segment, Client, ClientError, Query};

impl Client {
    /// `GET /volumes`: the daemon's `{"Volumes": [..], "Warnings": null}` (a list when a
    /// driver failed, in Docker).
    pub async fn volume_list(&self, filters: &Filters) -> Result<Value, ClientError> {
        let mut q = Query::new();
        q.filters(filters);
        self.call_json(Method::GET, "/volumes", &q, None::<&()>)
            .await
    }

    /// `GET /volumes/{name}`, as the daemon's JSON.
    pub async fn volume_inspect_raw(&self, name: &str) -> Result<Value, ClientError> {
        let path = format!("/volumes/{}", segment(name));
        self.call_json(Method::GET, &path, &Query::new(), None::<&()>)
            .await
    }

    /// `POST /volumes/create` with docker's `VolumeCreateOptions`; the daemon's volume.
    pub async fn volume_create(&self, request: &Value) -> Result<Value, ClientError> {
        self.call_json(
            Method::POST,
            "/volumes/create",
            &Query::new(),
            Some(request),
        )
        .await
    }

    /// `DELETE /volumes/{name}[?force=1]`.
    pub async fn volume_remove(&self, name: &str, force: bool) -> Result<(), ClientError> {
        let path = format!("/volumes/{}", segment(name));
        let mut q = Query::new();
        if force {
            q.push("force", "1");
        }
        self.call_empty(Method::DELETE, &path, &q).await.map(drop)
    }

    /// `POST /volumes/prune[?filters=]`; the daemon's `{"VolumesDeleted", "SpaceReclaimed"}`.
    pub async fn volume_prune(&self, filters: &Filters) -> Result<Value, ClientError> {
        let mut q = Query::new();
        q.filters(filters);
        self.call_json(Method::POST, "/volumes/prune", &q, None::<&()>)
            .await
    }

    /// `GET /volumes/{name}/export[?compression=..][&pause=1]` (berth's own): the volume's
    /// content as a tar byte stream, compressed as asked (`gzip`, `zstd`).
    pub async fn volume_export(
        &self,
        name: &str,
        compression: Option<&str>,
        pause: bool,
    ) -> Result<ByteStream, ClientError> {
        let path = format!("/volumes/{}/export", segment(name));
        let mut q = Query::new();
        q.opt("compression", compression).flag("pause", pause);
        let resp = self
            .call(Method::GET, &path, &q, crate::empty(), None)
            .await?;
        Ok(bytes_of(resp.into_body()))
    }

    /// `POST /volumes/{name}/import[?force=1]` (berth's own) with a tar (plain, gzip or
    /// zstd) streamed from `tar`.
    pub async fn volume_import(
        &self,
        name: &str,
        tar: impl tokio::io::AsyncRead + Send + 'static,
        force: bool,
    ) -> Result<(), ClientError> {
        let path = format!("/volumes/{}/import", segment(name));
        let mut q = Query::new();
        q.flag("force", force);
        self.call(
            Method::POST,
            &path,
            &q,
            reader_body(tar),
            Some("application/x-tar"),
        )
        .await
        .map(drop)
    }
}
