//! Container endpoints.

use berth_api::archive::{PathStat, PATH_STAT_HEADER};
use berth_api::container::{
    CreateRequest, CreateResponse, FilesystemChange, IdResponse, Inspect, PruneResponse, Summary,
    TopResponse, UpdateConfig, UpdateResponse, WaitResponse,
};
use berth_api::filters::Filters;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use http::{Method, StatusCode};
use http_body_util::BodyExt;

use crate::stream::{
    bytes_of, json_lines, log_chunks, ByteStream, Hijacked, JsonStream, LogStream,
};
use crate::{empty, segment, Client, ClientError, Query};

/// `GET /containers/json` parameters.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Include stopped containers (`-a`).
    pub all: bool,
    /// Only the newest N (`-n`, `-l` is 1); the daemon treats it as implying `all`.
    pub limit: Option<i64>,
    /// Compute `SizeRw`/`SizeRootFs` (`-s`).
    pub size: bool,
    /// `--filter` values.
    pub filters: Filters,
}

/// `DELETE /containers/{id}` parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct RemoveOptions {
    /// Kill a running container first (`-f`).
    pub force: bool,
    /// Remove anonymous volumes too (`-v`).
    pub volumes: bool,
}

/// `GET /containers/{id}/logs` parameters.
#[derive(Debug, Clone)]
pub struct LogsOptions {
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Keep streaming until the container stops (`-f`).
    pub follow: bool,
    /// `N` or `all` (the docker CLI sends `all` when `--tail` is not given).
    pub tail: String,
    /// Prefix lines with RFC 3339 timestamps (`-t`).
    pub timestamps: bool,
    /// `seconds[.nanoseconds]` since the epoch.
    pub since: Option<String>,
    /// `seconds[.nanoseconds]` since the epoch.
    pub until: Option<String>,
    /// Whether the container has a TTY: its output then carries no frame headers. The CLI
    /// learns it from inspect, as docker does.
    pub tty: bool,
}

impl Default for LogsOptions {
    fn default() -> Self {
        LogsOptions {
            stdout: true,
            stderr: true,
            follow: false,
            tail: "all".into(),
            timestamps: false,
            since: None,
            until: None,
            tty: false,
        }
    }
}

/// `POST /containers/{id}/attach` parameters.
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    /// Forward stdin.
    pub stdin: bool,
    /// Receive stdout.
    pub stdout: bool,
    /// Receive stderr.
    pub stderr: bool,
    /// Live output (`stream=1`; the docker CLI always sets it).
    pub stream: bool,
    /// Replay the log backlog first.
    pub logs: bool,
    /// `detachKeys`: the daemon's default when `None`.
    pub detach_keys: Option<String>,
}

/// `POST /commit` parameters.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The repository to tag the image in (`repo`), normalized as docker sends it.
    pub repo: Option<String>,
    /// Its tag (`tag`).
    pub tag: Option<String>,
    /// `-m`
    pub comment: Option<String>,
    /// `-a`
    pub author: Option<String>,
    /// `-c`: Dockerfile lines.
    pub changes: Vec<String>,
    /// `--pause=false` sends `pause=0`; docker sends nothing otherwise.
    pub no_pause: bool,
}

/// The body of a `wait` whose headers have arrived; resolves when the container exits
/// (or is removed, for `condition=removed`).
pub type WaitFuture = BoxFuture<'static, Result<WaitResponse, ClientError>>;

fn path(id: &str, verb: &str) -> String {
    if verb.is_empty() {
        format!("/containers/{}", segment(id))
    } else {
        format!("/containers/{}/{verb}", segment(id))
    }
}

impl Client {
    /// `POST /containers/create[?name=]`.
    pub async fn container_create(
        &self,
        name: Option<&str>,
        platform: Option<&str>,
        request: &CreateRequest,
    ) -> Result<CreateResponse, ClientError> {
        let mut q = Query::new();
        q.opt("name", name).opt("platform", platform);
        self.call_json(Method::POST, "/containers/create", &q, Some(request))
            .await
    }

    /// `POST /containers/{id}/start`. 304 (already running) is success, as in docker.
    pub async fn container_start(&self, id: &str) -> Result<(), ClientError> {
        self.call_empty(Method::POST, &path(id, "start"), &Query::new())
            .await
            .map(drop)
    }

