//! `POST /containers/create`: merge the image's config, reserve the name, prepare the
//! snapshot, write the record.

use std::sync::Arc;

use chrono::Utc;
use rand::RngCore;

use berth_api::container::{Config, CreateRequest};

use crate::container::Container;
use crate::error::{EngineError, Result};
use crate::fsutil::write_json;
use crate::names;
use crate::record::{ContainerRecord, ContainerState};
use crate::spec::{check_cgroupns, validate_config, validate_host_config, HostResources};
use crate::Engine;

impl Engine {
    /// Creates a container; returns its id and warnings. `platform` is the request's
    /// `platform` parameter (`docker run --platform`): the image must be of it.
    pub fn create(
        &self,
        name: Option<&str>,
        platform: Option<&str>,
        req: CreateRequest,
    ) -> Result<(String, Vec<String>)> {
        let requested_name = name
            .filter(|n| !n.is_empty())
            .map(names::validate)
            .transpose()?;
        if req.config.image.is_empty() {
            return Err(EngineError::Invalid("config.Image must be set".into()));
        }
        let readonly_binds_non_recursive = req.readonly_binds_non_recursive;
        let mut host_config = req.host_config.unwrap_or_default();
        if host_config.network_mode.is_empty() {
            host_config.network_mode = "default".into();
        }
        // Docker records the driver in use: SDKs read it (docker-py's `run` returns the
        // output only when it says json-file).
        if host_config.log_config.kind.is_empty() {
            host_config.log_config.kind = "json-file".into();
        }
        // The layout the shims will get (berthd detects it at start; else it is read now).
        let cgroup_v2 = match &self.cfg.cgroup_layout {
            Some(layout) => layout.is_v2(),
            None => berth_runtime::cgroups::Layout::detect().is_ok_and(|l| l.is_v2()),
        };
        // Docker's own words for the cgroup namespace mode the layout does not give.
        check_cgroupns(&host_config, cgroup_v2)?;
        crate::unapplied::refuse_unapplied(
            &req.config,
            &host_config,
            req.networking_config.as_ref(),
            cgroup_v2,
        )?;
        crate::isolation::fill_defaults(&mut host_config);
        validate_host_config(&host_config, &HostResources::read())?;
        let network = self.network_mode(&host_config.network_mode)?;
        if let crate::network::Mode::Container(other) = &network {
            // 400: a 404 of a create is an image to pull for the docker CLI.
            self.get(other)
                .map_err(|_| EngineError::Invalid(format!("No such container: {other}")))?;
        }
        let endpoints = self.endpoints_at_create(
            &host_config.network_mode,
            &network,
            req.networking_config
                .as_ref()
                .and_then(|n| n.endpoints_config.as_ref()),
            req.config.mac_address.as_deref(),
        )?;
        // Docker's `adaptContainerSettings`: a memory limit alone allows as much swap again
        // (inspect shows it, and `docker update --memory` is checked against it).
        if host_config.memory > 0 && host_config.memory_swap == 0 {
            host_config.memory_swap = host_config.memory.saturating_mul(2);
        }
        crate::isolation::validate_config(&req.config, &host_config)?;
        crate::restart::validate(&host_config)?;
        let image = self.images.resolve(&req.config.image)?;
        if let Some(wanted) = platform.filter(|p| !p.is_empty()) {
            check_platform(&req.config.image, wanted, &image.config)?;
        }
        let mut config = merge_image_config(req.config, &image.config.config);
        validate_config(&config)?;
        let mut mounts = self.plan_mounts(&config, &host_config)?;
        if readonly_binds_non_recursive {
            // A client older than API 1.44: its own read-only binds (not those taken by
            // --volumes-from) stay read-only on their own mount only, as Docker keeps them.
            for m in mounts.iter_mut().filter(|m| {
                m.kind == berth_volume::mountspec::MountType::Bind
                    && m.readonly
                    && m.from.is_empty()
            }) {
                m.readonly_depth = berth_volume::mountspec::ReadOnlyDepth::NonRecursive;
            }
        }
        let mut warnings = Vec::new();
        if !crate::ports::requests(&config, &host_config)?.is_empty() {
            match network {
                crate::network::Mode::Networks if !endpoints.is_empty() => {}
                // The container's servers are on the host's addresses already (Docker's
                // warning, word for word).
                crate::network::Mode::Host => warnings
                    .push("Published ports are discarded when using host network mode".into()),
                // No network: --network none, container:X, or the default with berthd's
                // --bridge none.
                _ => {
                    return Err(EngineError::Invalid(
                        "conflicting options: port publishing and the container type network \
                         mode (a container of --network none has no address a port could \
                         reach: nothing would be published)"
                            .into(),
                    ))
                }
            }
        }
        let command: Vec<String> = config
            .entrypoint
            .iter()
            .flatten()
            .chain(config.cmd.iter().flatten())
            .cloned()
            .collect();
        let Some((path, args)) = command.split_first() else {
            return Err(EngineError::Invalid("No command specified".into()));
        };

        // libcontainer only (berth's runtime joins through v1 `tasks`, which takes no global
        // lock): `docker run` sends start within milliseconds, so begin the kernel's wait for
        // the first cgroup.procs attach now. Never for berth's runtime: while that wait runs,
        // every fork on the host blocks (the shim's own spawn took 11.8 ms behind it).
        if self.cfg.backend == berth_runtime::Backend::Libcontainer {
            std::thread::spawn(berth_runtime::shim::prime_cgroup_attach);
        }
        // Docker reserves the name before it touches a volume: a create refused for its name
        // must not have made volumes or copied the image into an existing one. (Checked again
        // where the record goes in, for a create of the same name meanwhile.)
        if let Some(n) = &requested_name {
            let map = self.containers.read().expect("containers lock");
            if let Some(other) = map.values().find(|c| c.name() == *n) {
                return Err(EngineError::NameInUse {
                    name: n.clone(),
                    id: other.id.clone(),
                });
            }
        }
        let id = new_id();
        if config.hostname.is_empty() {
            config.hostname = id[..12].to_string();
        }
        let dir = self.cfg.container_dir(&id);
        match self.take_spare_dirs() {
            Some((record, bundle))
                if std::fs::rename(&record, &dir).is_ok()
                    && std::fs::rename(&bundle, self.cfg.bundle_dir(&id)).is_ok() => {}
            _ => std::fs::create_dir_all(&dir).map_err(|e| EngineError::io("create", &dir, e))?,
        }
        let rootfs = match self.snapshot_mounts(&id, &image.id) {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                let _ = std::fs::remove_dir_all(self.cfg.bundle_dir(&id));
                return Err(e);
            }
        };

