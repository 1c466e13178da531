//! COPY and ADD: the context's entries their sources name (globs matched), ADD's local
//! archives, `COPY --from` a stage or image; each extracted by the engine into a created
//! container of the current image, then committed with the content's digest as cache key.

use std::collections::BTreeMap;
use std::io::{Seek, Write};

use berth_engine::ExtractOptions;
use berth_image::ContainerConfig;

use super::{dir_tar, glob_match, parse_chmod, rand_suffix, BuildError, Builder, Ownership, State};
use crate::context::{clean, Entry, EntryKind};
use crate::dockerfile::Instruction;

impl Builder {
    pub(super) async fn copy_step(
        &mut self,
        state: &mut State,
        inst: &Instruction,
        sources: &[String],
        dest: &str,
    ) -> Result<(), BuildError> {
        for f in &inst.flags {
            if f.name != "chown"
                && f.name != "chmod"
                && !(f.name == "from" && inst.keyword() == "COPY")
            {
                return Err(BuildError::new(format!(
                    "{} --{} is not supported by berth's builder yet",
                    inst.keyword(),
                    f.name
                )));
            }
        }
        let v = |n: &str| state.var(n);
        let owner = Ownership {
            chown: inst
                .flag("chown")
                .map(|c| self.expand_word(c, &v))
                .transpose()?,
            chmod: inst
                .flag("chmod")
                .map(|c| parse_chmod(&self.expand_word(c, &v)?))
                .transpose()?,
        };
        let dest = self.expand_word(dest, &v)?;
        let mut srcs = Vec::new();
        for s in sources {
            srcs.push(self.expand_word(s, &v)?);
        }
        let workdir = state.config.working_dir.clone().unwrap_or_default();
        let dest_abs = if dest.starts_with('/') {
            dest.clone()
        } else {
            format!("{}/{dest}", if workdir.is_empty() { "/" } else { &workdir })
        };
        let dest_clean = clean(&dest_abs).unwrap_or_default();
        if let Some(from) = inst.flag("from") {
            let from = self.expand_word(from, &v)?;
            return self
                .copy_from_image(state, inst, &from, &srcs, &dest, &dest_clean, &owner)
                .await;
        }
        let mut roots = self.sources(inst, &srcs)?;
        // ADD extracts a local archive (a tar, plain or compressed) into the destination.
        let mut archives = Vec::new();
        if inst.keyword() == "ADD" {
            let context = self.context.clone();
            let budget_dir = self.dir.clone();
            let limits = self.engine.images().ingest_limits();
            let (rest, found) = tokio::task::spawn_blocking(move || {
                let budget = berth_image::Budget::for_archive(&budget_dir, limits)?;
                Ok::<_, berth_image::ImageError>(roots.into_iter().partition::<Vec<_>, _>(|r| {
                    !r.as_deref()
                        .and_then(|p| context.get(p))
                        .is_some_and(|e| context.is_archive(e, &budget))
                }))
            })
            .await
            .map_err(|e| BuildError::new(e.to_string()))?
            .map_err(|e| BuildError::new(format!("ADD: {e}")))?;
            roots = rest;
            archives = found.into_iter().flatten().collect::<Vec<String>>();
        }
        let context = self.context.clone();
        let digest = tokio::task::spawn_blocking(move || {
            let mut parts = Vec::new();
            for r in &roots {
                parts.push(match r {
                    None => context.digest("", context.all())?,
                    Some(path) => {
                        let base = path.rsplit_once('/').map(|(b, _)| b).unwrap_or("");
                        context.digest(base, context.subtree(path))?
                    }
                });
            }
            Ok::<_, std::io::Error>((parts.join(","), roots))
        })
        .await
        .map_err(|e| BuildError::new(e.to_string()))?;
        let (mut digest, roots) =
            digest.map_err(|e| BuildError::new(format!("read the build context: {e}")))?;
        for a in &archives {
            let e = self
                .context
                .get(a)
                .expect("an archive found in the context");
            let d = self
                .context
                .digest("", std::iter::once(e))
                .map_err(|e| BuildError::new(format!("read the build context: {e}")))?;
            digest.push_str(&format!(",archive:{d}"));
        }
        let key = self.key(
            state,
            &[
                inst.keyword(),
                &serde_json::to_string(&srcs).unwrap_or_default(),
                &dest,
                &dest_clean,
                &format!("{owner:?}"),
                &digest,
            ],
        );
        if self.use_cache(state, &key) {
            return Ok(());
        }
        let id = self.step_container(state, vec!["true".into()]).await?;
        let mut copied = Ok(());
        if !roots.is_empty() {
            copied = self
                .copy_into(&id, inst, &roots, srcs.len(), &dest, &dest_clean, &owner)
                .await;
        }
        if copied.is_ok() && !archives.is_empty() {
            copied = self.extract_archives(&id, &archives, &dest_clean).await;
        }
        self.commit_step(state, inst, &id, key, copied).await
    }

