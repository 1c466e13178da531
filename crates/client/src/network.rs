//! `/networks`.

use berth_api::filters::Filters;
use http::Method;

use crate::{segment, Client, ClientError, Query};

impl Client {
    /// `GET /networks`, as the daemon's JSON.
    pub async fn network_list(
        &self,
        filters: &Filters,
    ) -> Result<Vec<serde_json::Value>, ClientError> {
        let mut q = Query::new();
        q.filters(filters);
        self.call_json(Method::GET, "/networks", &q, None::<&()>)
            .await
    }

    /// `GET /networks/{id}`, as the daemon's JSON.
    pub async fn network_inspect_raw(&self, id: &str) -> Result<serde_json::Value, ClientError> {
        let path = format!("/networks/{}", segment(id));
        self.call_json(Method::GET, &path, &Query::new(), None::<&()>)
            .await
    }
}
