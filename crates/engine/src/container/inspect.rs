//! `GET /containers/{id}/json`.

use std::collections::HashMap;

use berth_api::container::{GraphDriver, Inspect, State};

use crate::error::Result;
use crate::record::{format_time, Status};
use crate::Engine;

impl Engine {
    /// Docker's inspect document for a container.
    pub fn inspect(&self, name_or_id: &str, size: bool) -> Result<Inspect> {
        let c = self.get(name_or_id)?;
        let rec = c.record().clone();
        let st = c.state();
        let dir = self.cfg.container_dir(&rec.id);
        let mut hc = rec.host_config.clone();
        if !hc.privileged {
            hc.masked_paths = Some(
                berth_runtime::defaults::masked_paths()
                    .into_iter()
                    .map(String::from)
                    .collect(),
            );
            hc.readonly_paths = Some(
                berth_runtime::defaults::readonly_paths()
                    .into_iter()
                    .map(String::from)
                    .collect(),
            );
        }
        let mut data = HashMap::new();
        if let Some(m) = rec.rootfs.first() {
            for o in &m.options {
                if let Some((k, v)) = o.split_once('=') {
                    let key = match k {
                        "lowerdir" => "LowerDir",
                        "upperdir" => "UpperDir",
                        "workdir" => "WorkDir",
                        _ => continue,
                    };
                    data.insert(key.to_string(), v.to_string());
                }
            }
        }
        data.insert(
            "MergedDir".into(),
            self.cfg
                .bundle_dir(&rec.id)
                .join("rootfs")
                .display()
                .to_string(),
        );
        let network_settings = self.network_settings(&rec, &st);
        let size_rw = size.then(|| self.images.snapshot_usage(&rec.id) as i64);
        Ok(Inspect {
            id: rec.id.clone(),
            created: format_time(Some(rec.created)),
            path: rec.path.clone(),
            args: rec.args.clone(),
            state: State {
                status: st.status.as_str().to_string(),
                // Docker's `SetRestarting` keeps `Running` true while the restart waits.
                running: st.status.is_active(),
                paused: st.status == Status::Paused,
                restarting: st.status == Status::Restarting,
                oom_killed: st.oom_killed,
                dead: st.status == Status::Dead,
                pid: st.pid,
                exit_code: st.exit_code,
                error: st.error.clone(),
                started_at: format_time(st.started_at),
                finished_at: format_time(st.finished_at),
            },
            image: rec.image_id.clone(),
            resolv_conf_path: dir.join("resolv.conf").display().to_string(),
            hostname_path: dir.join("hostname").display().to_string(),
            hosts_path: dir.join("hosts").display().to_string(),
            log_path: dir
                .join(format!("{}-json.log", rec.id))
                .display()
                .to_string(),
            name: format!("/{}", rec.name),
            restart_count: st.restart_count,
            driver: "overlay2".into(),
            platform: "linux".into(),
            exec_ids: Some(self.exec_ids(&rec.id)).filter(|ids| !ids.is_empty()),
            host_config: hc,
            graph_driver: GraphDriver {
                name: "overlay2".into(),
                data,
            },
            size_rw,
            size_root_fs: None,
            mounts: crate::mounts::mount_points(self, &rec),
            config: rec.config.clone(),
            network_settings,
            ..Default::default()
        })
    }
}