    /// Ends a step made in container `id`: committed with its cache key when `done` is
    /// fine, and the container removed either way.
    async fn commit_step(
        &self,
        state: &mut State,
        inst: &Instruction,
        id: &str,
        key: String,
        done: Result<(), BuildError>,
    ) -> Result<(), BuildError> {
        if let Err(e) = done {
            let _ = self.remove(id).await;
            return Err(e);
        }
        let mut opts = self.commit_options(state, inst);
        opts.cache_key = Some(key);
        let committed = self.engine.commit_build(id, opts).await;
        let _ = self.remove(id).await;
        state.image = committed.map_err(|e| BuildError::new(e.to_string()))?;
        Ok(())
    }

    /// ADD's archives, extracted into `dest_clean` (made first when missing) by the engine's
    /// archive code, which takes them compressed as they are.
    async fn extract_archives(
        &self,
        id: &str,
        archives: &[String],
        dest_clean: &str,
    ) -> Result<(), BuildError> {
        let dest = format!("/{dest_clean}");
        if !self.is_dir_in(id, &dest).await {
            let bytes = dir_tar(dest_clean).map_err(|e| BuildError::new(format!("ADD: {e}")))?;
            self.engine
                .archive_put(
                    id,
                    "/",
                    ExtractOptions::default(),
                    Box::new(std::io::Cursor::new(bytes)),
                )
                .await
                .map_err(|e| BuildError::new(format!("ADD failed: {e}")))?;
        }
        for a in archives {
            let e = self
                .context
                .get(a)
                .expect("an archive found in the context");
            let reader = self
                .context
                .open(e)
                .map_err(|er| BuildError::new(format!("ADD {a}: {er}")))?;
            self.engine
                .archive_put(id, &dest, ExtractOptions::default(), Box::new(reader))
                .await
                .map_err(|er| BuildError::new(format!("ADD failed: {a}: {er}")))?;
        }
        Ok(())
    }

