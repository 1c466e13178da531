//! COPY and ADD: what they take (context entries picked by their sources, `--parents` and
//! `--exclude`; heredoc bodies; ADD's downloads and local archives), their cache key (the
//! content, never times) and how they land: a tar handed to the engine's extraction in a
//! created container of the current image, or, with `--link`, of the empty image, whose
//! layer is then laid on the current image.

use std::io::{Seek, Write};

use berth_api::dockerignore::Matcher;
use berth_engine::ExtractOptions;
use berth_image::ContainerConfig;

use super::{glob_match_within, rand_suffix, BuildError, Builder, GlobWork, Ownership, State};
use crate::context::{clean, Entry, EntryKind};
use crate::dockerfile::{CopyArgs, Instruction};
use crate::fetch;

/// One source of a COPY or ADD as the context resolves it.
#[derive(Debug, Clone)]
enum Root {
    /// `.`: the whole context, its contents into the destination.
    All,
    /// A path of the context (a file, a directory whose contents are copied, a symlink).
    Path(String),
    /// `COPY --parents`: what `pattern` names below the directory `base` (the part before a
    /// `/./`, else the context's root), each kept at its path below `base`.
    Parents { base: String, pattern: String },
}

/// An entry picked from the context, with its path below the destination.
#[derive(Debug, Clone)]
struct Picked {
    /// The path below a directory destination (for a `single` source, its name).
    below: String,
    entry: Entry,
    /// A source that is one file (or symlink) of its own: it becomes the destination itself
    /// when that is not a directory.
    single: bool,
}

/// A file a COPY or ADD makes that is not in the context: a heredoc's body, a download.
struct Inline {
    /// Its name in a directory destination (`None`: a download Docker cannot name).
    name: Option<String>,
    /// The source as written, for messages.
    source: String,
    content: InlineContent,
    /// The mode before `--chmod`: 0644 for a heredoc, 0600 for a download (Docker's).
    mode: u32,
    mtime: u64,
}

enum InlineContent {
    Bytes(Vec<u8>),
    File(std::fs::File, u64),
}

impl Inline {
    fn size(&self) -> u64 {
        match &self.content {
            InlineContent::Bytes(b) => b.len() as u64,
            InlineContent::File(_, n) => *n,
        }
    }
}

