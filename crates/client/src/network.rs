//! `/networks`.
//!
//! The bodies are the CLI's JSON (built to match the docker CLI's, field for field); these
//! calls only carry them.

use berth_api::filters::Filters;
use http::Method;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::{full, segment, Client, ClientError, Query};

impl Client {
    /// `GET /networks`, as the daemon's JSON.
    pub async fn network_list(&self, filters: &Filters) -> Result<Vec<Value>, ClientError> {
        let mut q = Query::new();
        q.filters(filters);
        self.call_json(Method::GET, "/networks", &q, None::<&()>)
            .await
    }

    /// `GET /networks/{id}`, as the daemon's JSON.
    pub async fn network_inspect_raw(&self, id: &str) -> Result<Value, ClientError> {
        let path = format!("/networks/{}", segment(id));
        self.call_json(Method::GET, &path, &Query::new(), None::<&()>)
            .await
    }

    /// `POST /networks/create` with docker's `NetworkCreateRequest`; the daemon's
    /// `{"Id": .., "Warning": ..}`.
    pub async fn network_create(&self, request: &Value) -> Result<Value, ClientError> {
        self.call_json(
            Method::POST,
            "/networks/create",
            &Query::new(),
            Some(request),
        )
        .await
    }

    /// `DELETE /networks/{id}`.
    pub async fn network_remove(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/networks/{}", segment(id));
        self.call_empty(Method::DELETE, &path, &Query::new())
            .await
            .map(drop)
    }

    /// `POST /networks/prune[?filters=]`; the daemon's `{"NetworksDeleted": [..]}`.
    pub async fn network_prune(&self, filters: &Filters) -> Result<Value, ClientError> {
        let mut q = Query::new();
        q.filters(filters);
        self.call_json(Method::POST, "/networks/prune", &q, None::<&()>)
            .await
    }

    /// `POST /networks/{id}/connect` with `{"Container": .., "EndpointConfig": {..}}`.
    pub async fn network_connect(&self, id: &str, request: &Value) -> Result<(), ClientError> {
        self.post_network_verb(id, "connect", request).await
    }

    /// `POST /networks/{id}/disconnect` with `{"Container": .., "Force": ..}`.
    pub async fn network_disconnect(&self, id: &str, request: &Value) -> Result<(), ClientError> {
        self.post_network_verb(id, "disconnect", request).await
    }

    /// A JSON body posted to `/networks/{id}/{verb}`, whose (empty) answer is drained.
    async fn post_network_verb(
        &self,
        id: &str,
        verb: &str,
        request: &Value,
    ) -> Result<(), ClientError> {
        let path = format!("/networks/{}/{verb}", segment(id));
        let body = full(serde_json::to_vec(request)?);
        let resp = self
            .call(
                Method::POST,
                &path,
                &Query::new(),
                body,
                Some("application/json"),
            )
            .await?;
        resp.into_body().collect().await?;
        Ok(())
    }
}
