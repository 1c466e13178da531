//! `RUN --mount=type=bind` and `type=secret`, with BuildKit's semantics.
//!
//! A mount is planned first ([`Planned`]: what the cache key takes of it: the content's
//! digest or the image's id, never a secret's content) and made only when the step runs:
//!
//! - **bind from the context**: the source's subtree is written under the build's own
//!   directory (`<root>/build/tmp-*/mount-*`), a fresh copy per step, and bound into the
//!   step container, read-only unless `rw` (then the step writes to its copy, which goes
//!   when the step ends: writes never reach the context or the image). The copy is made
//!   from the context's index by [`write_context`]: every entry is created new (`O_EXCL`,
//!   `mkdir`) inside directories the copy itself made, so nothing of the context (a
//!   symlink to `/`, `..`) can make a write land outside it; symlinks are written as they
//!   are, and resolve inside the container.
//! - **bind from a stage or an image**: the source path is read out of a created (never
//!   started) container of that image by the engine's archive code (the code of `docker
//!   cp`, which stays inside the container's root) and written the same way.
//! - **secret**: the content (sent by `berth build`, kept in memory) is written, mode 0400
//!   unless `mode=`, to a tmpfs berthd mounts for the build under its exec root
//!   (`<exec-root>/build/tmp-*`), bound read-only at `/run/secrets/<id>` or `target`, and
//!   removed when the step ends; the tmpfs goes when the build ends (a client that leaves
//!   included) and at berthd's start. A secret in the environment (`env=`, alone or with a
//!   file) is given to the RUN's process only (`Engine::start_with_env`: its runtime spec
//!   under the exec root, never the container's record under the root), and that step's
//!   container is removed after it whatever `--rm` says.
//!
//! The mount points the runtime makes for targets the image lacks (of every RUN mount,
//! cache and tmpfs too) are removed from the rw layer before the commit when still empty
//! ([`remove_mount_stubs`]), as BuildKit removes its mount stubs.

use std::collections::HashSet;
use std::io::{Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{rand_suffix, short, BuildError, Builder, State};
use crate::context::{clean, Context, Entry, EntryKind};
use crate::dockerfile::{self, MountType};

/// A RUN mount as planned: its `Debug` is what the step's cache key takes of it.
#[derive(Debug, Clone)]
pub(super) enum Planned {
    /// A subtree of the context (`path`, "" for all of it), by the digest of its content.
    Context {
        path: String,
        /// Read through `Debug`: the cache key.
        #[allow(dead_code)]
        digest: String,
        target: String,
        rw: bool,
    },
    /// `source` in the filesystem of image `image` (a stage's result or an image).
    Image {
        image: String,
        source: String,
        target: String,
        rw: bool,
    },
    /// A secret: its id and where and how it is mounted (never its content): a file at
    /// `target`, the variable `env`, or both.
    Secret {
        id: String,
        target: Option<String>,
        env: Option<String>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

/// The files one RUN's mounts made: removed when the step ends (also when the build's task
/// is dropped part-way, the client gone).
#[derive(Default)]
pub(super) struct StepFiles(Vec<PathBuf>);

impl Drop for StepFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            if let Err(e) = std::fs::remove_dir_all(p) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %p.display(), "remove a RUN mount's files: {e}");
                }
            }
        }
    }
}

