//! The volume API: `POST /volumes/create`, `GET /volumes`, `GET /volumes/{name}`,
//! `DELETE /volumes/{name}` and `POST /volumes/prune`, in Docker's shapes and words, over
//! `berth-volume`'s store. The local driver only, without options: a volume is a directory.
//! Containers do not mount volumes yet (`-v name:/path` is refused in binds.rs), so no
//! volume is in use and every one is dangling.

use std::collections::{BTreeMap, HashMap};

use berth_api::filters::{labels_match, Filters};
use berth_volume::{Volume, VolumeError, LOCAL_DRIVER};
use serde_json::{json, Value};

use crate::error::{EngineError, Result};
use crate::Engine;

/// The filters `volume ls` takes (Docker's `acceptedListFilters`).
const LIST_FILTERS: &[&str] = &["name", "driver", "label", "dangling"];
/// The filters `volume prune` takes (Docker's `acceptedPruneFilters`).
const PRUNE_FILTERS: &[&str] = &["label", "label!", "all"];
/// The label Docker puts on the volumes it makes without a name; `prune` without `all`
/// removes only these (Docker 23+).
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// `POST /volumes/create`'s body (Docker's `VolumeCreateOptions`), field by field.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CreateVolume {
    /// Empty: a random name.
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

fn string_map(field: &str, v: &Value) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    match v {
        Value::Null => {}
        Value::Object(map) => {
            for (k, val) in map {
                let Some(s) = val.as_str() else {
                    return Err(EngineError::Invalid(format!(
                        "volume create: {field}.{k} must be a string"
                    )));
                };
                out.insert(k.clone(), s.to_string());
            }
        }
        _ => {
            return Err(EngineError::Invalid(format!(
                "volume create: {field} must be an object of strings (value: {v})"
            )))
        }
    }
    Ok(out)
}

fn string(field: &str, v: Option<&Value>) -> Result<String> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(EngineError::Invalid(format!(
            "volume create: {field} must be a string (value: {v})"
        ))),
    }
}

impl CreateVolume {
    /// Reads Docker's `VolumeCreateOptions`. Fails closed: a driver other than `local`
    /// gets Docker's plugin lookup error, and any driver option, a cluster volume or a key
    /// berth does not know is refused by name rather than ignored.
    pub fn parse(body: &Value) -> Result<CreateVolume> {
        let Some(map) = body.as_object() else {
            return Err(EngineError::Invalid(
                "volume create: the body must be an object".into(),
            ));
        };
        for (key, v) in map {
            match key.as_str() {
                "Name" | "Driver" | "DriverOpts" | "Labels" => {}
                "ClusterVolumeSpec" if v.is_null() => {}
                _ => {
                    return Err(EngineError::Invalid(format!(
                        "volume create: {key} is not supported by berth: refused rather than \
                         ignored"
                    )))
                }
            }
        }
        let driver = string("Driver", map.get("Driver"))?;
        if !driver.is_empty() && driver != LOCAL_DRIVER {
            // Docker's words when no plugin of that name is installed (404).
            return Err(EngineError::NotFound(format!(
                "error looking up volume plugin {driver}: plugin \"{driver}\" not found"
            )));
        }
        let opts = string_map("DriverOpts", map.get("DriverOpts").unwrap_or(&Value::Null))?;
        if !opts.is_empty() {
            let names: Vec<&str> = opts.keys().map(String::as_str).collect();
            return Err(EngineError::Invalid(format!(
                "volume create: driver option(s) {} are not supported by berth yet: refused \
                 rather than ignored",
                names.join(", ")
            )));
        }
        Ok(CreateVolume {
            name: string("Name", map.get("Name"))?,
            labels: string_map("Labels", map.get("Labels").unwrap_or(&Value::Null))?,
        })
    }
}

/// A map as Docker writes it: `null` when empty.
fn map_or_null(m: &BTreeMap<String, String>) -> Value {
    if m.is_empty() {
        Value::Null
    } else {
        json!(m)
    }
}