    /// `POST /containers/{id}/stop[?t=][&signal=]`; 304 (already stopped) is success.
    pub async fn container_stop(
        &self,
        id: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<(), ClientError> {
        let mut q = Query::new();
        q.opt("signal", signal).opt("t", timeout);
        self.call_empty(Method::POST, &path(id, "stop"), &q)
            .await
            .map(drop)
    }

    /// `POST /containers/{id}/restart[?t=][&signal=]`.
    pub async fn container_restart(
        &self,
        id: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<(), ClientError> {
        let mut q = Query::new();
        q.opt("signal", signal).opt("t", timeout);
        self.call_empty(Method::POST, &path(id, "restart"), &q)
            .await
            .map(drop)
    }

    /// `POST /containers/{id}/kill[?signal=]`.
    pub async fn container_kill(&self, id: &str, signal: Option<&str>) -> Result<(), ClientError> {
        let mut q = Query::new();
        q.opt("signal", signal);
        self.call_empty(Method::POST, &path(id, "kill"), &q)
            .await
            .map(drop)
    }

    /// `DELETE /containers/{id}[?force=1][&v=1]`.
    pub async fn container_remove(
        &self,
        id: &str,
        options: RemoveOptions,
    ) -> Result<(), ClientError> {
        let mut q = Query::new();
        q.flag("force", options.force).flag("v", options.volumes);
        self.call_empty(Method::DELETE, &path(id, ""), &q)
            .await
            .map(drop)
    }

    /// `GET /containers/json`.
    pub async fn container_list(&self, options: &ListOptions) -> Result<Vec<Summary>, ClientError> {
        let mut q = Query::new();
        q.flag("all", options.all)
            .opt("limit", options.limit.filter(|n| *n > 0))
            .flag("size", options.size)
            .filters(&options.filters);
        self.call_json(Method::GET, "/containers/json", &q, None::<&()>)
            .await
    }

    /// `GET /containers/{id}/json`, typed.
    pub async fn container_inspect(&self, id: &str) -> Result<Inspect, ClientError> {
        self.call_json(Method::GET, &path(id, "json"), &Query::new(), None::<&()>)
            .await
    }

    /// `GET /containers/{id}/json` as raw JSON, keeping every field the daemon sent (for
    /// `inspect` output and `--format` paths).
    pub async fn container_inspect_raw(&self, id: &str) -> Result<serde_json::Value, ClientError> {
        self.call_json(Method::GET, &path(id, "json"), &Query::new(), None::<&()>)
            .await
    }

    /// `GET /containers/{id}/logs`: output chunks, demultiplexed unless `options.tty`.
    pub async fn container_logs(
        &self,
        id: &str,
        options: &LogsOptions,
    ) -> Result<LogStream, ClientError> {
        let mut q = Query::new();
        q.flag("follow", options.follow)
            .opt("since", options.since.as_deref())
            .flag("stderr", options.stderr)
            .flag("stdout", options.stdout)
            .push("tail", options.tail.clone())
            .flag("timestamps", options.timestamps)
            .opt("until", options.until.as_deref());
        let resp = self
            .call(Method::GET, &path(id, "logs"), &q, empty(), None)
            .await?;
        Ok(log_chunks(bytes_of(resp.into_body()), options.tty))
    }

    /// `POST /containers/{id}/wait[?condition=]`. Returns once the response *headers* have
    /// arrived — the daemon has registered the waiter — with a future for the body. The
    /// docker CLI relies on this order: `wait` first, then `start`, so a fast exit is never
    /// missed. Conditions: `not-running` (default), `next-exit`, `removed`.
    pub async fn container_wait(
        &self,
        id: &str,
        condition: Option<&str>,
    ) -> Result<WaitFuture, ClientError> {
        let mut q = Query::new();
        q.opt("condition", condition);
        let resp = self
            .call(Method::POST, &path(id, "wait"), &q, empty(), None)
            .await?;
        Ok(async move {
            let bytes = resp.into_body().collect().await?.to_bytes();
            Ok(serde_json::from_slice::<WaitResponse>(&bytes)?)
        }
        .boxed())
    }

    /// `POST /containers/{id}/attach` with `Upgrade: tcp`; returns the hijacked connection.
    /// Output is framed (stdcopy) unless the container has a TTY. When not sending stdin,
    /// shut down its write half at once, as the docker CLI does.
    pub async fn container_attach(
        &self,
        id: &str,
        options: AttachOptions,
    ) -> Result<Hijacked, ClientError> {
        let mut q = Query::new();
        q.flag("logs", options.logs)
            .flag("stderr", options.stderr)
            .flag("stdin", options.stdin)
            .flag("stdout", options.stdout)
            .flag("stream", options.stream);
        if let Some(keys) = &options.detach_keys {
            q.push("detachKeys", keys.clone());
        }
        let uri = self.versioned(&path(id, "attach"), &q).await?;
        let req = self.build(Method::POST, &uri, empty(), Some("text/plain"));
        self.hijack(req, &uri).await
    }

    /// Sends a request that asks for `Upgrade: tcp` and returns the hijacked connection
    /// (attach, exec start).
    pub(crate) async fn hijack(
        &self,
        mut req: http::Request<crate::ReqBody>,
        uri: &str,
    ) -> Result<Hijacked, ClientError> {
        req.headers_mut()
            .insert(http::header::CONNECTION, "Upgrade".parse().expect("static"));
        req.headers_mut()
            .insert(http::header::UPGRADE, "tcp".parse().expect("static"));
        let resp = self.send_raw(req).await?;
        let resp = crate::check_status(resp, uri).await?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(ClientError::NoUpgrade(resp.status().as_u16()));
        }
        let multiplexed = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v == "application/vnd.docker.multiplexed-stream");
        let upgraded = hyper::upgrade::on(resp).await?;
        Ok(Hijacked::new(upgraded, multiplexed))
    }