/// What one COPY or ADD copies.
struct Plan {
    picked: Vec<Picked>,
    inline: Vec<Inline>,
    /// ADD's local archives (context paths), extracted into the destination.
    archives: Vec<String>,
    /// The number of sources as written (heredocs and URLs included) and of context roots
    /// they matched: several make the destination a directory.
    sources: usize,
    roots: usize,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn refused(inst: &Instruction, what: &str) -> BuildError {
    BuildError::new(format!(
        "{} {what} is not supported by berth's builder: refused rather than ignored",
        inst.keyword()
    ))
}

impl Builder {
    pub(super) async fn copy_step(
        &self,
        state: &mut State,
        inst: &Instruction,
        c: &CopyArgs,
    ) -> Result<(), BuildError> {
        let keyword = inst.keyword();
        for f in &inst.flags {
            let ours = match f.name.as_str() {
                "chown" | "chmod" | "link" | "exclude" => true,
                "from" | "parents" => keyword == "COPY",
                "checksum" => keyword == "ADD",
                _ => false,
            };
            if !ours {
                return Err(match f.name.as_str() {
                    "keep-git-dir" => refused(inst, "--keep-git-dir (git sources are not)"),
                    name => refused(inst, &format!("--{name}")),
                });
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
                .map(|c| {
                    crate::chmod::Chmod::parse(&self.expand_word(c, &v)?).map_err(BuildError::new)
                })
                .transpose()?,
        };
        let dest = self.expand_word(&c.dest, &v)?;
        let mut srcs = Vec::new();
        for s in &c.sources {
            srcs.push(self.expand_word(s, &v)?);
        }
        let excludes: Vec<String> = inst.flags_named("exclude").map(String::from).collect();
        let exclude = Matcher::new(&excludes)
            .map_err(|e| BuildError::new(format!("{keyword} --exclude: {e}")))?;
        let parents = inst.flag_bool("parents");
        // BuildKit lays a --link copy on the image only without --chmod (with it, the copy
        // is an ordinary one).
        let link = inst.flag_bool("link") && owner.chmod.is_none();
        let workdir = state.config.working_dir.clone().unwrap_or_default();
        let dest_abs = if dest.starts_with('/') {
            dest.clone()
        } else {
            format!("{}/{dest}", if workdir.is_empty() { "/" } else { &workdir })
        };
        let dest_clean = crate::context::clean_in_root(&dest_abs);
        if let Some(from) = inst.flag("from") {
            if !excludes.is_empty() || parents || !c.heredocs.is_empty() {
                return Err(refused(
                    inst,
                    "--from with --exclude, --parents or a heredoc source",
                ));
            }
            let from = self.expand_word(from, &v)?;
            return self
                .copy_from_image(state, inst, &from, &srcs, &dest, &dest_clean, &owner, link)
                .await;
        }
        let mut plan = self.plan(state, inst, c, &srcs, parents, &exclude).await?;
        let digest = self.plan_digest(&mut plan).await?;
        let key = self.key(
            state,
            &[
                keyword,
                &serde_json::to_string(&srcs).unwrap_or_default(),
                &dest,
                &dest_clean,
                &format!("{owner:?}"),
                &format!("link={link} parents={parents} exclude={excludes:?}"),
                &digest,
            ],
        );
        if self.use_cache(state, &key) {
            return Ok(());
        }
        let id = if link {
            self.scratch_container().await?
        } else {
            self.step_container(state, vec!["true".into()]).await?
        };
        let mut copied = Ok(());
        if !plan.picked.is_empty() || !plan.inline.is_empty() || plan.archives.is_empty() {
            copied = self
                .copy_into(&id, state, inst, &plan, &dest, &dest_clean, &owner, link)
                .await;
        }
        if copied.is_ok() && !plan.archives.is_empty() {
            copied = self
                .extract_archives(&id, &plan.archives, &dest_clean)
                .await;
        }
        self.commit_step(state, inst, &id, key, copied, link).await
    }

    /// Resolves a COPY's or ADD's sources: the context entries they pick, the heredocs'
    /// bodies (expanded unless the delimiter was quoted), ADD's downloads and archives.
    async fn plan(
        &self,
        state: &State,
        inst: &Instruction,
        c: &CopyArgs,
        srcs: &[String],
        parents: bool,
        exclude: &Matcher,
    ) -> Result<Plan, BuildError> {
        let keyword = inst.keyword();
        let (urls, local): (Vec<&String>, Vec<&String>) = srcs.iter().partition(|s| {
            s.starts_with("http://") || s.starts_with("https://") || fetch::is_git(s)
        });
        if inst.flag("checksum").is_some() {
            if srcs.len() != 1 {
                return Err(BuildError::new(
                    "checksum can't be specified for multiple sources",
                ));
            }
            if urls.is_empty() {
                return Err(BuildError::new("checksum requires HTTP(S) or Git sources"));
            }
        }
        let mut inline = Vec::new();
        for h in &c.heredocs {
            if h.name.is_empty() || h.name.contains('/') || h.name == "." || h.name == ".." {
                return Err(BuildError::new(format!(
                    "{keyword} <<{}: a heredoc source's name must be a plain file name",
                    h.name
                )));
            }
            let content = if h.expand {
                let v = |n: &str| state.var(n);
                crate::expand::heredoc_body(&h.content, &self.charged(&v))
                    .map_err(|e| BuildError::new(e.to_string()))?
            } else {
                h.content.clone()
            };
            inline.push(Inline {
                name: Some(h.name.clone()),
                source: format!("<<{}", h.name),
                content: InlineContent::Bytes(content.into_bytes()),
                mode: 0o644,
                mtime: now(),
            });
        }
        for u in &urls {
            if keyword == "COPY" {
                return Err(BuildError::new(if fetch::is_git(u) {
                    "source can't be a git ref for COPY"
                } else {
                    "source can't be a URL for COPY"
                }));
            }
            if fetch::is_git(u) {
                return Err(BuildError::new(format!(
                    "ADD of a git repository ({u}) is not supported by berth's builder: \
                     clone it into the build context"
                )));
            }
        }
        for u in urls {
            let mut d = fetch::download(u, &self.dir, self.engine.images().ingest_limits())
                .await
                .map_err(|e| BuildError::new(format!("ADD failed: {e}")))?;
            if let Some(expected) = inst.flag("checksum") {
                let v = |n: &str| state.var(n);
                let expected = self.expand_word(expected, &v)?;
                fetch::verify_checksum(&expected, &mut d)
                    .map_err(|e| BuildError::new(format!("ADD {u}: {e}")))?;
            }
            inline.push(Inline {
                name: d.name,
                source: u.clone(),
                content: InlineContent::File(d.file, d.size),
                mode: 0o600,
                mtime: d.mtime,
            });
        }
        let local: Vec<String> = local.into_iter().cloned().collect();
        // Off the async threads: matching patterns against a large context takes a while.
        let mut roots = {
            let (b, inst, local) = (self.clone(), inst.clone(), local.clone());
            tokio::task::spawn_blocking(move || b.sources(&inst, &local, parents))
                .await
                .map_err(|e| BuildError::new(e.to_string()))??
        };
        let root_count = roots.len();
        // ADD extracts a local archive (a tar, plain or compressed) into the destination.
        let mut archives = Vec::new();
        if keyword == "ADD" && !roots.is_empty() {
            let context = self.context.clone();
            let budget_dir = self.dir.clone();
            let limits = self.engine.images().ingest_limits();
            let (rest, found) = tokio::task::spawn_blocking(move || {
                let budget = berth_image::Budget::for_archive(&budget_dir, limits)?;
                Ok::<_, berth_image::ImageError>(roots.into_iter().partition::<Vec<_>, _>(|r| {
                    !matches!(r, Root::Path(p) if context
                        .get(p)
                        .is_some_and(|e| context.is_archive(e, &budget)))
                }))
            })
            .await
            .map_err(|e| BuildError::new(e.to_string()))?
            .map_err(|e| BuildError::new(format!("ADD: {e}")))?;
            roots = rest;
            archives = found
                .into_iter()
                .filter_map(|r| match r {
                    Root::Path(p) => Some(p),
                    _ => None,
                })
                .collect();
        }
        let context = self.context.clone();
        let exclude = exclude.clone();
        let picked = tokio::task::spawn_blocking(move || pick(&context, &roots, &exclude))
            .await
            .map_err(|e| BuildError::new(e.to_string()))?;
        Ok(Plan {
            picked,
            inline,
            archives,
            sources: srcs.len() + c.heredocs.len(),
            roots: root_count,
        })
    }

    /// The digest of what a plan copies: each entry's path below the destination, kind,
    /// mode, link and content; each inline file's name and content; each archive's content.
    async fn plan_digest(&self, plan: &mut Plan) -> Result<String, BuildError> {
        use sha2::{Digest, Sha256};
        let context = self.context.clone();
        let picked = std::mem::take(&mut plan.picked);
        let archives = plan.archives.clone();
        let (digest, picked) = tokio::task::spawn_blocking(move || {
            let mut parts = Vec::new();
            parts.push(context.digest("", picked.iter().map(|p| &p.entry))?);
            let names: Vec<(&str, bool)> = picked
                .iter()
                .map(|p| (p.below.as_str(), p.single))
                .collect();
            parts.push(format!(
                "{:x}",
                Sha256::digest(format!("{names:?}").as_bytes())
            ));
            for a in &archives {
                let e = context.get(a).expect("an archive found in the context");
                parts.push(format!(
                    "archive:{}",
                    context.digest("", std::iter::once(e))?
                ));
            }
            Ok::<_, std::io::Error>((parts.join(","), picked))
        })
        .await
        .map_err(|e| BuildError::new(e.to_string()))?
        .map_err(|e| BuildError::new(format!("read the build context: {e}")))?;
        plan.picked = picked;
        let mut out = digest;
        for i in &mut plan.inline {
            let mut h = Sha256::new();
            h.update(format!("{:?}\0{}\0{:o}\0", i.name, i.size(), i.mode).as_bytes());
            match &mut i.content {
                InlineContent::Bytes(b) => h.update(&b[..]),
                InlineContent::File(f, _) => {
                    std::io::copy(f, &mut HashWriter(&mut h))
                        .and_then(|_| f.rewind())
                        .map_err(|e| BuildError::new(format!("read {}: {e}", i.source)))?;
                }
            }
            out.push_str(&format!(",inline:{:x}", h.finalize()));
        }
        Ok(out)
    }

    /// A created container of the empty image: where a `--link` copy is made.
    async fn scratch_container(&self) -> Result<String, BuildError> {
        let engine = self.engine.clone();
        let scratch = tokio::task::spawn_blocking(move || engine.images().scratch())
            .await
            .map_err(|e| BuildError::new(e.to_string()))?
            .map_err(|e| BuildError::new(format!("COPY --link: {e}")))?;
        let empty = State {
            image: scratch,
            config: ContainerConfig::default(),
            args: Default::default(),
        };
        self.step_container(&empty, vec!["true".into()]).await
    }

    /// Ends a step made in container `id`: committed with its cache key when `done` is
    /// fine (`link`: its layer laid on the current image), and the container removed
    /// either way.
    async fn commit_step(
        &self,
        state: &mut State,
        inst: &Instruction,
        id: &str,
        key: String,
        done: Result<(), BuildError>,
        link: bool,
    ) -> Result<(), BuildError> {
        if let Err(e) = done {
            let _ = self.remove(id).await;
            return Err(e);
        }
        let mut opts = self.commit_options(state, inst);
        opts.cache_key = Some(key);
        let committed = if link {
            self.engine.commit_build_onto(id, &state.image, opts).await
        } else {
            self.engine.commit_build(id, opts).await
        };
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
            let bytes =
                super::dir_tar(dest_clean).map_err(|e| BuildError::new(format!("ADD: {e}")))?;
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
        &self,
        state: &mut State,
        inst: &Instruction,
        from: &str,
        srcs: &[String],
        dest: &str,
        dest_clean: &str,
        owner: &Ownership,
        link: bool,
    ) -> Result<(), BuildError> {
        let source_image = self.image_named(from, "COPY --from").await?;
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
                &format!("link={link}"),
            ],
        );
        if self.use_cache(state, &key) {
            return Ok(());
        }
        let source_state = State {
            image: source_image,
            config: ContainerConfig::default(),
            args: Default::default(),
        };
        let source = self
            .step_container(&source_state, vec!["true".into()])
            .await?;
        let target = if link {
            self.scratch_container().await
        } else {
            self.step_container(state, vec!["true".into()]).await
        };
        let target = match target {
            Ok(t) => t,
            Err(e) => {
                let _ = self.remove(&source).await;
                return Err(e);
            }
        };
        let copied = self
            .copy_between(&source, &target, state, srcs, dest, dest_clean, owner, link)
            .await;
        let _ = self.remove(&source).await;
        self.commit_step(state, inst, &target, key, copied, link)
            .await
    }

