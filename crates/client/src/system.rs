//! `/_ping`, `/version`, `/info`.

use berth_api::system::{Info, Version};
use http::{Method, StatusCode};
use http_body_util::BodyExt;

use crate::{empty, Client, ClientError, Query};

/// What `/_ping` told us.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ping {
    /// The `Api-Version` header: the newest version the daemon serves.
    pub api_version: Option<String>,
    /// The `Ostype` header.
    pub os_type: Option<String>,
    /// The `Server` header.
    pub server: Option<String>,
}

impl Client {
    /// `HEAD /_ping`, falling back to `GET /_ping` when HEAD is not answered with 200, as the
    /// docker CLI does. Unversioned; does not need negotiation.
    pub async fn ping(&self) -> Result<Ping, ClientError> {
        let head = self
            .send_raw(self.build(Method::HEAD, "/_ping", empty(), None))
            .await?;
        let resp = if head.status() == StatusCode::OK {
            head
        } else {
            let get = self
                .send_raw(self.build(Method::GET, "/_ping", empty(), None))
                .await?;
            crate::check_status(get, "/_ping").await?
        };
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let ping = Ping {
            api_version: header("api-version"),
            os_type: header("ostype"),
            server: header("server"),
        };
        resp.into_body().collect().await?;
        Ok(ping)
    }

    /// `GET /version`.
    pub async fn version(&self) -> Result<Version, ClientError> {
        self.call_json(Method::GET, "/version", &Query::new(), None::<&()>)
            .await
    }

    /// `GET /info`.
    pub async fn info(&self) -> Result<Info, ClientError> {
        self.call_json(Method::GET, "/info", &Query::new(), None::<&()>)
            .await
    }

    /// `GET /info` as raw JSON (for `info --format`).
    pub async fn info_raw(&self) -> Result<serde_json::Value, ClientError> {
        self.call_json(Method::GET, "/info", &Query::new(), None::<&()>)
            .await
    }
}
