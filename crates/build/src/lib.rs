//! berth's image builder: `docker build`'s classic protocol (`POST /build`) and `berth
//! build`. [`dockerfile`] parses, [`expand`] does Docker's word processing; the executor
//! runs each step through the engine (RUN in a container of the same runtime as `run`).

pub mod builder;
pub mod context;
pub mod dockerfile;
pub mod expand;

pub use builder::{BuildError, BuildOptions, Builder, Message};
pub use context::{Context, ContextError};

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
