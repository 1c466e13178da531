//! `docker exec`'s calls.

use berth_api::exec::{ExecCreateRequest, ExecInspect, ExecStartRequest};
use http::Method;

use crate::{full, Client, ClientError, Hijacked, Query};

#[derive(serde::Deserialize)]
struct IdResponse {
    #[serde(rename = "Id")]
    id: String,
}

fn exec_path(id: &str, verb: &str) -> String {
    format!("/exec/{}/{verb}", crate::segment(id))
}

impl Client {
    /// `POST /containers/{id}/exec`: the new exec's id.
    pub async fn exec_create(
        &self,
        container: &str,
        request: &ExecCreateRequest,
    ) -> Result<String, ClientError> {
        let path = format!("/containers/{}/exec", crate::segment(container));
        let r: IdResponse = self
            .call_json(Method::POST, &path, &Query::new(), Some(request))
            .await?;
        Ok(r.id)
    }

    /// `POST /exec/{id}/start` with `Detach`: returns once the process runs.
    pub async fn exec_start_detached(
        &self,
        id: &str,
        request: &ExecStartRequest,
    ) -> Result<(), ClientError> {
        let body = full(serde_json::to_vec(request)?);
        self.call(
            Method::POST,
            &exec_path(id, "start"),
            &Query::new(),
            body,
            Some("application/json"),
        )
        .await
        .map(drop)
    }

    /// `POST /exec/{id}/start`, hijacked: the process's stdio.
    pub async fn exec_start_attached(
        &self,
        id: &str,
        request: &ExecStartRequest,
    ) -> Result<Hijacked, ClientError> {
        let uri = self
            .versioned(&exec_path(id, "start"), &Query::new())
            .await?;
        let body = full(serde_json::to_vec(request)?);
        let req = self.build(Method::POST, &uri, body, Some("application/json"));
        self.hijack(req, &uri).await
    }

    /// `GET /exec/{id}/json`.
    pub async fn exec_inspect(&self, id: &str) -> Result<ExecInspect, ClientError> {
        self.call_json(
            Method::GET,
            &exec_path(id, "json"),
            &Query::new(),
            None::<&()>,
        )
        .await
    }

    /// `POST /exec/{id}/resize?h=&w=`.
    pub async fn exec_resize(&self, id: &str, height: u16, width: u16) -> Result<(), ClientError> {
        let mut q = Query::new();
        q.push("h", height.to_string()).push("w", width.to_string());
        self.call_empty(Method::POST, &exec_path(id, "resize"), &q)
            .await
            .map(drop)
    }
}