        // The volumes are taken (made, filled) without a lock; then `volume_use` is held
        // from checking they are all still there until the record is in the map: a `volume
        // rm` or `prune` sees this container as a user of its volumes, or runs wholly
        // before, and the check finds what it took.
        let new_volumes = match self.take_volumes(&id, &mut mounts) {
            Ok(made) => made,
            Err(e) => {
                self.discard_half_created(&id);
                return Err(e);
            }
        };
        let volume_use = self.volume_use.lock().expect("volume use lock");
        if let Err(e) = self.check_volumes(&mut mounts) {
            self.drop_new_volumes_held(&new_volumes);
            drop(volume_use);
            self.discard_half_created(&id);
            return Err(e);
        }
        let mut map = self.containers.write().expect("containers lock");
        let name = match requested_name {
            Some(n) => {
                let other = map.values().find(|c| c.name() == n).map(|c| c.id.clone());
                if let Some(other) = other {
                    drop(map);
                    self.drop_new_volumes_held(&new_volumes);
                    drop(volume_use);
                    self.discard_half_created(&id);
                    return Err(EngineError::NameInUse { name: n, id: other });
                }
                n
            }
            None => names::generate(|n| map.values().any(|c| c.name() == n)),
        };
        let record = ContainerRecord {
            id: id.clone(),
            name,
            created: Utc::now(),
            image_ref: config.image.clone(),
            image_id: image.id.clone(),
            config,
            host_config,
            path: path.clone(),
            args: args.to_vec(),
            rootfs,
            endpoints,
            mounts: Some(mounts),
        };
        let state = ContainerState::default();
        // No state.json yet: a record without one is `Created`.
        // A --rm container's record is worthless after a crash (restore removes it, as
        // Docker does): it is not forced to disk.
        let written = if record.host_config.auto_remove {
            crate::fsutil::replace_json(&dir.join("config.json"), &record)
        } else {
            write_json(&dir.join("config.json"), &record)
        };
        if let Err(e) = written {
            drop(map);
            self.drop_new_volumes_held(&new_volumes);
            drop(volume_use);
            self.discard_half_created(&id);
            return Err(e);
        }
        let c = Arc::new(Container::new(record, state));
        map.insert(id.clone(), c.clone());
        drop(map);
        drop(volume_use);
        self.emit_container(&c, "create", &[]);
        // Refilled after the start that usually follows within milliseconds (start.rs), so
        // the mkdirs do not compete with it; here only when none is left.
        if self.spares.lock().expect("spares lock").is_empty() {
            self.refill_spares();
        }
        Ok((id, warnings))
    }

    fn discard_half_created(&self, id: &str) {
        let _ = self.images.remove_snapshot(id);
        let _ = std::fs::remove_dir_all(self.cfg.container_dir(id));
        let _ = std::fs::remove_dir_all(self.cfg.bundle_dir(id));
    }
}

