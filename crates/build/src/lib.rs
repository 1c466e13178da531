//! berth's image builder: `docker build`'s classic protocol (`POST /build`) and `berth
//! build`. [`dockerfile`] parses, [`expand`] does Docker's word processing; the executor
//! runs each step through the engine (RUN in a container of the same runtime as `run`);
//! [`fetch`] downloads ADD's URLs and [`chmod`] reads COPY's and ADD's `--chmod`.

pub mod builder;
pub mod chmod;
pub mod context;
pub mod dockerfile;
pub mod expand;
pub mod fetch;

pub use builder::{BuildError, BuildOptions, Builder, Message, PullFn, Puller};
pub use context::{Context, ContextCache, ContextError};

/// Makes a new directory for one build's files under `<root>/build/`: the context, the
/// tars of its COPY steps. The caller removes it when the build ends.
pub fn new_build_dir(root: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    let parent = root.join("build");
    std::fs::create_dir_all(&parent)?;
    let mut n = 0u32;
    loop {
        let dir = parent.join(format!("tmp-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1 << 20 => n += 1,
            r => return r.map(|()| dir),
        }
    }
}

/// Removes a build's files when it ends (or is stopped): the secrets' tmpfs under the exec
/// root (unmounted), then the build's directory under the root.
pub fn remove_build_dir(exec_root: &std::path::Path, dir: &std::path::Path) {
    builder::remove_secrets_dir(&builder::secrets_dir(exec_root, dir));
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %dir.display(), "remove a build's directory: {e}");
        }
    }
}

/// Stops what is left of a build whose task was aborted (its stages' tasks go with it):
/// removes its step containers (a running RUN is killed), and any a stage was creating is
/// removed as soon as it exists, so nothing of it remains but finished steps' cache.
pub async fn abandon(engine: &std::sync::Arc<berth_engine::Engine>, live: &builder::Live) {
    let ids = live.lock().expect("live lock").stop_all();
    for id in ids {
        if let Err(e) = engine.remove(&id, true, true).await {
            tracing::warn!(container = %id, "remove a stopped build's container: {e}");
        }
    }
}

/// At berthd's start: removes the build directories (and secrets' tmpfs mounts) and step
/// containers a berthd that died mid-build left.
pub async fn clean_leftovers(engine: &std::sync::Arc<berth_engine::Engine>) {
    if let Ok(entries) = std::fs::read_dir(engine.config().exec_root.join("build")) {
        for e in entries.flatten() {
            builder::remove_secrets_dir(&e.path());
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let dir = engine.config().root.join("build");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("tmp-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let mut filters = berth_api::filters::Filters::default();
    filters
        .0
        .insert("label".into(), vec![builder::STEP_LABEL.to_string()]);
    let opts = berth_engine::ListOptions {
        all: true,
        limit: None,
        size: false,
        filters,
    };
    for c in engine.list(&opts).unwrap_or_default() {
        if let Err(e) = engine.remove(&c.id, true, true).await {
            tracing::warn!(container = %c.id, "remove a build's leftover container: {e}");
        }
    }
}
