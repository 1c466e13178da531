//! `/_ping`, `/version`, `/info`, `/events`, `/system/df`.

use berth_api::events::Message;
use berth_api::filters::Filters;
use berth_api::system::{DiskUsage, Info, Version};
use http::{Method, StatusCode};
use http_body_util::BodyExt;

use crate::stream::{bytes_of, json_lines, JsonStream};
use crate::{empty, Client, ClientError, Query};

/// `GET /events` parameters.
#[derive(Debug, Clone, Default)]
pub struct EventsOptions {
    /// Replay from this time: unix seconds with an optional fraction, as the API takes it
    /// (the CLI converts durations and dates first).
    pub since: Option<String>,
    /// Stop at this time (same form); without it the stream stays open.
    pub until: Option<String>,
    /// `type`, `container`, `image`, `event`, `label`, ...
    pub filters: Filters,
}

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

    /// `GET /system/df`; `types` (`container`, `image`, `volume`, `build-cache`) limits the
    /// sections filled, none means all.
    pub async fn disk_usage(&self, types: &[&str]) -> Result<DiskUsage, ClientError> {
        let mut q = Query::new();
        for t in types {
            q.push("type", *t);
        }
        self.call_json(Method::GET, "/system/df", &q, None::<&()>)
            .await
    }

    /// `GET /events`: the events the daemon replays, then the live ones, until `until` or
    /// until the stream is dropped.
    pub async fn events(
        &self,
        options: &EventsOptions,
    ) -> Result<JsonStream<Message>, ClientError> {
        let mut q = Query::new();
        q.filters(&options.filters)
            .opt("since", options.since.as_deref())
            .opt("until", options.until.as_deref());
        let resp = self.call(Method::GET, "/events", &q, empty(), None).await?;
        Ok(json_lines(bytes_of(resp.into_body())))
    }

    /// `GET /info` as raw JSON (for `info --format`).
    pub async fn info_raw(&self) -> Result<serde_json::Value, ClientError> {
        self.call_json(Method::GET, "/info", &Query::new(), None::<&()>)
            .await
    }
}
