//! The volume API: `POST /volumes/create`, `GET /volumes`, `GET /volumes/{name}`,
//! `DELETE /volumes/{name}` and `POST /volumes/prune`, in Docker's shapes and words, over
//! `berth-volume`'s store. The local driver only, without options: a volume is a directory.
//! A volume's users are the containers whose records mount it (mounts.rs): one in use is
//! neither removed (409, even with `force`, as Docker) nor pruned, and is not dangling.
//! The decision and the removal happen under [`Engine::volume_use`] and the store's lock,
//! so no container can take a volume between the two.

use std::collections::{BTreeMap, HashMap};
use std::sync::{PoisonError, TryLockError};

use berth_api::filters::{labels_match, Filters};
use berth_api::query::go_bool;
use berth_volume::{Volume, VolumeError, LOCAL_DRIVER};
use regex::Regex;
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

/// Docker's answer to a second prune while one runs (409).
const PRUNE_RUNNING: &str = "a prune operation is already running";

/// `POST /volumes/create`'s body (Docker's `VolumeCreateOptions`), field by field.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CreateVolume {
    /// Empty: a random name.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The local driver's mount options (`-o type=tmpfs ...`), checked
    /// (`berth_volume::local`).
    pub options: BTreeMap<String, String>,
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
        let options = string_map("DriverOpts", map.get("DriverOpts").unwrap_or(&Value::Null))?;
        berth_volume::local::LocalMount::from_options(&options).map_err(EngineError::Invalid)?;
        Ok(CreateVolume {
            name: string("Name", map.get("Name"))?,
            labels: string_map("Labels", map.get("Labels").unwrap_or(&Value::Null))?,
            options,
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

/// The values of `key` once each, as Docker's filters hold them (a set), sorted.
fn distinct(filters: &Filters, key: &str) -> Vec<String> {
    let mut values = filters.get(key).to_vec();
    values.sort();
    values.dedup();
    values
}

/// Go's `%s` of a `[]string`: `[a b]`.
fn go_list(values: &[String]) -> String {
    format!("[{}]", values.join(" "))
}

/// `prune`'s `all` (Docker's `withPrune`): one value at most, in `strconv.ParseBool`'s
/// spellings; several values (`all=false&all=true`) are refused, never combined into the
/// wider choice.
fn prune_all(filters: &Filters) -> Result<bool> {
    match distinct(filters, "all").as_slice() {
        [] => Ok(false),
        [v] => go_bool(v).ok_or_else(|| {
            EngineError::Invalid(format!(
                "invalid filter 'all': strconv.ParseBool: parsing {v:?}: invalid syntax"
            ))
        }),
        many => Err(EngineError::Invalid(format!(
            "invalid filter 'all={}': only one value is expected",
            go_list(many)
        ))),
    }
}

/// `volume ls`'s `dangling` (Docker's `GetBoolOrDefault`): `true`/`1` or `false`/`0`, other
/// values passed over; none of either, or both, is refused.
fn list_dangling(filters: &Filters) -> Result<Option<bool>> {
    if !filters.contains("dangling") {
        return Ok(None);
    }
    let values = distinct(filters, "dangling");
    let is_true = values.iter().any(|v| v == "true" || v == "1");
    let is_false = values.iter().any(|v| v == "false" || v == "0");
    if is_true == is_false {
        return Err(EngineError::Invalid(if values.is_empty() {
            "invalid filter 'dangling'".to_string()
        } else {
            format!("invalid filter 'dangling={}'", go_list(&values))
        }));
    }
    Ok(Some(is_true))
}

/// `volume ls`'s `name` values: each a regular expression matched anywhere in the name (Go's
/// `regexp.MatchString`, as Docker's `filters.Match`), or the exact name. Docker passes an
/// invalid one over silently; berth refuses it by name.
fn name_patterns(filters: &Filters) -> Result<Vec<(String, Regex)>> {
    filters
        .get("name")
        .iter()
        .map(|w| match Regex::new(w) {
            Ok(re) => Ok((w.clone(), re)),
            Err(e) => {
                let why = e.to_string();
                let why = why.lines().last().unwrap_or_default().trim().to_string();
                Err(EngineError::Invalid(format!(
                    "invalid filter 'name={w}': not a regular expression ({why})"
                )))
            }
        })
        .collect()
}

/// Docker's refusal of a volume in use (its `OpErr`): the users' full ids.
fn in_use(name: &str, users: &[String]) -> EngineError {
    EngineError::Conflict(format!(
        "remove {name}: volume is in use - [{}]",
        users.join(", ")
    ))
}

/// Why prune passed a volume over at the moment of removing it.
enum Passed {
    /// Re-created or relabelled since it was listed, or now in use.
    NotSelected,
    Store(VolumeError),
}

impl From<VolumeError> for Passed {
    fn from(e: VolumeError) -> Self {
        Passed::Store(e)
    }
}

fn hash_labels(v: &Volume) -> HashMap<String, String> {
    v.labels.clone().into_iter().collect()
}

impl Engine {
    /// Docker's `Volume` object for `v`.
    pub(crate) fn volume_json(&self, v: &Volume) -> Value {
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
    /// A volume made without a name is labelled anonymous (Docker's `VolumesService.Create`),
    /// so that a plain `volume prune` takes it.
    pub fn volume_create(&self, req: CreateVolume) -> Result<Value> {
        let mut labels = req.labels;
        if req.name.is_empty() {
            labels.insert(ANONYMOUS_LABEL.to_string(), String::new());
        }
        let (v, created) = self.volumes.create(&req.name, labels, req.options)?;
        if created {
            self.emit_volume(&v.name, "create");
        }
        Ok(self.volume_json(&v))
    }

    /// Each volume's number of users (the records that mount it, in any state), in one
    /// pass over the records; a volume no record mounts is absent. A snapshot: for a
    /// listing, not for deciding a removal ([`Engine::volume_users`] under
    /// [`Engine::volume_use`]).
    pub(crate) fn volume_refcounts(&self) -> HashMap<String, usize> {
        let map = self.containers.read().expect("containers lock");
        let mut counts = HashMap::new();
        for c in map.values() {
            let rec = c.record();
            let mut names: Vec<&str> = crate::mounts::volume_mounts(&rec)
                .map(|m| m.source.as_str())
                .collect();
            names.sort_unstable();
            names.dedup();
            for name in names {
                *counts.entry(name.to_string()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// `GET /volumes`, filtered as Docker's.
    pub fn volume_list(&self, filters: &Filters) -> Result<Vec<Value>> {
        filters
            .validate(LIST_FILTERS)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let dangling = list_dangling(filters)?;
        let names = name_patterns(filters)?;
        let drivers = filters.get("driver");
        // Counted once for the whole listing, not once per volume.
        let refcounts = if dangling.is_some() {
            self.volume_refcounts()
        } else {
            HashMap::new()
        };
        Ok(self
            .volumes
            .list()?
            .iter()
            .filter(|v| {
                (names.is_empty()
                    || names
                        .iter()
                        .any(|(w, re)| *w == v.name || re.is_match(&v.name)))
                    && (drivers.is_empty() || drivers.contains(&v.driver))
                    && labels_match(filters.get("label"), Some(&hash_labels(v)))
                    && dangling.is_none_or(|d| refcounts.contains_key(&v.name) != d)
            })
            .map(|v| self.volume_json(v))
            .collect())
    }

    /// `GET /volumes/{name}`.
    pub fn volume_inspect(&self, name: &str) -> Result<Value> {
        Ok(self.volume_json(&self.volumes.get(name)?))
    }

    /// `DELETE /volumes/{name}` (blocking); with `force`, a volume that is not there is
    /// no error (Docker's), but one in use is refused all the same (409).
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        let _use = self
            .volume_use
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let removed = self.volumes.remove_if(name, |v| {
            let users = self.volume_users(&v.name);
            if users.is_empty() {
                Ok(())
            } else {
                Err(in_use(&v.name, &users))
            }
        });
        match removed {
            Ok(()) => {
                self.emit_volume(name, "destroy");
                Ok(())
            }
            Err(EngineError::Volume(VolumeError::NotFound(_))) if force => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `POST /volumes/prune` (blocking): removes the unused volumes the filters select,
    /// only anonymous ones unless `all=true` (Docker 23+); returns their names and the
    /// bytes their content held. One prune at a time (Docker's 409 for a second). A volume
    /// that cannot be removed is logged and passed over (Docker's): the others still go.
    pub fn volume_prune(&self, filters: &Filters) -> Result<(Vec<String>, u64)> {
        let _pruning = match self.volume_prune.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(EngineError::Conflict(PRUNE_RUNNING.to_string()))
            }
        };
        filters
            .validate(PRUNE_FILTERS)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let all = prune_all(filters)?;
        let unwanted = filters.get("label!");
        let selected = |v: &Volume| {
            let labels = hash_labels(v);
            (all || labels.contains_key(ANONYMOUS_LABEL))
                && labels_match(filters.get("label"), Some(&labels))
                && !unwanted
                    .iter()
                    .any(|w| labels_match(std::slice::from_ref(w), Some(&labels)))
        };
        let mut removed = Vec::new();
        let mut reclaimed = 0;
        for listed in self.volumes.list()?.into_iter().filter(|v| selected(v)) {
            let name = &listed.name;
            // Walked before the locks are taken, so that a long walk keeps no container
            // create waiting; what is removed is checked to be the volume walked.
            let size = match self.volumes.size(name) {
                Ok(size) => size,
                Err(VolumeError::NotFound(_)) => continue,
                Err(e) => {
                    tracing::warn!("volume prune: the size of {name} is unknown: {e}");
                    0
                }
            };
            let _use = self
                .volume_use
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let outcome = self.volumes.remove_if(name, |now| {
                if *now != listed || !self.volume_users(name).is_empty() {
                    Err(Passed::NotSelected)
                } else {
                    Ok(())
                }
            });
            match outcome {
                Ok(()) => {
                    self.emit_volume(name, "destroy");
                    reclaimed += size;
                    removed.push(listed.name);
                }
                // Gone already (a removal beside), changed, or taken by a container.
                Err(Passed::NotSelected | Passed::Store(VolumeError::NotFound(_))) => {}
                Err(Passed::Store(e)) => tracing::warn!("volume prune: {name} not removed: {e}"),
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
        let e = err(json!({"DriverOpts": {"type": "tmpfs"}}));
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        assert_eq!(e.to_string(), "missing required option: \"device\"");
        let e = err(json!({"DriverOpts": {"type": "nfs", "device": ":/x"}}));
        assert!(
            e.to_string()
                .contains("type=nfs is not supported by berth yet"),
            "{e}"
        );
        let ok = CreateVolume::parse(&json!({"DriverOpts": {"type": "tmpfs", "device": "tmpfs"}}))
            .unwrap();
        assert_eq!(ok.options.len(), 2);
        let e = err(json!({"ClusterVolumeSpec": {"Group": "g"}}));
        assert!(e.to_string().contains("ClusterVolumeSpec"), "{e}");
        let e = err(json!({"Bogus": 1}));
        assert!(e.to_string().contains("Bogus"), "{e}");
        assert!(CreateVolume::parse(&json!({"Labels": {"a": 1}})).is_err());
        assert!(CreateVolume::parse(&json!({"ClusterVolumeSpec": null})).is_ok());
    }

    fn filters(pairs: &[(&str, &str)]) -> Filters {
        let mut f = Filters::default();
        for (k, v) in pairs {
            f.add(k, v);
        }
        f
    }

    #[test]
    fn all_takes_go_parsebool_spellings_once() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert!(prune_all(&filters(&[("all", t)])).unwrap(), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert!(!prune_all(&filters(&[("all", f)])).unwrap(), "{f}");
        }
        assert!(!prune_all(&filters(&[])).unwrap());
        // The same value twice is one value (Docker's filters are sets).
        assert!(prune_all(&filters(&[("all", "true"), ("all", "true")])).unwrap());
        let e = prune_all(&filters(&[("all", "yes")])).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        assert_eq!(
            e.to_string(),
            "invalid filter 'all': strconv.ParseBool: parsing \"yes\": invalid syntax"
        );
        let e = prune_all(&filters(&[("all", "true"), ("all", "false")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid filter 'all=[false true]': only one value is expected"
        );
    }

    #[test]
    fn dangling_reads_as_dockers_get_bool_or_default() {
        let d = |pairs: &[(&str, &str)]| list_dangling(&filters(pairs));
        assert_eq!(d(&[]).unwrap(), None);
        assert_eq!(d(&[("dangling", "true")]).unwrap(), Some(true));
        assert_eq!(d(&[("dangling", "1")]).unwrap(), Some(true));
        assert_eq!(d(&[("dangling", "0")]).unwrap(), Some(false));
        assert_eq!(d(&[("dangling", "false")]).unwrap(), Some(false));
        assert_eq!(
            d(&[("dangling", "true"), ("dangling", "1")]).unwrap(),
            Some(true)
        );
        assert_eq!(
            d(&[("dangling", "maybe")]).unwrap_err().to_string(),
            "invalid filter 'dangling=[maybe]'"
        );
        assert_eq!(
            d(&[("dangling", "true"), ("dangling", "0")])
                .unwrap_err()
                .to_string(),
            "invalid filter 'dangling=[0 true]'"
        );
        let mut empty = Filters::default();
        empty.0.insert("dangling".into(), Vec::new());
        assert_eq!(
            list_dangling(&empty).unwrap_err().to_string(),
            "invalid filter 'dangling'"
        );
    }

    #[test]
    fn name_filters_are_regular_expressions() {
        let pats = name_patterns(&filters(&[("name", "^db-"), ("name", "a.a$")])).unwrap();
        let hit = |n: &str| pats.iter().any(|(w, re)| w == n || re.is_match(n));
        assert!(hit("db-data"));
        assert!(hit("mydata"));
        assert!(!hit("web-db-"));
        let e = name_patterns(&filters(&[("name", "a[")])).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        assert!(
            e.to_string()
                .starts_with("invalid filter 'name=a[': not a regular expression ("),
            "{e}"
        );
        assert!(!e.to_string().contains('\n'), "{e}");
    }

    #[test]
    fn in_use_is_dockers_conflict() {
        let e = in_use("data", &["abc".into(), "def".into()]);
        assert_eq!(e.kind(), crate::ErrorKind::Conflict);
        assert_eq!(e.to_string(), "remove data: volume is in use - [abc, def]");
    }
}