    /// `POST /containers/{id}/resize?h=&w=`: the TTY size, sent after start and on SIGWINCH.
    pub async fn container_resize(
        &self,
        id: &str,
        height: u16,
        width: u16,
    ) -> Result<(), ClientError> {
        let mut q = Query::new();
        q.push("h", height.to_string()).push("w", width.to_string());
        self.call_empty(Method::POST, &path(id, "resize"), &q)
            .await
            .map(drop)
    }

    /// `POST /containers/{id}/rename?name=`.
    pub async fn container_rename(&self, id: &str, new_name: &str) -> Result<(), ClientError> {
        let mut q = Query::new();
        q.push("name", new_name);
        self.call_empty(Method::POST, &path(id, "rename"), &q)
            .await
            .map(drop)
    }

    /// `POST /containers/{id}/pause`.
    pub async fn container_pause(&self, id: &str) -> Result<(), ClientError> {
        self.call_empty(Method::POST, &path(id, "pause"), &Query::new())
            .await
            .map(drop)
    }

    /// `POST /containers/{id}/unpause`.
    pub async fn container_unpause(&self, id: &str) -> Result<(), ClientError> {
        self.call_empty(Method::POST, &path(id, "unpause"), &Query::new())
            .await
            .map(drop)
    }

    /// `GET /containers/{id}/top[?ps_args=]`.
    pub async fn container_top(
        &self,
        id: &str,
        ps_args: Option<&str>,
    ) -> Result<TopResponse, ClientError> {
        let mut q = Query::new();
        q.opt("ps_args", ps_args.filter(|s| !s.is_empty()));
        self.call_json(Method::GET, &path(id, "top"), &q, None::<&()>)
            .await
    }

    /// `GET /containers/{id}/stats?stream=false`: one sample. With `one_shot`
    /// (`one-shot=true`) the daemon answers at once without `precpu_stats`; without, it
    /// samples twice a second apart, as the docker CLI's `--no-stream` asks.
    pub async fn container_stats(
        &self,
        id: &str,
        one_shot: bool,
    ) -> Result<berth_api::stats::Stats, ClientError> {
        let mut q = Query::new();
        q.push("stream", "false");
        if one_shot {
            q.push("one-shot", "true");
        }
        self.call_json(Method::GET, &path(id, "stats"), &q, None::<&()>)
            .await
    }

    /// `GET /containers/{id}/stats?stream=true`: a sample a second, each with the previous
    /// one's CPU counters, until the container is removed or the stream is dropped.
    pub async fn container_stats_stream(
        &self,
        id: &str,
    ) -> Result<JsonStream<berth_api::stats::Stats>, ClientError> {
        let mut q = Query::new();
        q.push("stream", "true");
        let resp = self
            .call(Method::GET, &path(id, "stats"), &q, empty(), None)
            .await?;
        Ok(json_lines(bytes_of(resp.into_body())))
    }