fn is_true(value: &str) -> Option<bool> {
    match value {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// A boolean filter given at most once: several values (`all=false&all=true`) are refused,
/// never combined into the wider choice.
fn one_bool(filters: &Filters, key: &str) -> Result<Option<bool>> {
    match filters.get(key) {
        [] => Ok(None),
        [v] => is_true(v)
            .map(Some)
            .ok_or_else(|| EngineError::Invalid(format!("invalid filter '{key}={v}'"))),
        many => Err(EngineError::Invalid(format!(
            "invalid filter '{key}={}': only one value is expected",
            many.join(",")
        ))),
    }
}

fn hash_labels(v: &Volume) -> HashMap<String, String> {
    v.labels.clone().into_iter().collect()
}

impl Engine {
    /// Docker's `Volume` object for `v`.
    fn volume_json(&self, v: &Volume) -> Value {
        json!({
            "CreatedAt": v.created_at,
            "Driver": v.driver,
            "Labels": map_or_null(&v.labels),
            "Mountpoint": self.volumes.mountpoint(&v.name),
            "Name": v.name,
            "Options": map_or_null(&v.options),
            "Scope": "local",
        })
    }

    pub(crate) fn emit_volume(&self, name: &str, action: &str) {
        let mut attributes = BTreeMap::new();
        attributes.insert("driver".to_string(), LOCAL_DRIVER.to_string());
        self.events.publish(
            berth_api::events::VOLUME,
            action,
            berth_api::events::Actor {
                id: name.to_string(),
                attributes,
            },
        );
    }

    /// `POST /volumes/create` (blocking): the new volume, or the one of that name already
    /// there (Docker's answer for the same driver).
    pub fn volume_create(&self, req: CreateVolume) -> Result<Value> {
        let (v, created) = self
            .volumes
            .create(&req.name, req.labels, BTreeMap::new())?;
        if created {
            self.emit_volume(&v.name, "create");
        }
        Ok(self.volume_json(&v))
    }

    /// `GET /volumes`, filtered as Docker's.
    pub fn volume_list(&self, filters: &Filters) -> Result<Vec<Value>> {
        filters
            .validate(LIST_FILTERS)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let dangling = one_bool(filters, "dangling")?;
        let any = |key: &str, ok: &dyn Fn(&str) -> bool| {
            let wanted = filters.get(key);
            wanted.is_empty() || wanted.iter().any(|w| ok(w))
        };
        Ok(self
            .volumes
            .list()?
            .iter()
            .filter(|v| {
                any("name", &|w| v.name.contains(w))
                    && any("driver", &|w| v.driver == w)
                    && labels_match(filters.get("label"), Some(&hash_labels(v)))
                    // No container mounts a volume yet: every one is dangling.
                    && dangling != Some(false)
            })
            .map(|v| self.volume_json(v))
            .collect())
    }

    /// `GET /volumes/{name}`.
    pub fn volume_inspect(&self, name: &str) -> Result<Value> {
        Ok(self.volume_json(&self.volumes.get(name)?))
    }

    /// `DELETE /volumes/{name}` (blocking); with `force`, a volume that is not there is
    /// no error (Docker's).
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        match self.volumes.remove(name) {
            Ok(()) => {
                self.emit_volume(name, "destroy");
                Ok(())
            }
            Err(VolumeError::NotFound(_)) if force => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// `POST /volumes/prune` (blocking): removes the unused volumes the filters select,
    /// only anonymous ones unless `all=true` (Docker 23+); returns their names and the
    /// bytes their content held.
    pub fn volume_prune(&self, filters: &Filters) -> Result<(Vec<String>, u64)> {
        filters
            .validate(PRUNE_FILTERS)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let all = one_bool(filters, "all")?.unwrap_or(false);
        let unwanted = filters.get("label!");
        let mut removed = Vec::new();
        let mut reclaimed = 0;
        for v in self.volumes.list()? {
            let labels = hash_labels(&v);
            if (!all && !labels.contains_key(ANONYMOUS_LABEL))
                || !labels_match(filters.get("label"), Some(&labels))
                || unwanted
                    .iter()
                    .any(|w| labels_match(std::slice::from_ref(w), Some(&labels)))
            {
                continue;
            }
            let size = match self.volumes.size(&v.name) {
                Ok(size) => size,
                Err(VolumeError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            match self.volumes.remove(&v.name) {
                Ok(()) => {
                    self.emit_volume(&v.name, "destroy");
                    reclaimed += size;
                    removed.push(v.name);
                }
                // Gone already: a removal beside.
                Err(VolumeError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.emit_prune(berth_api::events::VOLUME, reclaimed);
        Ok((removed, reclaimed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_body_reads_name_and_labels() {
        let req = CreateVolume::parse(&json!({
            "Name": "data", "Driver": "local", "Labels": {"a": "b"}, "DriverOpts": {}
        }))
        .unwrap();
        assert_eq!(req.name, "data");
        assert_eq!(req.labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(
            CreateVolume::parse(&json!({})).unwrap(),
            CreateVolume::default()
        );
    }

    #[test]
    fn create_body_fails_closed() {
        let err = |body: Value| CreateVolume::parse(&body).unwrap_err();
        let e = err(json!({"Driver": "nfs"}));
        assert_eq!(e.kind(), crate::ErrorKind::NotFound);
        assert_eq!(
            e.to_string(),
            "error looking up volume plugin nfs: plugin \"nfs\" not found"
        );
        let e = err(json!({"DriverOpts": {"type": "tmpfs", "device": "tmpfs"}}));
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        assert_eq!(
            e.to_string(),
            "volume create: driver option(s) device, type are not supported by berth yet: \
             refused rather than ignored"
        );
        let e = err(json!({"ClusterVolumeSpec": {"Group": "g"}}));
        assert!(e.to_string().contains("ClusterVolumeSpec"), "{e}");
        let e = err(json!({"Bogus": 1}));
        assert!(e.to_string().contains("Bogus"), "{e}");
        assert!(CreateVolume::parse(&json!({"Labels": {"a": 1}})).is_err());
        assert!(CreateVolume::parse(&json!({"ClusterVolumeSpec": null})).is_ok());
    }
}
