//! `GET /system/df` (`docker system df`): what images, containers, volumes and the build
//! cache hold on disk, measured as Docker measures it.
//!
//! Every size is Docker's `directory.Size` of the directory concerned: the bytes of every
//! entry but a directory (a symlink by its target's length), a hard-linked inode once. A
//! layer's is taken when it is unpacked (Docker's `DiffSize`), a container's rw layer
//! (`SizeRw`) and a volume's `_data` (`UsageData.Size`) now. berth has no builder: the build
//! cache is an empty list.

use std::collections::HashMap;

use berth_api::container::Summary;
use berth_image::ImageRecord;
use serde_json::{json, Value};

use crate::container::list::ListOptions;
use crate::error::{EngineError, Result};
use crate::Engine;

/// The sections `type` asked for (API 1.42+; all of them otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsageTypes {
    pub containers: bool,
    pub images: bool,
    pub volumes: bool,
    pub build_cache: bool,
}

impl DiskUsageTypes {
    /// Every section: no `type`, or a request older than 1.42.
    pub fn all() -> DiskUsageTypes {
        DiskUsageTypes {
            containers: true,
            images: true,
            volumes: true,
            build_cache: true,
        }
    }

    /// The `type` values given; an unknown one is refused with Docker's message.
    pub fn parse(values: &[String]) -> Result<DiskUsageTypes> {
        let mut t = DiskUsageTypes {
            containers: false,
            images: false,
            volumes: false,
            build_cache: false,
        };
        for v in values {
            match v.as_str() {
                "container" => t.containers = true,
                "image" => t.images = true,
                "volume" => t.volumes = true,
                "build-cache" => t.build_cache = true,
                other => {
                    return Err(EngineError::Invalid(format!(
                        "unknown object type: {other}"
                    )))
                }
            }
        }
        Ok(t)
    }
}

/// One image with what `system df` adds to the list's summary.
#[derive(Debug, Clone)]
pub struct ImageUsage {
    pub record: ImageRecord,
    /// Containers (in any state) made from it.
    pub containers: i64,
    /// The bytes of its layers another image has too.
    pub shared_size: i64,
}

/// The answer of [`Engine::disk_usage`]; `None` for a section not asked for.
#[derive(Debug, Clone, Default)]
pub struct DiskUsage {
    pub layers_size: i64,
    pub images: Option<Vec<ImageUsage>>,
    pub containers: Option<Vec<Summary>>,
    pub volumes: Option<Vec<Value>>,
    pub build_cache: Option<Vec<Value>>,
}

impl Engine {
    /// `GET /system/df` (blocking: walks the rw layers and the volumes).
    pub fn disk_usage(&self, types: DiskUsageTypes) -> Result<DiskUsage> {
        let mut out = DiskUsage::default();
        if types.images {
            let sharing = self.images.layer_sharing();
            out.layers_size = sharing.layers_size as i64;
            let mut users: HashMap<String, i64> = HashMap::new();
            for c in self.all() {
                *users.entry(c.record().image_id.clone()).or_default() += 1;
            }
            out.images = Some(
                self.images
                    .list()
                    .into_iter()
                    .map(|record| ImageUsage {
                        containers: users.get(&record.id).copied().unwrap_or(0),
                        shared_size: sharing.shared_size.get(&record.id).copied().unwrap_or(0)
                            as i64,
                        record,
                    })
                    .collect(),
            );
        }
        if types.containers {
            out.containers = Some(self.list(&ListOptions {
                all: true,
                size: true,
                ..ListOptions::default()
            })?);
        }
        if types.volumes {
            out.volumes = Some(self.volumes_with_usage()?);
        }
        if types.build_cache {
            out.build_cache = Some(self.build_cache_usage());
        }
        Ok(out)
    }

    /// Every volume as `volume inspect` shows it, with Docker's `UsageData`: the bytes of its
    /// content and the number of containers that mount it. A volume removed meanwhile is
    /// left out; one that cannot be measured has size -1 (Docker's "unknown"), logged.
    fn volumes_with_usage(&self) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let refcounts = self.volume_refcounts();
        for v in self.volumes.list()? {
            let size = match self.volumes.size(&v.name) {
                Ok(n) => n as i64,
                Err(berth_volume::VolumeError::NotFound(_)) => continue,
                Err(e) => {
                    tracing::warn!("system df: the size of volume {}: {e}", v.name);
                    -1
                }
            };
            let mut value = self.volume_json(&v);
            value["UsageData"] = json!({
                "RefCount": refcounts.get(&v.name).copied().unwrap_or(0),
                "Size": size,
            });
            out.push(value);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_take_dockers_four_names_and_refuse_others_with_its_message() {
        let t = DiskUsageTypes::parse(&["volume".into(), "build-cache".into()]).unwrap();
        assert!(t.volumes && t.build_cache && !t.images && !t.containers);
        let e = DiskUsageTypes::parse(&["image".into(), "network".into()]).unwrap_err();
        assert_eq!(e.to_string(), "unknown object type: network");
    }
}