    /// `COPY --from=stage|image`: the sources are read from a container of that image and
    /// extracted, renamed, into the step's container.
    #[allow(clippy::too_many_arguments)]
    async fn copy_from_image(
        &mut self,
        state: &mut State,
        inst: &Instruction,
        from: &str,
        srcs: &[String],
        dest: &str,
        dest_clean: &str,
        owner: &Ownership,
    ) -> Result<(), BuildError> {
        let lower = from.to_ascii_lowercase();
        let source_image = match self
            .stage_names
            .iter()
            .position(|n| n.as_deref() == Some(lower.as_str()))
            .or_else(|| from.parse::<usize>().ok())
        {
            Some(i) => self.stage_images.get(i).cloned().flatten().ok_or_else(|| {
                BuildError::new(format!(
                    "COPY --from={from}: the stage is not built before this one"
                ))
            })?,
            None => self.resolve(from)?.id,
        };
        for s in srcs {
            if s.contains(['*', '?', '[']) {
                return Err(BuildError::new(format!(
                    "COPY --from with a wildcard ({s}) is not supported by berth's builder yet"
                )));
            }
        }
        let key = self.key(
            state,
            &[
                "copy-from",
                &source_image,
                &serde_json::to_string(srcs).unwrap_or_default(),
                dest,
                dest_clean,
                &format!("{owner:?}"),
            ],
        );
        if self.use_cache(state, &key) {
            return Ok(());
        }
        let source_state = State {
            image: source_image,
            config: ContainerConfig::default(),
            args: BTreeMap::new(),
        };
        let source = self
            .step_container(&source_state, vec!["true".into()])
            .await?;
        let target = match self.step_container(state, vec!["true".into()]).await {
            Ok(t) => t,
            Err(e) => {
                let _ = self.remove(&source).await;
                return Err(e);
            }
        };
        let copied = self
            .copy_between(&source, &target, srcs, dest, dest_clean, owner)
            .await;
        let _ = self.remove(&source).await;
        self.commit_step(state, inst, &target, key, copied).await
    }

    /// Copies `srcs` (absolute in container `source`) to `dest_clean` in `target`.
    async fn copy_between(
        &self,
        source: &str,
        target: &str,
        srcs: &[String],
        dest: &str,
        dest_clean: &str,
        owner: &Ownership,
    ) -> Result<(), BuildError> {
        let dest_dir = self
            .dest_is_dir(target, dest, dest_clean, srcs.len() > 1)
            .await;
        let (uid, gid) = self.owner_ids(target, owner).await?;
        let tar_path = self.dir.join(format!("copy-{}.tar", rand_suffix()));
        let file = std::fs::File::create(&tar_path)
            .map_err(|e| BuildError::new(format!("prepare the copy: {e}")))?;
        let mut out = tar::Builder::new(std::io::BufWriter::new(file));
        for s in srcs {
            let path = format!("/{}", clean(s).unwrap_or_default());
            let fail = |e: String| BuildError::new(format!("COPY --from: {s}: {e}"));
            let (stat, mut rx) = self
                .engine
                .archive_get(source, &path)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let is_dir = stat.mode & (1 << 31) != 0;
            // The source's tar, kept in a file of the build's under the ingest budget.
            let budget =
                berth_image::Budget::for_archive(&self.dir, self.engine.images().ingest_limits())
                    .map_err(|e| fail(e.to_string()))?;
            let src_path = self.dir.join(format!("from-{}.tar", rand_suffix()));
            let mut src_file = std::fs::File::options()
                .create_new(true)
                .read(true)
                .write(true)
                .open(&src_path)
                .map_err(|e| fail(e.to_string()))?;
            let _ = std::fs::remove_file(&src_path);
            while let Some(chunk) = rx.recv().await {
                let chunk = chunk.map_err(|e| fail(e.to_string()))?;
                budget
                    .charge_written(chunk.len() as u64)
                    .map_err(|e| fail(e.to_string()))?;
                src_file
                    .write_all(&chunk)
                    .map_err(|e| fail(e.to_string()))?;
            }
            src_file.rewind().map_err(|e| fail(e.to_string()))?;
            let mut archive = berth_image::BoundedTar::new(std::io::BufReader::new(src_file));
            for entry in archive.entries().map_err(|e| fail(e.to_string()))? {
                let mut entry = entry.map_err(|e| fail(e.to_string()))?;
                let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                // Entries are named from the source's last element (`docker cp`'s way).
                let below = name
                    .trim_end_matches('/')
                    .split_once('/')
                    .map(|(_, b)| b.to_string())
                    .unwrap_or_default();
                let target_name = if is_dir {
                    if below.is_empty() {
                        continue;
                    }
                    format!("{dest_clean}/{below}")
                } else if dest_dir {
                    format!("{dest_clean}/{}", stat.name)
                } else {
                    dest_clean.to_string()
                };
                let mut h = entry.header().clone();
                h.set_uid(uid as u64);
                h.set_gid(gid as u64);
                if let (Some(mode), false) =
                    (owner.chmod, h.entry_type() == tar::EntryType::Symlink)
                {
                    h.set_mode(mode);
                }
                let target_name = target_name.trim_start_matches('/').to_string();
                let r = match h.entry_type() {
                    tar::EntryType::Symlink | tar::EntryType::Link => {
                        let link = entry
                            .link_name_bytes()
                            .map(|l| String::from_utf8_lossy(&l).into_owned())
                            .unwrap_or_default();
                        let link = if h.entry_type() == tar::EntryType::Link {
                            // A hard link names another entry of this tar: renamed alike.
                            let b = link.split_once('/').map(|(_, b)| b).unwrap_or("");
                            format!("{dest_clean}/{b}")
                                .trim_start_matches('/')
                                .to_string()
                        } else {
                            link
                        };
                        out.append_link(&mut h, &target_name, link)
                    }
                    _ => out.append_data(&mut h, &target_name, &mut entry),
                };
                r.map_err(|e| fail(e.to_string()))?;
            }
        }
        let w = out
            .into_inner()
            .and_then(|mut w| w.flush().map(|()| w))
            .map_err(|e| BuildError::new(format!("prepare the copy: {e}")))?;
        drop(w);
        let file = std::fs::File::open(&tar_path)
            .map_err(|e| BuildError::new(format!("prepare the copy: {e}")))?;
        let _ = std::fs::remove_file(&tar_path);
        self.engine
            .archive_put(target, "/", ExtractOptions::default(), Box::new(file))
            .await
            .map_err(|e| BuildError::new(format!("COPY --from failed: {e}")))
    }

