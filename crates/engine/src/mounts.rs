//! A container's mounts: planned at create from every way a request asks for them, its
//! volumes taken (made when missing, filled from the image by copy-up) and the plan kept in
//! its record; turned into the runtime's mounts at each start; shown by inspect; its
//! anonymous volumes removed with it when asked.
//!
//! A volume's users are derived from the container records (one source of truth), so a
//! berthd restart cannot make a volume in use look free. [`Engine::volume_use`] is held from
//! a create's taking of its volumes to the insertion of its record, and by `volume rm` and
//! `prune` from looking up a volume's users to removing it: neither can slip between the
//! other's two steps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_api::container::{Config, HostConfig, MountPoint};
use berth_runtime::{ContainerMount, MountKind, ReadOnlyDepth};
use berth_volume::mountspec::{self, MountSpec, MountType};
use serde_json::Value;

use crate::error::{EngineError, Result};
use crate::record::ContainerRecord;
use crate::volumes::ANONYMOUS_LABEL;
use crate::Engine;

fn invalid(e: String) -> EngineError {
    EngineError::Invalid(e)
}

fn duplicate(dest: &str) -> EngineError {
    EngineError::Invalid(format!("Duplicate mount point: {dest}"))
}

/// A record's mounts: the plan of its create, or for a record from before berth had
/// volumes, its `-v` binds.
pub(crate) fn of_record(rec: &ContainerRecord) -> Vec<MountSpec> {
    match &rec.mounts {
        Some(m) => m.clone(),
        None => rec
            .host_config
            .binds
            .iter()
            .flatten()
            .filter_map(|b| mountspec::parse_bind(b).ok())
            .filter(|m| m.kind == MountType::Bind)
            .collect(),
    }
}

/// A record's volume mounts, borrowed (a record from before berth had volumes has none).
pub(crate) fn volume_mounts(rec: &ContainerRecord) -> impl Iterator<Item = &MountSpec> {
    rec.mounts
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|m| m.kind == MountType::Volume)
}

/// The names of a record's volumes that have mount options, or may have (a record from
/// before the plan said): the ones a start mounts on the host and an exit may unmount.
pub(crate) fn optioned_volume_names(rec: &ContainerRecord) -> Vec<String> {
    volume_mounts(rec)
        .filter(|m| m.volume_options != Some(false))
        .map(|m| m.source.clone())
        .collect()
}

/// `Mounts` of inspect and list, as Docker shows them.
pub(crate) fn mount_points(engine: &Engine, rec: &ContainerRecord) -> Vec<MountPoint> {
    of_record(rec)
        .into_iter()
        .filter(|m| !m.unlisted)
        .map(|m| {
            let (name, source, driver, propagation) = match m.kind {
                MountType::Bind => (
                    None,
                    m.source.clone(),
                    None,
                    m.propagation.as_str().to_string(),
                ),
                MountType::Volume => (
                    Some(m.source.clone()),
                    engine.volumes.mountpoint(&m.source).display().to_string(),
                    Some(berth_volume::LOCAL_DRIVER.to_string()),
                    String::new(),
                ),
                MountType::Tmpfs => (None, String::new(), None, String::new()),
            };
            MountPoint {
                kind: m.kind.as_str().into(),
                name,
                source,
                destination: m.destination,
                driver,
                mode: m.mode,
                rw: !m.readonly,
                propagation,
            }
        })
        .collect()
}

/// An entry of `HostConfig.extra` that must be an array of strings.
fn strings(hc: &HostConfig, key: &str) -> Result<Vec<String>> {
    match hc.extra.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str().map(String::from).ok_or_else(|| {
                    invalid(format!(
                        "HostConfig.{key} must be an array of strings (value: {v})"
                    ))
                })
            })
            .collect(),
        Some(v) => Err(invalid(format!(
            "HostConfig.{key} must be an array of strings (value: {v})"
        ))),
    }
}

/// Whether a mount at `dest` is already in `plan`.
fn has(plan: &[MountSpec], dest: &str) -> bool {
    plan.iter().any(|m| m.destination == dest)
}