/// Serializes the making of builds' secret tmpfs mounts.
static SECRET_MOUNTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The tmpfs of a build's secrets: `<exec-root>/build/<name of the build's directory>`.
pub(crate) fn secrets_dir(exec_root: &Path, build_dir: &Path) -> PathBuf {
    exec_root
        .join("build")
        .join(build_dir.file_name().unwrap_or_default())
}

/// Unmounts and removes a build's secrets tmpfs (if it was made).
pub(crate) fn remove_secrets_dir(dir: &Path) {
    // Lazily: a step container that still holds a secret's bind does not keep it.
    let _ = rustix::mount::unmount(dir, rustix::mount::UnmountFlags::DETACH);
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %dir.display(), "remove a build's secrets directory: {e}");
        }
        _ => {}
    }
}

/// Mounts the build's secrets tmpfs at `dir` unless it is there.
fn ensure_secrets_tmpfs(dir: &Path) -> std::io::Result<()> {
    let _one = SECRET_MOUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let parent = dir.parent().expect("the secrets directory has a parent");
    std::fs::create_dir_all(parent)?;
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        r => r?,
    }
    if std::fs::metadata(dir)?.dev() != std::fs::metadata(parent)?.dev() {
        return Ok(());
    }
    use rustix::mount::MountFlags;
    rustix::mount::mount(
        "berth-build-secrets",
        dir,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        c"mode=0700,size=64m",
    )?;
    Ok(())
}

/// A mount's target, absolute: a relative one is below the working directory (BuildKit's).
fn absolute_target(state: &State, target: &str) -> Result<String, String> {
    let workdir = state.config.working_dir.clone().unwrap_or_default();
    let joined = if target.starts_with('/') {
        target.to_string()
    } else {
        format!(
            "{}/{target}",
            if workdir.is_empty() { "/" } else { &workdir }
        )
    };
    let t = format!("/{}", clean(&joined).unwrap_or_default());
    if t.contains(':') || t.contains(',') {
        return Err(format!(
            "the target {t}: a ':' or ',' in a RUN mount's target is not supported by berth's \
             builder yet"
        ));
    }
    Ok(t)
}

/// A context path with the context's symlinks resolved inside the context (BuildKit
/// resolves a bind source within its root: a link never leads out of it).
fn resolve_in_context(context: &Context, path: &str) -> Option<String> {
    let mut todo: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect();
    todo.reverse();
    let mut done: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        done.push(c);
        let here = done.join("/");
        // A directory the tar does not list (only what is below it) has no entry.
        let Some(e) = context.get(&here) else {
            continue;
        };
        if e.kind == EntryKind::Symlink {
            hops += 1;
            if hops > 40 {
                return None;
            }
            done.pop();
            if e.link.starts_with('/') {
                done.clear();
            }
            todo.extend(
                e.link
                    .split('/')
                    .filter(|c| !c.is_empty())
                    .map(String::from)
                    .rev(),
            );
        }
    }
    let path = done.join("/");
    (path.is_empty() || context.subtree(&path).next().is_some()).then_some(path)
}

impl Builder {
    /// Plans one `RUN --mount` of type bind or secret: `None` for a secret that was not
    /// given and is not required (BuildKit mounts nothing then).
    pub(super) async fn plan_run_mount(
        &self,
        state: &State,
        m: &dockerfile::Mount,
        value: &str,
    ) -> Result<Option<Planned>, BuildError> {
        let fail = |e: String| BuildError::new(format!("RUN --mount={value}: {e}"));
        match m.kind {
            MountType::Bind => {
                let target = m
                    .target
                    .as_deref()
                    .ok_or_else(|| fail("target is required".into()))?;
                let target = absolute_target(state, target).map_err(fail)?;
                let rw = !m.read_only;
                let source = m.source.clone().unwrap_or_default();
                if let Some(from) = &m.from {
                    let image = self
                        .image_named(from, "from")
                        .await
                        .map_err(|e| fail(e.message))?;
                    let source = format!("/{}", clean(&source).unwrap_or_default());
                    return Ok(Some(Planned::Image {
                        image,
                        source,
                        target,
                        rw,
                    }));
                }
                let context = self.context.clone();
                let wanted = source.clone();
                let planned = tokio::task::spawn_blocking(move || {
                    let not_found = || {
                        format!(
                            "source {wanted}: not found in the build context (or excluded \
                             by .dockerignore)"
                        )
                    };
                    let rel = clean(&wanted).ok_or_else(not_found)?;
                    let path = resolve_in_context(&context, &rel).ok_or_else(not_found)?;
                    let digest = if path.is_empty() {
                        context.digest("", context.all())
                    } else {
                        context.digest(&format!("{path}/"), context.subtree(&path))
                    }
                    .map_err(|e| format!("read the build context: {e}"))?;
                    Ok::<_, String>((path, digest))
                })
                .await
                .map_err(|e| BuildError::new(e.to_string()))?;
                let (path, digest) = planned.map_err(fail)?;
                Ok(Some(Planned::Context {
                    path,
                    digest,
                    target,
                    rw,
                }))
            }
            MountType::Secret => {
                if let Some(var) = &m.env {
                    if var.is_empty() || var.contains('=') || var.contains('\0') {
                        return Err(fail(format!("env={var}: not a variable name")));
                    }
                }
                // BuildKit: the id defaults to the target's last element, the target to
                // /run/secrets/<id>; `source` is another name for the id.
                let id =
                    m.id.clone()
                        .or_else(|| m.source.clone())
                        .or_else(|| {
                            m.target
                                .as_deref()
                                .and_then(|t| t.trim_end_matches('/').rsplit('/').next())
                                .map(String::from)
                        })
                        .filter(|i| !i.is_empty())
                        .ok_or_else(|| fail("the secret's id is missing".into()))?;
                // With env= and no target, the variable only (BuildKit's).
                let target = match (&m.target, &m.env) {
                    (Some(t), _) => Some(t.clone()),
                    (None, Some(_)) => None,
                    (None, None) if id.contains('/') => {
                        return Err(fail(format!(
                            "secret {id}: an id with a '/' needs a target="
                        )));
                    }
                    (None, None) => Some(format!("/run/secrets/{id}")),
                };
                let target = target
                    .map(|t| absolute_target(state, &t))
                    .transpose()
                    .map_err(fail)?;
                if self.opts.secrets.get(&id).is_none() {
                    if m.required {
                        return Err(fail(format!(
                            "secret {id}: not found (give it with berth build --secret \
                             id={id},src=<file>; docker's classic builder sends no secrets)"
                        )));
                    }
                    return Ok(None);
                }
                Ok(Some(Planned::Secret {
                    id,
                    target,
                    env: m.env.clone(),
                    mode: m.mode.unwrap_or(0o400) & 0o7777,
                    uid: m.uid.unwrap_or(0),
                    gid: m.gid.unwrap_or(0),
                }))
            }
            _ => unreachable!("only bind and secret mounts are planned here"),
        }
    }

    /// Makes the planned mounts: the binds to give the step container (`host:target[:ro]`),
    /// the secrets' variables for its process only (`KEY=value`: never in its config), and
    /// the files to remove when the step ends.
    pub(super) async fn make_run_mounts(
        &self,
        planned: &[Planned],
    ) -> Result<(Vec<String>, Vec<String>, StepFiles), BuildError> {
        let mut files = StepFiles::default();
        let mut binds = Vec::new();
        let mut env = Vec::new();
        if planned.is_empty() {
            return Ok((binds, env, files));
        }
        let step = self.dir.join(format!("mount-{}", rand_suffix()));
        std::fs::create_dir(&step)
            .map_err(|e| BuildError::new(format!("prepare a RUN mount: {e}")))?;
        files.0.push(step.clone());
        let mut secrets_step: Option<PathBuf> = None;
        for (n, p) in planned.iter().enumerate() {
            let host = step.join(format!("m{n}"));
            match p {
                Planned::Context {
                    path, target, rw, ..
                } => {
                    let context = self.context.clone();
                    let (path, dest) = (path.clone(), host.clone());
                    tokio::task::spawn_blocking(move || write_context(&context, &path, &dest))
                        .await
                        .map_err(|e| BuildError::new(e.to_string()))?
                        .map_err(|e| BuildError::new(format!("RUN --mount of the context: {e}")))?;
                    binds.push(bind(&host, target, *rw));
                }
                Planned::Image {
                    image,
                    source,
                    target,
                    rw,
                } => {
                    self.write_image_path(image, source, &host).await?;
                    binds.push(bind(&host, target, *rw));
                }
                Planned::Secret {
                    id,
                    target,
                    env: var,
                    mode,
                    uid,
                    gid,
                } => {
                    let content = self
                        .opts
                        .secrets
                        .get(id)
                        .expect("a planned secret is given");
                    if let Some(var) = var {
                        let value = std::str::from_utf8(content)
                            .ok()
                            .filter(|v| !v.contains('\0'))
                            .ok_or_else(|| {
                                BuildError::new(format!(
                                    "RUN --mount=type=secret,id={id},env={var}: the secret is \
                                     not UTF-8 text without NUL bytes: it cannot go in the \
                                     environment (mount it as a file)"
                                ))
                            })?;
                        env.push(format!("{var}={value}"));
                    }
                    let Some(target) = target else {
                        continue;
                    };
                    let dir = match &secrets_step {
                        Some(d) => d.clone(),
                        None => {
                            let root = secrets_dir(&self.engine.config().exec_root, &self.dir);
                            let d = root.join(format!("step-{}", rand_suffix()));
                            ensure_secrets_tmpfs(&root)
                                .and_then(|()| std::fs::create_dir(&d))
                                .map_err(|e| {
                                    BuildError::new(format!(
                                        "prepare the secrets' tmpfs (secret {id}): {e}"
                                    ))
                                })?;
                            files.0.push(d.clone());
                            secrets_step = Some(d.clone());
                            d
                        }
                    };
                    let file = dir.join(format!("s{n}"));
                    write_secret(&file, content, *mode, *uid, *gid).map_err(|e| {
                        BuildError::new(format!("write secret {id} for its mount: {e}"))
                    })?;
                    binds.push(bind(&file, target, false));
                }
            }
        }
        Ok((binds, env, files))
    }

    /// Writes `source` of image `image` at `dest` (below the build's directory): read out
    /// of a created container of the image by the engine's archive code.
    async fn write_image_path(
        &self,
        image: &str,
        source: &str,
        dest: &Path,
    ) -> Result<(), BuildError> {
        let fail = |e: String| {
            BuildError::new(format!("RUN --mount from {}: {source}: {e}", short(image)))
        };
        let from = State {
            image: image.to_string(),
            config: Default::default(),
            args: Default::default(),
        };
        let id = self.step_container(&from, vec!["true".into()]).await?;
        // A symlink as the source is followed (inside the image's root), as BuildKit's.
        const GO_SYMLINK: u32 = 1 << 27;
        let source = match self.engine.archive_stat(&id, source).await {
            Ok(st) if st.mode & GO_SYMLINK != 0 && !st.link_target.is_empty() => st.link_target,
            _ => source.to_string(),
        };
        let got = self.read_image_path(&id, &source, dest).await;
        let _ = self.remove(&id).await;
        got.map_err(fail)
    }

    async fn read_image_path(&self, id: &str, source: &str, dest: &Path) -> Result<(), String> {
        let (stat, mut rx) = self
            .engine
            .archive_get(id, source)
            .await
            .map_err(|e| e.to_string())?;
        // The tar in a file of the build's, under the ingest budget.
        let budget =
            berth_image::Budget::for_archive(&self.dir, self.engine.images().ingest_limits())
                .map_err(|e| e.to_string())?;
        let tar_path = self.dir.join(format!("mount-{}.tar", rand_suffix()));
        let mut file = std::fs::File::options()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&tar_path)
            .map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(&tar_path);
        while let Some(chunk) = rx.recv().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            budget
                .charge_written(chunk.len() as u64)
                .map_err(|e| e.to_string())?;
            file.write_all(&chunk).map_err(|e| e.to_string())?;
        }
        file.rewind().map_err(|e| e.to_string())?;
        // Entries are named from the source's last element (`docker cp`'s way; "/": none).
        let prefix = if source == "/" {
            String::new()
        } else {
            stat.name
        };
        let dest = dest.to_path_buf();
        tokio::task::spawn_blocking(move || write_tar(file, &prefix, &dest))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }
}

/// `host:target`, `:ro` unless `rw`.
fn bind(host: &Path, target: &str, rw: bool) -> String {
    format!("{}:{target}{}", host.display(), if rw { "" } else { ":ro" })
}

/// A secret's file: made new, its mode and owner set on the descriptor, then written.
fn write_secret(path: &Path, content: &[u8], mode: u32, uid: u32, gid: u32) -> std::io::Result<()> {
    let mut f = std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.write_all(content)
}

/// A tree written new under `root` (which must not exist): every entry made inside a
/// directory this tree made, never through anything else.
struct Tree {
    root: PathBuf,
    dirs: HashSet<String>,
    files: HashSet<String>,
}

/// What an entry of the tree is.
enum Node<'a> {
    Dir,
    File(&'a mut dyn std::io::Read),
    Symlink(&'a str),
    /// A hard link to a file the tree made before (its path in the tree).
    HardLink(&'a str),
}

impl Tree {
    fn new(root: &Path) -> std::io::Result<Tree> {
        std::fs::create_dir(root)?;
        Ok(Tree {
            root: root.to_path_buf(),
            dirs: [String::new()].into(),
            files: HashSet::new(),
        })
    }

    /// Makes `rel` (clean, relative); an entry under something that is not a directory of
    /// the tree is skipped. Returns whether it was made.
    fn add(
        &mut self,
        rel: &str,
        node: Node,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> std::io::Result<bool> {
        if rel.is_empty() {
            // The root itself: its mode and owner only.
            return self.finish(&self.root.clone(), mode, owner).map(|()| true);
        }
        let parent = rel.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
        if !self.make_parents(parent)? {
            return Ok(false);
        }
        let path = self.root.join(rel);
        match node {
            Node::Dir => {
                if self.dirs.contains(rel) {
                    return self.finish(&path, mode, owner).map(|()| true);
                }
                if std::fs::symlink_metadata(&path).is_ok() {
                    return Ok(false);
                }
                std::fs::create_dir(&path)?;
                self.dirs.insert(rel.to_string());
                self.finish(&path, mode, owner)?;
            }
            Node::File(content) => {
                let mut f = std::fs::File::options()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&path)?;
                std::io::copy(content, &mut f)?;
                if let Some((uid, gid)) = owner {
                    std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
                }
                f.set_permissions(std::fs::Permissions::from_mode(mode))?;
                self.files.insert(rel.to_string());
            }
            Node::Symlink(target) => {
                std::os::unix::fs::symlink(target, &path)?;
                if let Some((uid, gid)) = owner {
                    std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
                }
            }
            Node::HardLink(to) => {
                if !self.files.contains(to) {
                    return Ok(false);
                }
                // linkat without AT_SYMLINK_FOLLOW: the tree's own regular file.
                std::fs::hard_link(self.root.join(to), &path)?;
            }
        }
        Ok(true)
    }

    /// Makes the missing directories of `parent`; false when something else is in the way.
    fn make_parents(&mut self, parent: &str) -> std::io::Result<bool> {
        if self.dirs.contains(parent) {
            return Ok(true);
        }
        let mut here = String::new();
        for c in parent.split('/') {
            if !here.is_empty() {
                here.push('/');
            }
            here.push_str(c);
            if self.dirs.contains(&here) {
                continue;
            }
            let path = self.root.join(&here);
            if std::fs::symlink_metadata(&path).is_ok() {
                return Ok(false);
            }
            std::fs::create_dir(&path)?;
            self.dirs.insert(here.clone());
        }
        Ok(true)
    }

    /// Sets a directory's mode and owner (a directory the tree made: no link to follow).
    fn finish(&self, path: &Path, mode: u32, owner: Option<(u32, u32)>) -> std::io::Result<()> {
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
}

/// Writes the context's entry `path` ("" for all of it) and what is below it at `dest`.
fn write_context(context: &Context, path: &str, dest: &Path) -> std::io::Result<()> {
    let root: Option<&Entry> = context.get(path);
    if let Some(e) = root.filter(|e| matches!(e.kind, EntryKind::File | EntryKind::HardLink)) {
        // A file: bound as a file.
        let mut f = std::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dest)?;
        context.copy_to(e, &mut f)?;
        return f.set_permissions(std::fs::Permissions::from_mode(e.mode));
    }
    let mut tree = Tree::new(dest)?;
    for e in context.subtree(path) {
        let rel = if path.is_empty() {
            e.path.as_str()
        } else if e.path == path {
            ""
        } else {
            &e.path[path.len() + 1..]
        };
        match e.kind {
            EntryKind::Dir => tree.add(rel, Node::Dir, e.mode, None)?,
            EntryKind::Symlink => tree.add(rel, Node::Symlink(&e.link), e.mode, None)?,
            EntryKind::File | EntryKind::HardLink => {
                let mut content = context.open(e)?;
                tree.add(rel, Node::File(&mut content), e.mode, None)?
            }
        };
    }
    Ok(())
}

/// Writes a `docker cp` tar (entries under `prefix`, "" for a root) at `dest`: a file
/// source as a file, a directory as a tree.
fn write_tar(file: std::fs::File, prefix: &str, dest: &Path) -> std::io::Result<()> {
    let mut archive = berth_image::BoundedTar::new(std::io::BufReader::new(file));
    let mut tree: Option<Tree> = None;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = name.trim_matches('/');
        let rel = if name == prefix {
            ""
        } else if prefix.is_empty() {
            name
        } else if let Some(r) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) {
            r
        } else {
            continue;
        };
        let Some(rel) = clean(rel) else { continue };
        let h = entry.header().clone();
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        let owner = Some((h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32));
        let kind = h.entry_type();
        if tree.is_none() {
            if rel.is_empty() && kind.is_file() {
                // A file source: bound as a file.
                let mut f = std::fs::File::options()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(dest)?;
                std::io::copy(&mut entry, &mut f)?;
                if let Some((uid, gid)) = owner {
                    std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
                }
                return f.set_permissions(std::fs::Permissions::from_mode(mode));
            }
            tree = Some(Tree::new(dest)?);
        }
        let t = tree.as_mut().expect("made above");
        let link = entry
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .unwrap_or_default();
        match kind {
            tar::EntryType::Directory => t.add(&rel, Node::Dir, mode, owner)?,
            tar::EntryType::Symlink => t.add(&rel, Node::Symlink(&link), mode, owner)?,
            tar::EntryType::Link => {
                let to = link.trim_matches('/');
                let to = if prefix.is_empty() {
                    Some(to)
                } else {
                    to.strip_prefix(prefix).and_then(|r| r.strip_prefix('/'))
                };
                match to.and_then(clean) {
                    Some(to) => t.add(&rel, Node::HardLink(&to), mode, owner)?,
                    None => false,
                }
            }
            k if k.is_file() => t.add(&rel, Node::File(&mut entry), mode, owner)?,
            // Devices, FIFOs: not written.
            _ => false,
        };
    }
    if tree.is_none() {
        Tree::new(dest)?;
    }
    Ok(())
}

/// The mount points the runtime made in a RUN's rw layer for `targets` the image lacks
/// (empty files and directories, and their parents it made), removed before the commit as
/// BuildKit removes its mount stubs. `upper` is the step container's rw layer (not mounted:
/// the RUN has ended), `lowers` the image's layers. Only what no layer of the image has and
/// what is still empty goes; every step is fd-relative and follows no symlink (the RUN
/// may have put one anywhere).
fn remove_mount_stubs(upper: &Path, lowers: &[PathBuf], targets: &[String]) {
    let mut targets: Vec<Vec<&str>> = targets
        .iter()
        .map(|t| t.split('/').filter(|c| !c.is_empty()).collect())
        .filter(|c: &Vec<&str>| !c.is_empty())
        .collect();
    // The deepest first: a parent two mounts share goes after both.
    targets.sort_by_key(|c| std::cmp::Reverse(c.len()));
    for parts in targets {
        for depth in (1..=parts.len()).rev() {
            let path = &parts[..depth];
            if lowers.iter().any(|l| in_layer(l, path)) {
                break;
            }
            if !remove_if_empty(upper, path) {
                break;
            }
        }
    }
}

/// Opens the directory `parts` below `root`, following no symlink.
fn open_dir_nofollow(root: &Path, parts: &[&str]) -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut fd = rustix::fs::open(root, flags, Mode::empty())?;
    for p in parts {
        fd = rustix::fs::openat(&fd, *p, flags, Mode::empty())?;
    }
    Ok(fd)
}

/// Whether a layer has `parts`; a symlink or a file above it counts as having it (what the
/// runtime resolved there is not told apart: the stub stays).
fn in_layer(layer: &Path, parts: &[&str]) -> bool {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Ok(mut dir) = rustix::fs::open(layer, flags, Mode::empty()) else {
        return true;
    };
    for (i, name) in parts.iter().enumerate() {
        let st = match rustix::fs::statat(&dir, *name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => return false,
            Err(_) => return true,
        };
        if i + 1 == parts.len() {
            return true;
        }
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return true;
        }
        match rustix::fs::openat(&dir, *name, flags, Mode::empty()) {
            Ok(next) => dir = next,
            Err(_) => return true,
        }
    }
    true
}

/// Removes `parts` from `upper` when it is an empty directory or an empty regular file.
fn remove_if_empty(upper: &Path, parts: &[&str]) -> bool {
    use rustix::fs::{AtFlags, FileType};
    let (name, parents) = parts.split_last().expect("a path of one part at least");
    let Ok(dir) = open_dir_nofollow(upper, parents) else {
        return false;
    };
    let Ok(st) = rustix::fs::statat(&dir, *name, AtFlags::SYMLINK_NOFOLLOW) else {
        return false;
    };
    match FileType::from_raw_mode(st.st_mode) {
        // Fails when not empty: what the RUN wrote there stays.
        FileType::Directory => rustix::fs::unlinkat(&dir, *name, AtFlags::REMOVEDIR).is_ok(),
        FileType::RegularFile if st.st_size == 0 => {
            rustix::fs::unlinkat(&dir, *name, AtFlags::empty()).is_ok()
        }
        _ => false,
    }
}

impl Builder {
    /// [`remove_mount_stubs`] for the RUN of container `id` (of image `image`), whose mounts
    /// are at `targets`. Best effort: a stub that stays is an empty mount point.
    pub(super) async fn remove_run_mount_stubs(&self, id: &str, image: &str, targets: Vec<String>) {
        if targets.is_empty() {
            return;
        }
        let engine = self.engine.clone();
        let (id, image) = (id.to_string(), image.to_string());
        let done = tokio::task::spawn_blocking(move || {
            let mounts = engine.images().prepare_snapshot(&id, &image)?;
            let opt = |key: &str| {
                mounts
                    .iter()
                    .flat_map(|m| m.options.iter())
                    .find_map(|o| o.strip_prefix(key).map(String::from))
            };
            let (Some(upper), Some(lowers)) = (opt("upperdir="), opt("lowerdir=")) else {
                return Ok(());
            };
            let lowers: Vec<PathBuf> = lowers.split(':').map(PathBuf::from).collect();
            remove_mount_stubs(Path::new(&upper), &lowers, &targets);
            Ok::<_, berth_image::ImageError>(())
        })
        .await;
        if let Ok(Err(e)) = done {
            tracing::warn!("remove a RUN's mount points: {e}");
        }
    }
}

/// The stages `RUN --mount=...,from=` names in `value` (for the stages a target needs).
pub(super) fn mount_from(value: &str) -> Option<String> {
    value.split(',').find_map(|f| {
        let (k, v) = f.split_once('=')?;
        k.trim_matches('"')
            .eq_ignore_ascii_case("from")
            .then(|| v.trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context_of(entries: &[(&str, tar::EntryType, &str)]) -> (tempfile_dir::Dir, Context) {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_entry_type(*kind);
            match kind {
                tar::EntryType::Symlink => {
                    h.set_size(0);
                    tar.append_link(&mut h, path, data).unwrap();
                }
                _ => {
                    h.set_size(data.len() as u64);
                    tar.append_data(&mut h, path, data.as_bytes()).unwrap();
                }
            }
        }
        let bytes = tar.into_inner().unwrap();
        let dir = tempfile_dir::Dir::new();
        let file = std::fs::File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(dir.0.join("context.tar"))
            .unwrap();
        let budget = berth_image::Budget::for_archive(&dir.0, Default::default()).unwrap();
        let ctx = Context::ingest(bytes.as_slice(), file, &budget).unwrap();
        (dir, ctx)
    }

    mod tempfile_dir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let p = std::env::temp_dir()
                    .join(format!("berth-runmount-test-{}-{n}", std::process::id()));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    /// A context whose symlink points out of it (`/`, `..`) and entries "below" the link:
    /// the copy writes the link as a link and nothing through it.
    #[test]
    fn a_context_copy_never_writes_through_its_symlinks() {
        use tar::EntryType::{Regular, Symlink};
        let outside = tempfile_dir::Dir::new();
        let target = outside.0.display().to_string();
        let (_d, ctx) = context_of(&[
            ("src/a.txt", Regular, "a"),
            ("src/out", Symlink, &target),
            ("src/out/planted", Regular, "x"),
            ("src/up", Symlink, "../.."),
        ]);
        let dest = outside.0.join("copy");
        write_context(&ctx, "src", &dest).unwrap();
        assert_eq!(std::fs::read_to_string(dest.join("a.txt")).unwrap(), "a");
        assert!(std::fs::symlink_metadata(dest.join("out"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(!outside.0.join("planted").exists());
        // Resolution of a source stays in the context.
        assert_eq!(resolve_in_context(&ctx, "src/up").as_deref(), Some(""));
        assert_eq!(
            resolve_in_context(&ctx, "src/a.txt").as_deref(),
            Some("src/a.txt")
        );
        assert_eq!(resolve_in_context(&ctx, "nope"), None);
    }

    /// The stubs a RUN's mounts left go (and their parents the runtime made), never what a
    /// layer of the image has, what the RUN wrote, or anything through a symlink.
    #[test]
    fn mount_stubs_go_and_nothing_else() {
        let d = tempfile_dir::Dir::new();
        let (upper, lower) = (d.0.join("upper"), d.0.join("lower"));
        let outside = d.0.join("outside");
        for p in [
            "upper/a/b/c",
            "upper/etc",
            "upper/kept",
            "lower/etc",
            "outside/x",
        ] {
            std::fs::create_dir_all(d.0.join(p)).unwrap();
        }
        std::fs::write(upper.join("etc/secret"), "").unwrap();
        std::fs::write(upper.join("kept/file"), "data").unwrap();
        std::fs::write(upper.join("kept/stub"), "").unwrap();
        std::os::unix::fs::symlink(&outside, upper.join("link")).unwrap();
        remove_mount_stubs(
            &upper,
            std::slice::from_ref(&lower),
            &[
                "/a/b/c".into(),
                "/etc/secret".into(),
                "/kept/stub".into(),
                "/link/x".into(),
            ],
        );
        assert!(
            !upper.join("a").exists(),
            "the stub and its made parents go"
        );
        assert!(!upper.join("etc/secret").exists());
        assert!(upper.join("etc").exists(), "the image has /etc");
        assert!(upper.join("kept/file").exists() && !upper.join("kept/stub").exists());
        assert!(upper.join("kept").exists(), "not empty");
        assert!(outside.join("x").exists(), "nothing through a symlink");
    }

    #[test]
    fn mount_from_finds_the_stage() {
        assert_eq!(
            mount_from("type=bind,from=build,source=/out,target=/in").as_deref(),
            Some("build")
        );
        assert_eq!(mount_from("type=cache,target=/c"), None);
    }
}