    /// `GET /containers/{id}/changes`: `None` (Docker's `null`) when nothing changed.
    pub async fn container_changes(
        &self,
        id: &str,
    ) -> Result<Option<Vec<FilesystemChange>>, ClientError> {
        self.call_json(
            Method::GET,
            &path(id, "changes"),
            &Query::new(),
            None::<&()>,
        )
        .await
    }

    /// `GET /containers/{id}/export`: the container's filesystem as a tar byte stream.
    pub async fn container_export(&self, id: &str) -> Result<ByteStream, ClientError> {
        let resp = self
            .call(
                Method::GET,
                &path(id, "export"),
                &Query::new(),
                crate::empty(),
                None,
            )
            .await?;
        Ok(bytes_of(resp.into_body()))
    }

    /// `POST /commit?container=..`: the new image's id.
    pub async fn container_commit(
        &self,
        id: &str,
        options: &CommitOptions,
    ) -> Result<IdResponse, ClientError> {
        let mut q = Query::new();
        q.push("container", id)
            .opt("repo", options.repo.as_deref())
            .opt("tag", options.tag.as_deref())
            .opt("comment", options.comment.as_deref())
            .opt("author", options.author.as_deref());
        for c in &options.changes {
            q.push("changes", c.clone());
        }
        if options.no_pause {
            q.push("pause", "0");
        }
        self.call_json(Method::POST, "/commit", &q, None::<&()>)
            .await
    }

    /// `POST /containers/{id}/update`.
    pub async fn container_update(
        &self,
        id: &str,
        update: &UpdateConfig,
    ) -> Result<UpdateResponse, ClientError> {
        self.call_json(
            Method::POST,
            &path(id, "update"),
            &Query::new(),
            Some(update),
        )
        .await
    }

    /// `POST /containers/prune[?filters=]`.
    pub async fn container_prune(&self, filters: &Filters) -> Result<PruneResponse, ClientError> {
        let mut q = Query::new();
        q.filters(filters);
        self.call_json(Method::POST, "/containers/prune", &q, None::<&()>)
            .await
    }

    /// `HEAD /containers/{id}/archive?path=`: what the path in the container is.
    pub async fn container_stat_path(
        &self,
        id: &str,
        container_path: &str,
    ) -> Result<PathStat, ClientError> {
        let mut q = Query::new();
        q.push("path", container_path);
        let resp = self
            .call(Method::HEAD, &self::path(id, "archive"), &q, empty(), None)
            .await?;
        path_stat(resp.headers())
    }

    /// `GET /containers/{id}/archive?path=`: what the path is and a tar of it.
    pub async fn container_archive(
        &self,
        id: &str,
        container_path: &str,
    ) -> Result<(PathStat, ByteStream), ClientError> {
        let mut q = Query::new();
        q.push("path", container_path);
        let resp = self
            .call(Method::GET, &self::path(id, "archive"), &q, empty(), None)
            .await?;
        let stat = path_stat(resp.headers())?;
        Ok((stat, bytes_of(resp.into_body())))
    }

    /// `PUT /containers/{id}/archive?path=`: extracts the tar read from `tar` into the
    /// directory `path` (`noOverwriteDirNonDir` unless `allow_overwrite_dir_with_file`, as
    /// the Go client sends it; `copyUIDGID` for `cp -a`).
    pub async fn container_extract(
        &self,
        id: &str,
        container_path: &str,
        tar: impl tokio::io::AsyncRead + Send + 'static,
        allow_overwrite_dir_with_file: bool,
        copy_uid_gid: bool,
    ) -> Result<(), ClientError> {
        let mut q = Query::new();
        q.push("path", container_path);
        if !allow_overwrite_dir_with_file {
            q.push("noOverwriteDirNonDir", "true");
        }
        if copy_uid_gid {
            q.push("copyUIDGID", "true");
        }
        let resp = self
            .call(
                Method::PUT,
                &self::path(id, "archive"),
                &q,
                crate::reader_body(tar),
                Some("application/x-tar"),
            )
            .await?;
        resp.into_body().collect().await?;
        Ok(())
    }
}

/// The `X-Docker-Container-Path-Stat` header of an archive answer.
fn path_stat(headers: &http::HeaderMap) -> Result<PathStat, ClientError> {
    headers
        .get(PATH_STAT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(PathStat::from_header)
        .ok_or_else(|| {
            ClientError::Stream(
                "unable to get resource stat from response: unable to decode container path stat header"
                    .into(),
            )
        })
}
