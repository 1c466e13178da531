//! The build cache as `system df` and `builder prune` see it: the images of build steps that
//! no build returned (the image store keeps them, `ImageStore::build_cache`).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::error::{EngineError, Result};
use crate::Engine;

/// What `POST /build/prune` asks for.
#[derive(Debug, Clone, Default)]
pub struct BuildPrune {
    /// `all`: every record, not only those no image shares a layer with.
    pub all: bool,
    /// `filters`: `until` only (others refused by name).
    pub filters: BTreeMap<String, Vec<String>>,
    /// `keep-storage` (`reserved-space` since API 1.48): the bytes of cache kept, the
    /// oldest records removed first until the rest fit.
    pub keep_storage: Option<u64>,
}

/// berthd's default bound on the build cache: 10 % of the filesystem holding `root`, at
/// most 20 GiB (`None` when the filesystem cannot be measured).
pub fn default_build_cache_max(root: &std::path::Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(root).ok()?;
    Some((st.blocks() as u64 * st.fragment_size() as u64 / 10).min(20 << 30))
}

impl Engine {
    /// `system df`'s `BuildCache` rows, in Docker's shape.
    pub fn build_cache_usage(&self) -> Vec<Value> {
        self.images
            .build_cache()
            .into_iter()
            .map(|r| {
                let created = chrono::DateTime::from_timestamp(r.created, 0)
                    .unwrap_or_default()
                    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
                json!({
                    "ID": r.id.trim_start_matches("sha256:"),
                    "Parents": null,
                    "Type": "regular",
                    "Description": r.description,
                    "InUse": self.container_using_image(&r.id).is_some(),
                    "Shared": r.shared,
                    "Size": r.size,
                    "CreatedAt": created,
                    "LastUsedAt": created,
                    "UsageCount": 0,
                })
            })
            .collect()
    }

    /// `builder prune`: returns the records removed and the bytes reclaimed.
    pub fn prune_build_cache(&self, req: &BuildPrune) -> Result<(Vec<String>, u64)> {
        let mut until = None;
        for (k, values) in &req.filters {
            match k.as_str() {
                "until" => {
                    for v in values {
                        until = Some(crate::container::misc::parse_until(v)?.timestamp());
                    }
                }
                other => {
                    return Err(EngineError::Invalid(format!(
                        "the build cache filter {other} is not supported by berth: refused \
                         rather than ignored (until is)"
                    )))
                }
            }
        }
        let records = self.images.build_cache();
        let mut total: u64 = records.iter().map(|r| r.size).sum();
        let mut remove = Vec::new();
        // Oldest first: `keep-storage` keeps the newest that fit.
        for r in &records {
            if req.keep_storage.is_some_and(|keep| total <= keep) {
                break;
            }
            if !req.all && r.shared {
                continue;
            }
            if until.is_some_and(|u| r.created >= u) {
                continue;
            }
            total -= r.size;
            remove.push(r.id.clone());
        }
        let in_use = |id: &str| self.container_using_image(id);
        let (removed, reclaimed) = self.images.prune_build_cache(&remove, &in_use)?;
        Ok((
            removed
                .into_iter()
                .map(|id| id.trim_start_matches("sha256:").to_string())
                .collect(),
            reclaimed,
        ))
    }
}