/// A new 64-hex container id.
pub(crate) fn new_id() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Docker's merge of the request with the image config: the request wins field by field;
/// env is merged by key; an entrypoint given in the request drops the image's cmd.
pub fn merge_image_config(mut c: Config, img: &berth_image::ContainerConfig) -> Config {
    let img_env = img.env.clone().unwrap_or_default();
    let mut env = img_env;
    for e in c.env.take().unwrap_or_default() {
        let key = e.split('=').next().unwrap_or("").to_string();
        env.retain(|x| x.split('=').next().unwrap_or("") != key);
        env.push(e);
    }
    c.env = Some(env);
    if c.entrypoint.is_none() {
        c.entrypoint = img.entrypoint.clone();
        if c.cmd.is_none() {
            c.cmd = img.cmd.clone();
        }
    } else if c
        .entrypoint
        .as_ref()
        .is_some_and(|e| e.len() == 1 && e[0].is_empty())
    {
        // `--entrypoint ""` resets the image's entrypoint.
        c.entrypoint = None;
    }
    if c.working_dir.is_empty() {
        c.working_dir = img.working_dir.clone().unwrap_or_default();
    }
    if c.user.is_empty() {
        c.user = img.user.clone().unwrap_or_default();
    }
    let mut labels = img.labels.clone().unwrap_or_default();
    labels.extend(c.labels.take().unwrap_or_default());
    c.labels = Some(labels.into_iter().collect());
    if c.stop_signal.is_none() {
        c.stop_signal = img.stop_signal.clone();
    }
    if c.exposed_ports.as_ref().is_none_or(|p| p.is_empty()) {
        c.exposed_ports = img.exposed_ports.clone().map(|p| p.into_iter().collect());
    }
    // The image's VOLUMEs join the request's (Docker's `merge`).
    if let Some(img_volumes) = img.volumes.as_ref().filter(|v| !v.is_empty()) {
        let volumes = c.volumes.get_or_insert_with(Default::default);
        for (path, v) in img_volumes {
            volumes.entry(path.clone()).or_insert_with(|| v.clone());
        }
    }
    if c.healthcheck.is_none() {
        c.healthcheck = img
            .healthcheck
            .as_ref()
            .and_then(|h| serde_json::to_value(h).ok());
    }
    if c.on_build.is_none() {
        c.on_build = img.on_build.clone();
    }
    if c.shell.is_none() {
        c.shell = img.shell.clone();
    }
    c
}

/// Docker's check of `--platform` against a local image (os, then architecture and variant
/// when given), in its words. It used to be ignored: an image of another platform ran.
fn check_platform(reference: &str, wanted: &str, image: &berth_image::ImageConfig) -> Result<()> {
    let mut parts = wanted.split('/');
    let (os, arch, variant) = (parts.next(), parts.next(), parts.next());
    let normalize = |a: &str| match a {
        "x86_64" | "x86-64" => "amd64".to_string(),
        "aarch64" => "arm64".to_string(),
        other => other.to_ascii_lowercase(),
    };
    let matches = parts.next().is_none()
        && os.is_some_and(|o| o.eq_ignore_ascii_case(&image.os))
        && arch.is_none_or(|a| normalize(a) == normalize(&image.architecture))
        && variant.is_none_or(|v| image.variant.as_deref() == Some(v));
    if matches {
        return Ok(());
    }
    let actual = match &image.variant {
        Some(v) => format!("{}/{}/{v}", image.os, image.architecture),
        None => format!("{}/{}", image.os, image.architecture),
    };
    Err(EngineError::Invalid(format!(
        "image with reference {reference} was found but does not match the specified \
         platform: wanted {wanted}, actual: {actual}"
    )))
}

#[cfg(test)]
mod platform_tests {
    use super::check_platform;

    #[test]
    fn platform_must_match_the_image() {
        let image = berth_image::ImageConfig {
            os: "linux".into(),
            architecture: "amd64".into(),
            ..Default::default()
        };
        for ok in ["linux", "linux/amd64", "linux/x86_64", "Linux/AMD64"] {
            check_platform("busybox", ok, &image).unwrap();
        }
        for bad in [
            "linux/arm64",
            "windows/amd64",
            "linux/amd64/v2",
            "linux/amd64/v2/x",
        ] {
            let e = check_platform("busybox", bad, &image)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("wanted {bad}, actual: linux/amd64")),
                "{bad}: {e}"
            );
        }
    }
}