impl Engine {
    /// Everything a create asks to mount, checked, in Docker's order (`registerMountPoints`):
    /// `--volumes-from` (a later mount on the same destination replaces one of these), `-v`,
    /// `--mount`, `--tmpfs`, then an anonymous volume for each `Config.Volumes` path (the
    /// image's `VOLUME`s merged in) that nothing else mounts. Two explicit mounts on one
    /// destination are refused with Docker's words. Nothing is made yet.
    pub(crate) fn plan_mounts(&self, config: &Config, hc: &HostConfig) -> Result<Vec<MountSpec>> {
        match hc.extra.get("VolumeDriver") {
            None | Some(Value::Null) => {}
            Some(Value::String(d)) => mountspec::check_driver(d).map_err(invalid)?,
            Some(v) => {
                return Err(invalid(format!(
                    "HostConfig.VolumeDriver must be a string (value: {v})"
                )))
            }
        }
        let mut plan: Vec<MountSpec> = Vec::new();
        for from in strings(hc, "VolumesFrom")? {
            let (name, rw) = mountspec::parse_volumes_from(&from).map_err(invalid)?;
            // 400, not 404: a 404 of a create is an image to pull for the docker CLI.
            let other = self
                .get(&name)
                .map_err(|_| invalid(format!("No such container: {name}")))?;
            let rec = other.record().clone();
            for mut m in of_record(&rec) {
                if m.kind == MountType::Tmpfs {
                    continue;
                }
                m.readonly = m.readonly || !rw;
                // moby's copy of a mount point has no `Mode`: inspect shows "" (`RW` says
                // what is in effect).
                m.mode = String::new();
                m.copy = false;
                m.create_source = false;
                m.from = rec.id.clone();
                plan.retain(|p| p.destination != m.destination);
                plan.push(m);
            }
        }
        let mut explicit: Vec<MountSpec> = Vec::new();
        for raw in hc.binds.iter().flatten() {
            explicit.push(mountspec::parse_bind(raw).map_err(invalid)?);
        }
        match hc.extra.get("Mounts") {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                for v in list {
                    let exists = |p: &str| std::fs::symlink_metadata(p).is_ok();
                    explicit.push(mountspec::parse_mount(v, &exists).map_err(invalid)?);
                }
            }
            Some(v) => {
                return Err(invalid(format!(
                    "HostConfig.Mounts must be an array (value: {v})"
                )))
            }
        }
        match hc.extra.get("Tmpfs") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (dest, opts) in map {
                    let Some(opts) = opts.as_str() else {
                        return Err(invalid(format!(
                            "HostConfig.Tmpfs values must be strings (value: {opts})"
                        )));
                    };
                    explicit.push(mountspec::parse_tmpfs(dest, opts).map_err(invalid)?);
                }
            }
            Some(v) => {
                return Err(invalid(format!(
                    "HostConfig.Tmpfs must be an object (value: {v})"
                )))
            }
        }
        for (i, m) in explicit.iter().enumerate() {
            if explicit[..i].iter().any(|o| o.destination == m.destination) {
                return Err(duplicate(&m.destination));
            }
            if m.kind == MountType::Tmpfs {
                // Named as given: `--tmpfs` (the only mounts left unlisted) or `--mount`.
                let given = if m.unlisted { "--tmpfs" } else { "tmpfs" };
                berth_runtime::TmpfsOptions::parse(&m.tmpfs)
                    .map_err(|e| invalid(format!("{given} {}: {e}", m.destination)))?;
            }
        }
        plan.retain(|p| !has(&explicit, &p.destination));
        plan.extend(explicit);
        for m in &plan {
            check_proc_destination(&m.destination)?;
            check_shared_destination(m)?;
        }
        let mut paths: Vec<&String> = config.volumes.iter().flat_map(|v| v.keys()).collect();
        paths.sort();
        for path in paths {
            if !path.starts_with('/') {
                return Err(invalid(format!(
                    "invalid mount path: '{path}' mount path must be absolute"
                )));
            }
            let dest = mountspec::clean(path);
            if dest == "/" {
                return Err(invalid(
                    "invalid volume specification: '/': invalid mount config for type \
                     \"volume\": invalid specification: destination can't be '/'"
                        .into(),
                ));
            }
            if has(&plan, &dest) {
                continue;
            }
            check_proc_destination(&dest)?;
            plan.push(MountSpec {
                kind: MountType::Volume,
                destination: dest,
                anonymous: true,
                copy: true,
                ..MountSpec::default()
            });
        }
        Ok(plan)
    }

    /// Takes the plan's volumes for the container `id` (whose snapshot exists): names its
    /// anonymous volumes, makes the volumes that are missing, and fills each new empty one
    /// that wants it with the image's content at its destination. Returns the names of the
    /// volumes it made, for [`Engine::drop_new_volumes`] if the create fails later. Runs
    /// without [`Engine::volume_use`] (a long copy-up holds up no other create or removal);
    /// the caller then takes it and [`Engine::check_volumes`] before the record goes in.
    pub(crate) fn take_volumes(&self, id: &str, plan: &mut [MountSpec]) -> Result<Vec<String>> {
        let mut made = Vec::new();
        let result =
            (|| {
                for m in plan.iter_mut().filter(|m| m.kind == MountType::Volume) {
                    if !m.from.is_empty() {
                        // Another container's volume (`--volumes-from`): taken, never made. One
                        // gone since the plan read that container's record (an `rm -v` or a
                        // `volume rm` that won the race) fails the create, as Docker's `Get`,
                        // rather than mounting an empty volume of that name in its place.
                        // 400, not 404: a 404 of a create is an image to pull for the docker CLI.
                        self.volumes.get(&m.source).map_err(|e| match e {
                            berth_volume::VolumeError::NotFound(_) => invalid(e.to_string()),
                            e => e.into(),
                        })?;
                        continue;
                    }
                    let mut labels = m.labels.clone();
                    if m.source.is_empty() {
                        // Docker's `VolumesService.Create`: the request's labels and its own.
                        m.source = berth_volume::random_name();
                        labels.insert(ANONYMOUS_LABEL.to_string(), String::new());
                    }
                    // A volume of mount options is filled at start, once it is mounted.
                    let copy = m.copy && m.driver_opts.is_empty();
                    let copy_up = |name: &str, data: &Path| {
                        self.images
                            .copy_up(id, &m.destination, data)
                            .map(|_| ())
                            .map_err(|e| {
                                tracing::warn!(container = %id, volume = %name, "copy-up: {e}");
                                EngineError::Invalid(format!(
                                    "copying the image's content at {} into volume {name}: {}",
                                    m.destination,
                                    io_reason(&e)
                                ))
                            })
                    };
                    let name = m.source.clone();
                    // A new volume is filled before it appears (a crash leaves it whole or not
                    // at all); no lock is held meanwhile.
                    let (v, created) = self.volumes.create_with(
                        &m.source,
                        labels,
                        m.driver_opts.clone(),
                        |data| if copy { copy_up(&name, data) } else { Ok(()) },
                    )?;
                    if created {
                        made.push(v.name.clone());
                        self.emit_volume(&v.name, "create");
                    } else if copy && v.options.is_empty() {
                        // One there already is filled only if it is empty (copy_up checks).
                        copy_up(&v.name, &self.volumes.mountpoint(&v.name))?;
                    }
                }
                Ok(())
            })();
        match result {
            Ok(()) => Ok(made),
            Err(e) => {
                self.drop_new_volumes(&made);
                Err(e)
            }
        }
    }

    /// Under [`Engine::volume_use`], after [`Engine::take_volumes`]: every volume of the
    /// plan is still there (a `volume rm` or `prune` may have taken one in between, while
    /// it had no user yet). Records in the plan whether each has mount options: from the
    /// record's insertion on it cannot be removed (nor made again otherwise), so a start
    /// need not read it.
    pub(crate) fn check_volumes(&self, plan: &mut [MountSpec]) -> Result<()> {
        for m in plan.iter_mut().filter(|m| m.kind == MountType::Volume) {
            match self.volumes.get(&m.source) {
                Ok(v) => m.volume_options = Some(!v.options.is_empty()),
                Err(berth_volume::VolumeError::NotFound(_)) => {
                    return Err(invalid(format!(
                        "volume {} was removed while this container was being created",
                        m.source
                    )))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Removes volumes a failed create made that no container uses (best effort; logged).
    /// Takes [`Engine::volume_use`].
    pub(crate) fn drop_new_volumes(&self, names: &[String]) {
        if names.is_empty() {
            return;
        }
        let _use = self.volume_use.lock().expect("volume use lock");
        self.drop_new_volumes_held(names);
    }

    /// [`Engine::drop_new_volumes`] with [`Engine::volume_use`] held by the caller.
    pub(crate) fn drop_new_volumes_held(&self, names: &[String]) {
        for name in names {
            if !self.volume_users(name).is_empty() {
                continue;
            }
            match self.volumes.remove(name) {
                Ok(()) => self.emit_volume(name, "destroy"),
                Err(e) => tracing::warn!(volume = %name, "removing after a failed create: {e}"),
            }
        }
    }

    /// The runtime's mounts for a start of `rec`, sorted so that a mount inside another
    /// comes after it (Docker's `sortMounts`). A `-v` bind's missing host path is made as a
    /// directory now, as Docker does at start.
    pub(crate) fn runtime_mounts(&self, rec: &ContainerRecord) -> Result<Vec<ContainerMount>> {
        let mut out = Vec::new();
        for m in of_record(rec) {
            let mount = match m.kind {
                MountType::Bind => {
                    let source = PathBuf::from(&m.source);
                    if m.create_source && std::fs::symlink_metadata(&source).is_err() {
                        use std::os::unix::fs::DirBuilderExt;
                        std::fs::DirBuilder::new()
                            .recursive(true)
                            .mode(0o755)
                            .create(&source)
                            .map_err(|e| EngineError::io("create bind source", &source, e))?;
                    }
                    crate::binds::check_propagation_source(&source, m.propagation)?;
                    ContainerMount {
                        kind: MountKind::Bind,
                        source,
                        destination: m.destination.clone(),
                        readonly: m.readonly,
                        propagation: runtime_propagation(m.propagation),
                        nonrecursive: m.nonrecursive,
                        readonly_depth: match m.readonly_depth {
                            mountspec::ReadOnlyDepth::Recursive => ReadOnlyDepth::Recursive,
                            mountspec::ReadOnlyDepth::NonRecursive => ReadOnlyDepth::NonRecursive,
                            mountspec::ReadOnlyDepth::Force => ReadOnlyDepth::Force,
                        },
                        options: Vec::new(),
                    }
                }
                MountType::Volume => {
                    // A plain volume (as the plan recorded it) is bound as it is: no read of
                    // its `volume.json` at each start. The others, and those of a record
                    // from before the plan said, are read: gone only if lost by hand (say
                    // so, never mount an empty directory in its place), mounted if they
                    // have options.
                    if m.volume_options != Some(false) {
                        let v = self.volumes.get(&m.source)?;
                        if self.activate_volume(&v)? && m.copy {
                            // A volume of mount options is filled once it is mounted: what
                            // a copy at create wrote would lie under the mount.
                            let dest = self.volumes.mountpoint(&v.name);
                            self.images
                                .copy_up(&rec.id, &m.destination, &dest)
                                .map_err(|e| {
                                    EngineError::Invalid(format!(
                                        "copying the image's content at {} into volume {}: {}",
                                        m.destination,
                                        v.name,
                                        io_reason(&e)
                                    ))
                                })?;
                        }
                    }
                    ContainerMount {
                        kind: MountKind::Bind,
                        source: self.volumes.mountpoint(&m.source),
                        destination: m.destination.clone(),
                        readonly: m.readonly,
                        ..ContainerMount::default()
                    }
                }
                MountType::Tmpfs => ContainerMount {
                    kind: MountKind::Tmpfs,
                    destination: m.destination.clone(),
                    readonly: m.readonly,
                    options: m.tmpfs.clone(),
                    ..ContainerMount::default()
                },
            };
            out.push(mount);
        }
        out.sort_by_key(|m| Path::new(&m.destination).components().count());
        Ok(out)
    }

    /// Mounts a volume of mount options (`volume create -o type=...`) on its `_data`, on the
    /// host, unless it is mounted already (Docker's local driver mounts at the first running
    /// user). Returns whether it has mount options.
    pub(crate) fn activate_volume(&self, v: &berth_volume::Volume) -> Result<bool> {
        let Some(mount) = berth_volume::local::LocalMount::from_options(&v.options)
            .map_err(EngineError::Invalid)?
        else {
            return Ok(false);
        };
        let data = self.volumes.mountpoint(&v.name);
        let _use = self.volume_use.lock().expect("volume use lock");
        let mounted = berth_volume::local::mounted_at(&data)
            .map_err(|e| EngineError::io("read the mounts of", &data, e))?;
        if !mounted {
            mount.mount(&data).map_err(|e| {
                tracing::warn!(volume = %v.name, "mount {mount:?}: {e}");
                EngineError::Invalid(format!("failed to mount local volume {}: {e}", v.name))
            })?;
        }
        Ok(true)
    }

    /// After a container's run: unmounts each of its volumes of mount options that no
    /// running container uses any more (Docker's unmount at the last user). Failures are
    /// logged; the volume stays mounted and its removal is refused while it is.
    pub(crate) fn release_volumes(&self, id: &str, volumes: &[String]) {
        if volumes.is_empty() {
            return;
        }
        let _use = self.volume_use.lock().expect("volume use lock");
        for name in volumes {
            let Ok(v) = self.volumes.get(name) else {
                continue;
            };
            if v.options.is_empty() {
                continue;
            }
            let running = {
                let map = self.containers.read().expect("containers lock");
                map.values().any(|c| {
                    c.id != id
                        && volume_mounts(&c.record()).any(|o| o.source == v.name)
                        && c.state().status.is_active()
                })
            };
            if running {
                continue;
            }
            let data = self.volumes.mountpoint(&v.name);
            if let Err(e) = berth_volume::local::unmount(&data) {
                tracing::warn!(volume = %v.name, "unmounting after its last user: {e}");
            }
        }
    }

    /// Docker's `volume mount` (each volume, at a start: driver, container, destination,
    /// read/write, propagation) or `volume unmount` (at the end of a run: driver,
    /// container) events for `rec`'s volumes.
    pub(crate) fn emit_volume_mounts(&self, rec: &ContainerRecord, mount: bool) {
        for m in volume_mounts(rec) {
            let mut attributes = BTreeMap::new();
            attributes.insert("driver".to_string(), berth_volume::LOCAL_DRIVER.to_string());
            attributes.insert("container".to_string(), rec.id.clone());
            if mount {
                attributes.insert("destination".to_string(), m.destination.clone());
                attributes.insert("read/write".to_string(), (!m.readonly).to_string());
                attributes.insert("propagation".to_string(), String::new());
            }
            self.events.publish(
                berth_api::events::VOLUME,
                if mount { "mount" } else { "unmount" },
                berth_api::events::Actor {
                    id: m.source.clone(),
                    attributes,
                },
            );
        }
    }

    /// The ids of the containers whose records mount the volume `name`, in any state.
    /// The caller holds [`Engine::volume_use`] while it acts on the answer.
    pub(crate) fn volume_users(&self, name: &str) -> Vec<String> {
        let map = self.containers.read().expect("containers lock");
        let mut ids: Vec<String> = map
            .values()
            .filter(|c| volume_mounts(&c.record()).any(|m| m.source == name))
            .map(|c| c.id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// After a container's record is gone (`rm -v`, `--rm`): removes its anonymous volumes
    /// that no other container uses (one from `--volumes-from` is kept while its first
    /// container is there, as in Docker). Blocking; failures are logged.
    pub(crate) fn remove_anonymous_volumes(&self, mounts: &[MountSpec]) {
        let _use = self.volume_use.lock().expect("volume use lock");
        for m in mounts
            .iter()
            .filter(|m| m.kind == MountType::Volume && m.anonymous)
        {
            if !self.volume_users(&m.source).is_empty() {
                continue;
            }
            match self.volumes.remove(&m.source) {
                Ok(()) => self.emit_volume(&m.source, "destroy"),
                Err(berth_volume::VolumeError::NotFound(_)) => {}
                Err(e) => tracing::warn!(volume = %m.source, "removing with its container: {e}"),
            }
        }
    }
}

/// The files under `/proc` a mount may cover (runc's `checkProcMount`: what lxcfs and the
/// like replace); anything else there is refused in runc's words, as Docker's runc does:
/// a mount over `/proc/sys` or `/proc/self` would undo the container's masked paths.
const PROC_MOUNTABLE: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// A `shared` bind on or under `/proc`, `/sys` or `/dev` is refused: berth mounts there
/// itself (masks, read-only paths, the console, devices), and those mounts would reach the
/// host through the bind's peer group.
fn check_shared_destination(m: &MountSpec) -> Result<()> {
    use mountspec::Propagation::{RShared, Shared};
    if !matches!(m.propagation, Shared | RShared) {
        return Ok(());
    }
    for dir in ["/proc", "/sys", "/dev"] {
        if m.destination == dir || m.destination.starts_with(&format!("{dir}/")) {
            return Err(invalid(format!(
                "bind propagation {} on {} is refused: berth mounts under {dir} itself, and \
                 those mounts would reach the host",
                m.propagation.as_str(),
                m.destination
            )));
        }
    }
    Ok(())
}

fn check_proc_destination(dest: &str) -> Result<()> {
    if (dest == "/proc" || dest.starts_with("/proc/")) && !PROC_MOUNTABLE.contains(&dest) {
        return Err(invalid(format!(
            "\"{dest}\" cannot be mounted because it is inside /proc"
        )));
    }
    Ok(())
}

fn runtime_propagation(p: mountspec::Propagation) -> berth_runtime::Propagation {
    match p {
        mountspec::Propagation::Private => berth_runtime::Propagation::Private,
        mountspec::Propagation::RPrivate => berth_runtime::Propagation::RPrivate,
        mountspec::Propagation::Slave => berth_runtime::Propagation::Slave,
        mountspec::Propagation::RSlave => berth_runtime::Propagation::RSlave,
        mountspec::Propagation::Shared => berth_runtime::Propagation::Shared,
        mountspec::Propagation::RShared => berth_runtime::Propagation::RShared,
    }
}

/// An image store error's reason without the store's paths.
fn io_reason(e: &berth_image::ImageError) -> String {
    match e {
        berth_image::ImageError::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}