    /// The context paths COPY's sources name (globs matched), each a root whose subtree is
    /// copied; `None` for the whole context (`.`).
    fn sources(
        &self,
        inst: &Instruction,
        srcs: &[String],
    ) -> Result<Vec<Option<String>>, BuildError> {
        let mut roots = Vec::new();
        for s in srcs {
            if s.starts_with("http://") || s.starts_with("https://") {
                return Err(BuildError::new(if inst.keyword() == "ADD" {
                    format!(
                        "ADD from a URL ({s}) is not supported by berth's builder yet: it \
                         fetches nothing from the network; download it into the context"
                    )
                } else {
                    "source can't be a URL for COPY".to_string()
                }));
            }
            let Some(rel) = clean(s) else {
                return Err(BuildError::new(format!(
                    "{} failed: forbidden path outside the build context: {s}",
                    inst.keyword()
                )));
            };
            if rel.is_empty() {
                roots.push(None);
                continue;
            }
            let before = roots.len();
            if s.contains(['*', '?', '[']) {
                roots.extend(
                    self.context
                        .all()
                        .filter(|e| glob_match(&rel, &e.path))
                        .map(|e| Some(e.path.clone())),
                );
            } else if self.context.get(&rel).is_some() {
                roots.push(Some(rel));
            }
            if roots.len() == before {
                return Err(BuildError::new(format!(
                    "{} failed: file not found in build context or excluded by \
                     .dockerignore: stat {s}: file does not exist",
                    inst.keyword()
                )));
            }
        }
        Ok(roots)
    }