    /// Copies `srcs` (absolute in container `source`) to `dest_clean` in `target`.
    #[allow(clippy::too_many_arguments)]
    async fn copy_between(
        &self,
        source: &str,
        target: &str,
        state: &State,
        srcs: &[String],
        dest: &str,
        dest_clean: &str,
        owner: &Ownership,
        link: bool,
    ) -> Result<(), BuildError> {
        let dest_dir = if link {
            written_as_dir(dest, srcs.len() > 1)
        } else {
            self.dest_is_dir(target, dest, dest_clean, srcs.len() > 1)
                .await
        };
        let (uid, gid) = self.copy_owner(target, state, owner, link).await?;
        let tar_path = self.dir.join(format!("copy-{}.tar", rand_suffix()));
        let file = std::fs::File::create(&tar_path)
            .map_err(|e| BuildError::new(format!("prepare the copy: {e}")))?;
        let mut out = tar::Builder::new(std::io::BufWriter::new(file));
        for s in srcs {
            let path = format!("/{}", crate::context::clean_in_root(s));
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
                let kind = h.entry_type();
                if kind != tar::EntryType::Symlink && owner.chmod.is_some() {
                    let mode = h.mode().map_err(|e| fail(e.to_string()))?;
                    h.set_mode(owner.mode(mode & 0o7777, kind == tar::EntryType::Directory));
                }
                let target_name = target_name.trim_start_matches('/').to_string();
                let r = match kind {
                    tar::EntryType::Symlink | tar::EntryType::Link => {
                        let link = entry
                            .link_name_bytes()
                            .map(|l| String::from_utf8_lossy(&l).into_owned())
                            .unwrap_or_default();
                        let link = if kind == tar::EntryType::Link {
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

    /// The context roots COPY's local sources name (globs matched); with `--parents`, each
    /// source's base and pattern.
    fn sources(
        &self,
        inst: &Instruction,
        srcs: &[String],
        parents: bool,
    ) -> Result<Vec<Root>, BuildError> {
        let outside = |s: &str| {
            BuildError::new(format!(
                "{} failed: forbidden path outside the build context: {s}",
                inst.keyword()
            ))
        };
        let missing = |s: &str| {
            BuildError::new(format!(
                "{} failed: file not found in build context or excluded by \
                 .dockerignore: stat {s}: file does not exist",
                inst.keyword()
            ))
        };
        let too_long = |s: &str| {
            BuildError::new(format!(
                "{} {s}: the sources' patterns take too long to match against the build \
                 context",
                inst.keyword()
            ))
        };
        let wild = |s: &str| s.contains(['*', '?', '[']);
        let mut work = GlobWork::default();
        let mut roots = Vec::new();
        for s in srcs {
            if parents {
                // BuildKit: the part before `/./` is where the kept path starts; without
                // one, the context's root.
                let (base, pattern) = match s.split_once("/./") {
                    Some((b, p)) => (b, p),
                    None => ("", s.as_str()),
                };
                let base_clean = clean(base).ok_or_else(|| outside(s))?;
                let pattern = clean(pattern).ok_or_else(|| outside(s))?;
                let bases: Vec<String> = if wild(&base_clean) {
                    self.context
                        .all()
                        .filter(|e| {
                            e.kind == EntryKind::Dir
                                && glob_match_within(&base_clean, &e.path, &mut work)
                        })
                        .map(|e| e.path.clone())
                        .collect()
                } else {
                    vec![base_clean.clone()]
                };
                if work.exceeded() {
                    return Err(too_long(s));
                }
                // A source without wildcards must exist (BuildKit's required path).
                if !wild(s) {
                    let full = [base_clean.as_str(), pattern.as_str()]
                        .iter()
                        .filter(|p| !p.is_empty())
                        .copied()
                        .collect::<Vec<_>>()
                        .join("/");
                    if !full.is_empty() && self.context.get(&full).is_none() {
                        return Err(missing(s));
                    }
                }
                for base in bases {
                    roots.push(Root::Parents {
                        base,
                        pattern: pattern.clone(),
                    });
                }
                continue;
            }
            let rel = clean(s).ok_or_else(|| outside(s))?;
            if rel.is_empty() {
                roots.push(Root::All);
                continue;
            }
            let before = roots.len();
            if wild(s) {
                roots.extend(
                    self.context
                        .all()
                        .filter(|e| glob_match_within(&rel, &e.path, &mut work))
                        .map(|e| Root::Path(e.path.clone())),
                );
            } else if self.context.get(&rel).is_some() {
                roots.push(Root::Path(rel));
            }
            if work.exceeded() {
                return Err(too_long(s));
            }
            if roots.len() == before {
                return Err(missing(s));
            }
        }
        Ok(roots)
    }

    /// The owner of what a COPY writes: root, or `--chown`'s, its names looked up in the
    /// current image (for `--link`, a container of it made for the look-up).
    async fn copy_owner(
        &self,
        id: &str,
        state: &State,
        owner: &Ownership,
        link: bool,
    ) -> Result<(u32, u32), BuildError> {
        let Some(spec) = owner.chown.as_deref() else {
            return Ok((0, 0));
        };
        if !link || spec.split(':').all(|p| p.parse::<u32>().is_ok()) {
            return self.owner_ids(id, owner).await;
        }
        let probe = self.step_container(state, vec!["true".into()]).await?;
        let ids = self.owner_ids(&probe, owner).await;
        let _ = self.remove(&probe).await;
        ids
    }

    /// Extracts a plan into container `id` at `dest_clean` (`dest` as written decides
    /// whether it is a directory: a trailing `/`, several sources, or, but for `--link`, a
    /// directory there already).
    #[allow(clippy::too_many_arguments)]
    async fn copy_into(
        &self,
        id: &str,
        state: &State,
        inst: &Instruction,
        plan: &Plan,
        dest: &str,
        dest_clean: &str,
        owner: &Ownership,
        link: bool,
    ) -> Result<(), BuildError> {
        let many = plan.sources > 1 || plan.roots > 1;
        let dest_dir = if link {
            written_as_dir(dest, many)
        } else {
            self.dest_is_dir(id, dest, dest_clean, many).await
        };
        let (uid, gid) = self.copy_owner(id, state, owner, link).await?;
        let tar_path = self.dir.join(format!("copy-{}.tar", rand_suffix()));
        let fail = |e: std::io::Error| BuildError::new(format!("prepare the copy: {e}"));
        {
            let file = std::fs::File::create(&tar_path).map_err(fail)?;
            let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
            tar.mode(tar::HeaderMode::Deterministic);
            let base = dest_clean;
            let name_of = |below: &str, single: bool| {
                if single && !dest_dir {
                    base.to_string()
                } else {
                    format!("{base}/{below}")
                        .trim_start_matches('/')
                        .to_string()
                }
            };
            if plan.picked.is_empty() && plan.inline.is_empty() {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_uid(uid as u64);
                h.set_gid(gid as u64);
                h.set_size(0);
                tar.append_data(&mut h, format!("{base}/"), std::io::empty())
                    .map_err(fail)?;
            }
            for p in &plan.picked {
                let e = &p.entry;
                let name = name_of(&p.below, p.single);
                let mut h = tar::Header::new_gnu();
                h.set_mode(owner.mode(e.mode, e.kind == EntryKind::Dir));
                h.set_uid(uid as u64);
                h.set_gid(gid as u64);
                h.set_mtime(e.mtime);
                match e.kind {
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
                }
                .map_err(fail)?;
            }
            for i in &plan.inline {
                let name = match (&i.name, dest_dir) {
                    (Some(n), true) => name_of(n, false),
                    (_, false) => base.to_string(),
                    (None, true) => {
                        return Err(BuildError::new(format!(
                            "{} failed: cannot determine filename for source {}",
                            inst.keyword(),
                            i.source
                        )))
                    }
                };
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(owner.mode(i.mode, false));
                h.set_uid(uid as u64);
                h.set_gid(gid as u64);
                h.set_mtime(i.mtime);
                h.set_size(i.size());
                match &i.content {
                    InlineContent::Bytes(b) => tar.append_data(&mut h, &name, &b[..]),
                    InlineContent::File(f, _) => tar.append_data(&mut h, &name, f),
                }
                .map_err(fail)?;
            }
            let mut w = tar.into_inner().map_err(fail)?;
            w.flush().map_err(fail)?;
        }
        let mut file = std::fs::File::open(&tar_path).map_err(fail)?;
        let _ = std::fs::remove_file(&tar_path);
        file.rewind().map_err(fail)?;
        self.engine
            .archive_put(id, "/", ExtractOptions::default(), Box::new(file))
            .await
            .map_err(|e| BuildError::new(format!("{} failed: {e}", inst.keyword())))
    }
}

/// Docker's rule for a destination seen as written only (`--link` sees no image): a
/// directory when it ends in `/` or `/.`, is `.`, or takes several sources.
fn written_as_dir(dest: &str, many: bool) -> bool {
    dest.ends_with('/') || dest.ends_with("/.") || dest == "." || many
}

/// The entries `roots` pick from the context, minus those `exclude` matches (paths
/// relative to each source's root, `.dockerignore`'s rules; a source that is one file is
/// never excluded, as in BuildKit, which tests the entries below a source only).
fn pick(context: &crate::context::Context, roots: &[Root], exclude: &Matcher) -> Vec<Picked> {
    let excluded = |rel: &str| exclude.matches(rel, None).0;
    let mut out = Vec::new();
    for root in roots {
        match root {
            Root::All => {
                for e in context.all().filter(|e| !e.path.is_empty()) {
                    if !excluded(&e.path) {
                        out.push(Picked {
                            below: e.path.clone(),
                            entry: e.clone(),
                            single: false,
                        });
                    }
                }
            }
            Root::Path(path) => {
                let Some(m) = context.get(path) else { continue };
                if m.kind == EntryKind::Dir {
                    for e in context.subtree(&m.path).filter(|e| e.path != m.path) {
                        let below = &e.path[m.path.len() + 1..];
                        if !excluded(below) {
                            out.push(Picked {
                                below: below.to_string(),
                                entry: e.clone(),
                                single: false,
                            });
                        }
                    }
                } else {
                    out.push(Picked {
                        below: m.path.rsplit('/').next().unwrap_or(&m.path).to_string(),
                        entry: m.clone(),
                        single: true,
                    });
                }
            }
            Root::Parents { base, pattern } => {
                let Ok(include) = Matcher::new(std::slice::from_ref(pattern)) else {
                    continue;
                };
                let mut chosen: std::collections::BTreeMap<String, Entry> = Default::default();
                for e in context.subtree(base) {
                    let below = if base.is_empty() {
                        e.path.as_str()
                    } else if e.path == *base {
                        continue;
                    } else {
                        &e.path[base.len() + 1..]
                    };
                    if below.is_empty() || !include.matches(below, None).0 || excluded(below) {
                        continue;
                    }
                    // Its parents below the base come along (BuildKit makes them, with
                    // the context's modes).
                    let mut dir = below;
                    while let Some((parent, _)) = dir.rsplit_once('/') {
                        let full = if base.is_empty() {
                            parent.to_string()
                        } else {
                            format!("{base}/{parent}")
                        };
                        if let Some(d) = context.get(&full) {
                            chosen
                                .entry(parent.to_string())
                                .or_insert_with(|| d.clone());
                        }
                        dir = parent;
                    }
                    chosen.insert(below.to_string(), e.clone());
                }
                out.extend(chosen.into_iter().map(|(below, entry)| Picked {
                    below,
                    entry,
                    single: false,
                }));
            }
        }
    }
    out
}

struct HashWriter<'a>(&'a mut sha2::Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;

    fn context_of(name: &str, files: &[&str]) -> Context {
        let mut tar = tar::Builder::new(Vec::new());
        for path in files {
            let mut h = tar::Header::new_gnu();
            if let Some(dir) = path.strip_suffix('/') {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                tar.append_data(&mut h, format!("{dir}/"), std::io::empty())
                    .unwrap();
            } else {
                h.set_mode(0o644);
                h.set_size(path.len() as u64);
                tar.append_data(&mut h, path, path.as_bytes()).unwrap();
            }
        }
        let bytes = tar.into_inner().unwrap();
        let dir = std::env::temp_dir().join(format!("berth-pick-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = std::fs::File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(dir.join("context.tar"))
            .unwrap();
        let budget = berth_image::Budget::for_archive(&dir, Default::default()).unwrap();
        let ctx = Context::ingest(bytes.as_slice(), file, &budget).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        ctx
    }

    fn picked(ctx: &Context, roots: &[Root], exclude: &[&str]) -> Vec<String> {
        let patterns: Vec<String> = exclude.iter().map(|s| s.to_string()).collect();
        let m = Matcher::new(&patterns).unwrap();
        pick(ctx, roots, &m)
            .into_iter()
            .map(|p| format!("{}{}", p.below, if p.single { " (single)" } else { "" }))
            .collect()
    }

    #[test]
    fn parents_keep_paths_below_the_pivot_with_their_directories() {
        let ctx = context_of(
            "parents",
            &[
                "a/",
                "a/b/",
                "a/b/c.txt",
                "a/b/d.md",
                "a/e.txt",
                "x/",
                "x/y/",
                "x/y/z.txt",
            ],
        );
        let parents = |base: &str, pattern: &str| Root::Parents {
            base: base.into(),
            pattern: pattern.into(),
        };
        assert_eq!(
            picked(&ctx, &[parents("", "a/b/*.txt")], &[]),
            ["a", "a/b", "a/b/c.txt"]
        );
        assert_eq!(
            picked(&ctx, &[parents("a", "b/*.md")], &[]),
            ["b", "b/d.md"]
        );
        assert_eq!(
            picked(&ctx, &[parents("", "x")], &[]),
            ["x", "x/y", "x/y/z.txt"]
        );
        assert_eq!(
            picked(&ctx, &[parents("", "a")], &["**/*.md", "a/e.txt"]),
            ["a", "a/b", "a/b/c.txt"]
        );
    }

    #[test]
    fn excludes_match_below_each_source_and_spare_a_single_file() {
        let ctx = context_of(
            "exclude",
            &["a/", "a/b/", "a/b/c.txt", "a/b/d.md", "a/e.md"],
        );
        assert_eq!(
            picked(&ctx, &[Root::Path("a".into())], &["*.md"]),
            ["b", "b/c.txt", "b/d.md"]
        );
        assert_eq!(
            picked(&ctx, &[Root::Path("a".into())], &["**/*.md", "!b/d.md"]),
            ["b", "b/c.txt", "b/d.md"]
        );
        assert_eq!(picked(&ctx, &[Root::All], &["a/b"]), ["a", "a/e.md"]);
        assert_eq!(
            picked(&ctx, &[Root::Path("a/e.md".into())], &["*.md"]),
            ["e.md (single)"]
        );
    }
}
