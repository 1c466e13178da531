//! `GET /containers/json` (`docker ps`).

use std::collections::HashMap;

use chrono::Utc;

use berth_api::container::{Summary, SummaryHostConfig, SummaryNetworkSettings};
use berth_api::filters::{labels_match, Filters};

use crate::error::{EngineError, Result};
use crate::human::status_string;
use crate::record::Status;
use crate::Engine;

/// What `ps` was asked for.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub all: bool,
    /// `-n`; `-l` is `limit = 1`.
    pub limit: Option<usize>,
    pub size: bool,
    pub filters: Filters,
}

/// Docker's filters that berth does not apply yet.
const UNAPPLIED_FILTERS: &[&str] = &[
    "before",
    "since",
    "network",
    "health",
    "isolation",
    "is-task",
    "publish",
    "expose",
];

const FILTERS: &[&str] = &[
    "name",
    "id",
    "status",
    "label",
    "ancestor",
    "exited",
    "before",
    "since",
    "network",
    "volume",
    "health",
    "isolation",
    "is-task",
    "publish",
    "expose",
];

impl Engine {
    /// Lists containers, newest first.
    pub fn list(&self, opts: &ListOptions) -> Result<Vec<Summary>> {
        opts.filters
            .validate(FILTERS)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        // Accepted by Docker, not applied by berth yet: refused, never ignored (an ignored
        // filter would list every container).
        for key in UNAPPLIED_FILTERS {
            if !opts.filters.get(key).is_empty() {
                return Err(EngineError::Invalid(format!(
                    "the {key} filter is not supported by berth yet: refused rather than \
                     ignored"
                )));
            }
        }
        for s in opts.filters.get("status") {
            if ![
                "created",
                "restarting",
                "running",
                "removing",
                "paused",
                "exited",
                "dead",
            ]
            .contains(&s.as_str())
            {
                return Err(EngineError::Invalid(format!("Invalid filter 'status={s}'")));
            }
        }
        let all = opts.all || opts.filters.contains("status") || opts.filters.contains("exited");
        let now = Utc::now();
        let mut out: Vec<(chrono::DateTime<Utc>, Summary)> = Vec::new();
        for c in self.all() {
            let rec = c.record().clone();
            let st = c.state();
            if !all && !st.status.is_active() {
                continue;
            }
            if !self.matches(&opts.filters, &rec, &st) {
                continue;
            }
            let size_rw = opts.size.then(|| self.images.snapshot_usage(&c.id) as i64);
            let size_root = opts.size.then(|| {
                self.images
                    .resolve(&rec.image_id)
                    .map(|i| i.size as i64)
                    .unwrap_or(0)
                    + size_rw.unwrap_or(0)
            });
            let command = std::iter::once(rec.path.as_str())
                .chain(rec.args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" ");
            let published: Vec<crate::ports::Published> = st
                .networks
                .values()
                .flat_map(|ep| ep.ports.iter().cloned())
                .collect();
            let ports = crate::ports::summary_ports(&rec.config, &published);
            let mut networks = HashMap::new();
            if rec.endpoints.is_empty() {
                let network = if rec.host_config.network_mode == "default" {
                    "none".to_string()
                } else {
                    rec.host_config.network_mode.clone()
                };
                networks.insert(network, serde_json::json!({}));
            }
            for name in rec.endpoints.keys() {
                networks.insert(name.clone(), serde_json::json!({}));
            }
            out.push((
                rec.created,
                Summary {
                    id: rec.id.clone(),
                    names: vec![format!("/{}", rec.name)],
                    image: rec.image_ref.clone(),
                    image_id: rec.image_id.clone(),
                    command,
                    created: rec.created.timestamp(),
                    ports,
                    size_rw,
                    size_root_fs: size_root,
                    labels: rec.config.labels.clone().unwrap_or_default(),
                    state: st.status.as_str().to_string(),
                    status: status_string(&st, now),
                    host_config: SummaryHostConfig {
                        network_mode: rec.host_config.network_mode.clone(),
                    },
                    network_settings: SummaryNetworkSettings { networks },
                    mounts: crate::mounts::mount_points(self, &rec),
                },
            ));
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.0));
        let mut list: Vec<Summary> = out.into_iter().map(|(_, s)| s).collect();
        if let Some(n) = opts.limit.filter(|n| *n > 0) {
            list.truncate(n);
        }
        Ok(list)
    }

    fn matches(
        &self,
        f: &Filters,
        rec: &crate::record::ContainerRecord,
        st: &crate::record::ContainerState,
    ) -> bool {
        let any = |key: &str, pred: &dyn Fn(&str) -> bool| {
            let vals = f.get(key);
            vals.is_empty() || vals.iter().any(|v| pred(v))
        };
        any("name", &|v| {
            let v = v.strip_prefix('/').unwrap_or(v);
            rec.name.contains(v)
        }) && any("id", &|v| rec.id.starts_with(v))
            && any("status", &|v| st.status.as_str() == v)
            && any("exited", &|v| {
                st.status == Status::Exited && v.parse::<i64>().ok() == Some(st.exit_code)
            })
            && any("ancestor", &|v| {
                rec.image_ref == v
                    || self
                        .images
                        .resolve(v)
                        .map(|i| i.id == rec.image_id)
                        .unwrap_or(false)
            })
            && labels_match(f.get("label"), rec.config.labels.as_ref())
            // Docker's: a listed mount's destination, a volume's name, or a bind's host path
            // (moby keys a mount without a name by its source). A `--tmpfs` is not one of
            // inspect's `Mounts`, so not matched either.
            && any("volume", &|v| {
                crate::mounts::of_record(rec).iter().any(|m| {
                    use berth_volume::mountspec::MountType;
                    !m.unlisted
                        && (m.destination == v
                            || (matches!(m.kind, MountType::Volume | MountType::Bind)
                                && m.source == v))
                })
            })
    }
}