    /// Extracts the sources into container `id` at `dest_clean` (`dest` as written decides
    /// whether it is a directory: a trailing `/`, several sources, or a directory there
    /// already).
    #[allow(clippy::too_many_arguments)]
    async fn copy_into(
        &self,
        id: &str,
        inst: &Instruction,
        roots: &[Option<String>],
        sources: usize,
        dest: &str,
        dest_clean: &str,
        owner: &Ownership,
    ) -> Result<(), BuildError> {
        let dest_dir = self
            .dest_is_dir(id, dest, dest_clean, sources > 1 || roots.len() > 1)
            .await;
        // The entries to copy, each with its path below the destination.
        let mut chosen: Vec<(String, &Entry)> = Vec::new();
        for root in roots {
            let Some(m) = root.as_deref().and_then(|r| self.context.get(r)) else {
                // The whole context: its contents into the destination.
                for e in self.context.all() {
                    chosen.push((e.path.clone(), e));
                }
                continue;
            };
            {
                match m.kind {
                    EntryKind::Dir => {
                        for e in self.context.subtree(&m.path) {
                            if e.path == m.path {
                                continue;
                            }
                            let below = e.path[m.path.len() + 1..].to_string();
                            chosen.push((below, e));
                        }
                    }
                    _ => {
                        let name = m.path.rsplit('/').next().unwrap_or(&m.path).to_string();
                        if dest_dir {
                            chosen.push((name, m));
                        } else {
                            chosen.push((String::new(), m));
                        }
                    }
                }
            }
        }
        // The tar: entries named below the destination, owned by root (or --chown).
        let (uid, gid) = self.owner_ids(id, owner).await?;
        let tar_path = self.dir.join(format!("copy-{}.tar", rand_suffix()));
        {
            let file = std::fs::File::create(&tar_path)
                .map_err(|e| BuildError::new(format!("prepare the copy: {e}")))?;
            let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
            tar.mode(tar::HeaderMode::Deterministic);
            let base = dest_clean;
            if chosen.is_empty() {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_uid(uid as u64);
                h.set_gid(gid as u64);
                h.set_size(0);
                tar.append_data(&mut h, format!("{base}/"), std::io::empty())
                    .map_err(|e| BuildError::new(format!("prepare the copy: {e}")))?;
            }
            for (below, e) in &chosen {
                let name = if below.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}/{below}")
                        .trim_start_matches('/')
                        .to_string()
                };
                let mut h = tar::Header::new_gnu();
                h.set_mode(owner.chmod.unwrap_or(e.mode));
                h.set_uid(uid as u64);
                h.set_gid(gid as u64);
                h.set_mtime(e.mtime);
                let r = match e.kind {
                    EntryKind::Dir => {
                        h.set_entry_type(tar::EntryType::Directory);
                        h.set_size(0);
                        tar.append_data(&mut h, format!("{name}/"), std::io::empty())
                    }
                    EntryKind::Symlink => {
                        h.set_entry_type(tar::EntryType::Symlink);
                        h.set_size(0);
                        tar.append_link(&mut h, &name, &e.link)
                    }
                    EntryKind::File | EntryKind::HardLink => {
                        h.set_entry_type(tar::EntryType::Regular);
                        // Streamed from the context file: a big file is never held whole.
                        h.set_size(self.context.size_of(e));
                        let data = self
                            .context
                            .open(e)
                            .map_err(|er| BuildError::new(format!("read {}: {er}", e.path)))?;
                        tar.append_data(&mut h, &name, data)
                    }
                };
                r.map_err(|e| BuildError::new(format!("prepare the copy: {e}")))?;
            }
            let mut w = tar
                .into_inner()
                .map_err(|e| BuildError::new(format!("prepare the copy: {e}")))?;
            w.flush()
                .map_err(|e| BuildError::new(format!("prepare the copy: {e}")))?;
        }
        let mut file = std::fs::File::open(&tar_path)
            .map_err(|e| BuildError::new(format!("prepare the copy: {e}")))?;
        let _ = std::fs::remove_file(&tar_path);
        file.rewind()
            .map_err(|e| BuildError::new(format!("prepare the copy: {e}")))?;
        self.engine
            .archive_put(id, "/", ExtractOptions::default(), Box::new(file))
            .await
            .map_err(|e| BuildError::new(format!("{} failed: {e}", inst.keyword())))
    }
}
