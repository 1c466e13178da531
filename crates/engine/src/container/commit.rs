//! `POST /commit` (`docker commit`): the container's changes become a new image on its own
//! (moby `CreateImageFromContainer`). The container is paused meanwhile unless asked not to
//! (`pause=0`), with Docker's `pause` and `unpause` events around the commit; the image store
//! writes the layer, the config (the container's config with the `--change` lines applied)
//! and the history entry. Events in Docker's order: image `create`, image `tag` (when
//! named), container `commit` (`comment`, `imageID`, `imageRef`), then `unpause`.

use std::sync::Arc;

use berth_image::{CommitOptions, ContainerConfig};

use crate::error::{EngineError, Result};
use crate::record::Status;
use crate::Engine;

/// What a `POST /commit` asks for.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    /// `repo`: the repository to tag the image in (none: untagged).
    pub repo: Option<String>,
    /// `tag` (none: `latest`).
    pub tag: Option<String>,
    /// `comment` (`-m`).
    pub comment: String,
    /// `author` (`-a`).
    pub author: String,
    /// `changes` (`-c`): Dockerfile lines.
    pub changes: Vec<String>,
    /// `pause` (default true).
    pub pause: bool,
    /// The request body: a config to start from instead of the container's. berth takes
    /// only an empty one (the docker CLI sends none).
    pub config: Option<serde_json::Value>,
}

impl Engine {
    /// Commits the container; returns the new image's id.
    pub async fn commit(self: &Arc<Self>, name_or_id: &str, req: CommitRequest) -> Result<String> {
        if let Some(body) = req
            .config
            .as_ref()
            .filter(|b| !crate::unapplied::is_zero_struct(b))
        {
            let mut shown = body.to_string();
            shown.truncate(200);
            return Err(EngineError::Invalid(format!(
                "a commit request's config (the request body) is not supported by berth yet: \
                 refused rather than ignored; use --change (value: {shown})"
            )));
        }
        let reference = match req.repo.as_deref().filter(|r| !r.is_empty()) {
            Some(repo) => Some(match req.tag.as_deref().filter(|t| !t.is_empty()) {
                Some(tag) => format!("{repo}:{tag}"),
                None => repo.to_string(),
            }),
            None => None,
        };
        let c = self.get(name_or_id)?;
        match c.state().status {
            Status::Dead => {
                return Err(EngineError::Conflict(format!(
                    "You cannot commit container {} which is Dead",
                    c.id
                )))
            }
            Status::Removing => {
                return Err(EngineError::Conflict(format!(
                    "You cannot commit container {} which is being removed",
                    c.id
                )))
            }
            _ => {}
        }
        // Docker pauses a running container and ignores a failure (it was not running).
        let paused = req.pause && self.pause(&c.id).await.is_ok();
        let committed = self.commit_paused(&c, reference, &req).await;
        if let Ok(id) = &committed {
            let image_ref = req
                .repo
                .as_deref()
                .filter(|r| !r.is_empty())
                .map(|r| crate::images::familiar_tagged(r, req.tag.as_deref().unwrap_or("")))
                .unwrap_or_default();
            self.emit_image(id, id, "create");
            if !image_ref.is_empty() {
                self.emit_image(id, &image_ref, "tag");
            }
            self.emit_container(
                &c,
                "commit",
                &[
                    ("comment", req.comment.clone()),
                    ("imageID", id.clone()),
                    ("imageRef", image_ref),
                ],
            );
        }
        if paused {
            if let Err(e) = self.unpause(&c.id).await {
                tracing::warn!(container = %c.id, "unpause after commit: {e}");
            }
        }
        committed
    }

    /// A build step's commit: the container's changes as a layer on its image, with the
    /// build's config and history entry in `opts` (not the container's); `image_id` and
    /// `container_id` are the container's. No events: the builder says what it does.
    pub async fn commit_build(
        self: &Arc<Self>,
        name_or_id: &str,
        mut opts: CommitOptions,
    ) -> Result<String> {
        let c = self.get(name_or_id)?;
        opts.image_id = c.record().image_id.clone();
        opts.container_id = c.id.clone();
        self.commit_layer(c, opts).await
    }

    /// A build step's commit of `COPY --link`: the changes of a container of the empty image
    /// made into a layer laid on `parent` (BuildKit's merge of a layer copied alone: nothing
    /// of `parent` was seen while copying, so a symlink there was never followed).
    pub async fn commit_build_onto(
        self: &Arc<Self>,
        name_or_id: &str,
        parent: &str,
        mut opts: CommitOptions,
    ) -> Result<String> {
        let c = self.get(name_or_id)?;
        opts.image_id = parent.to_string();
        opts.container_id = c.id.clone();
        self.commit_layer(c, opts).await
    }

    /// The container's rw layer as a new image (off the async threads).
    async fn commit_layer(
        self: &Arc<Self>,
        c: Arc<crate::Container>,
        opts: CommitOptions,
    ) -> Result<String> {
        let engine = self.clone();
        tokio::task::spawn_blocking(move || {
            engine.ensure_rw_layer(&c);
            engine.images.commit_container(&c.id, &opts)
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?
        .map_err(EngineError::from)
    }

    async fn commit_paused(
        self: &Arc<Self>,
        c: &Arc<crate::Container>,
        reference: Option<String>,
        req: &CommitRequest,
    ) -> Result<String> {
        let (image_id, config) = {
            let rec = c.record();
            (rec.image_id.clone(), image_config(&rec.config)?)
        };
        let opts = CommitOptions {
            image_id,
            reference,
            changes: req.changes.clone(),
            author: req.author.clone(),
            comment: req.comment.clone(),
            config: config.clone(),
            container_config: config,
            container_id: c.id.clone(),
            cache_key: None,
        };
        self.commit_layer(c.clone(), opts).await
    }
}

/// The container's config as an image config's `config` (the same JSON, Docker's
/// `container.Config`).
fn image_config(config: &berth_api::container::Config) -> Result<ContainerConfig> {
    serde_json::to_value(config)
        .and_then(serde_json::from_value)
        .map_err(|e| EngineError::Internal(format!("container config as image config: {e}")))
}
