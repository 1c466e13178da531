//! The executor: runs a parsed Dockerfile's stages through the engine, step by step, and
//! says what it does in the classic builder's words (`Step 2/6 : RUN ...`, ` ---> id`).
//!
//! Each step starts from the previous step's image. A RUN is a container of that image
//! (the same runtime, isolation and limits as `run`), committed as a layer with the build's
//! config; a COPY or ADD is the context's entries extracted into a created (not started)
//! container by the engine's archive extraction, then committed; the other instructions
//! change the config only and make an image without a layer (no container at all, unlike
//! Docker's classic builder).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use berth_api::container::{Config, CreateRequest, HostConfig};
use berth_engine::{Engine, ExtractOptions, LogOptions, WaitCondition};
use berth_image::{CommitOptions, ContainerConfig, Healthcheck};
use tokio::sync::mpsc::UnboundedSender;

use crate::context::{clean, Context, EntryKind};
use crate::dockerfile::{self, Command, Health, Instruction, Kind, Stage};
use crate::expand;

mod copy;
mod runmount;
pub(crate) use runmount::{remove_secrets_dir, secrets_dir};

/// What a build is asked to do (`POST /build`'s query).
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The Dockerfile's path in the context (`Dockerfile` by default).
    pub dockerfile: String,
    /// `t`: `repo[:tag]` names for the result.
    pub tags: Vec<String>,
    /// `buildargs`: a value, or `None` to take it from... nowhere (an unset arg).
    pub build_args: BTreeMap<String, Option<String>>,
    /// `labels`: added to the final image.
    pub labels: BTreeMap<String, String>,
    /// `target`: the last stage built.
    pub target: Option<String>,
    /// `networkmode` of the RUN containers (`default`, `none`, `host`).
    pub network_mode: String,
    /// `rm` (default true): remove the intermediate containers of successful steps.
    pub remove: bool,
    /// `forcerm`: remove them even after a failure.
    pub force_remove: bool,
    /// `nocache`: run every step (what they make still serves later builds).
    pub no_cache: bool,
    /// `--no-cache-filter` (berth build's; BuildKit's flag): the stages, by name, whose
    /// steps all run.
    pub no_cache_stages: Vec<String>,
    /// The secrets `RUN --mount=type=secret` mounts (`berth build --secret`, sent in berth's
    /// frame in front of the context: [`berth_api::build_secrets`]). Never in a cache key,
    /// a log line or an image.
    pub secrets: berth_api::build_secrets::Secrets,
    /// `pull`: pull every base image named by FROM, even one the store has.
    pub pull: bool,
    /// How a base image the store lacks (or every one, with `pull`) is pulled: berthd's
    /// registry client. `None`: a missing base is an error.
    pub puller: Option<Puller>,
}

/// Pulls a reference for the builder, sending Docker's progress lines (JSON objects) to
/// the sink; the error is the pull's message.
#[derive(Clone)]
pub struct Puller(pub Arc<PullFn>);

/// What a [`Puller`] calls.
pub type PullFn = dyn Fn(
        String,
        Arc<dyn Fn(serde_json::Value) + Send + Sync>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
    + Send
    + Sync;

impl std::fmt::Debug for Puller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Puller")
    }
}

/// A line of the build's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `{"stream": text}`.
    Stream(String),
    /// `{"aux": {"ID": id}}`: the image built.
    Aux(String),
    /// A line of a base image's pull (`{"status": .., "id": .., "progressDetail": ..}`).
    Json(serde_json::Value),
}

/// Why a build failed: the message, and the exit code a failing RUN returned (the docker
/// CLI exits with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    pub message: String,
    pub code: Option<i64>,
}

impl BuildError {
    fn new(message: impl Into<String>) -> Self {
        BuildError {
            message: message.into(),
            code: None,
        }
    }
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The biggest Dockerfile read.
const MAX_DOCKERFILE: u64 = 4 << 20;

/// The most environment variables an image built may have: each lookup of a variable
/// scans them.
const MAX_ENV: usize = 10_000;

/// The most stages a Dockerfile may have: each needed one is a task from the build's start,
/// and 100000 one-line stages (an 800 kB Dockerfile) held 1.4 GB of berthd's memory.
const MAX_STAGES: usize = 1000;

/// Docker's default shell.
fn default_shell() -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into()]
}

/// The build args every build knows without an ARG (Docker's predefined proxy args).
const PREDEFINED_ARGS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// One stage's state between steps.
struct State {
    /// The current image: the previous step's.
    image: String,
    config: ContainerConfig,
    /// The ARGs declared in this stage, with their values.
    args: BTreeMap<String, Option<String>>,
}

impl State {
    fn shell(&self) -> Vec<String> {
        self.config.shell.clone().unwrap_or_else(default_shell)
    }

    fn env(&self) -> Vec<(String, String)> {
        self.config
            .env
            .iter()
            .flatten()
            .filter_map(|e| e.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A variable for expansion: the stage's ENV first, then its ARGs.
    fn var(&self, name: &str) -> Option<String> {
        // Only the value found is copied: a lookup costs no more than the scan.
        self.config
            .env
            .iter()
            .flatten()
            .rev()
            .filter_map(|e| e.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
            .or_else(|| self.args.get(name).cloned().flatten())
    }
}

/// A build in progress. Each stage is built by a clone of it (its own `out` and `stage`),
/// concurrently with the stages it does not wait for.
#[derive(Clone)]
pub struct Builder {
    engine: Arc<Engine>,
    context: Arc<Context>,
    opts: BuildOptions,
    /// Where this stage's lines go: [`Builder::run`] passes them on in stage order.
    out: UnboundedSender<Message>,
    /// Where the build keeps its files (the COPY tars).
    dir: PathBuf,
    escape: char,
    /// Which build args some ARG consumed.
    used_args: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
    /// The stages' final image ids, by index, once built (`None` inside: it failed).
    stage_images: Arc<Vec<tokio::sync::watch::Sender<Option<Option<String>>>>>,
    /// Which stages this build builds (the others are never waited for).
    needed: Arc<Vec<bool>>,
    /// The stages' names (`AS name`), by index.
    stage_names: Arc<Vec<Option<String>>>,
    /// The stage this clone builds.
    stage: usize,
    /// The step containers that exist now: removed by [`Builder::abandon`] when the build
    /// is stopped part-way (its client went away).
    live: Live,
    /// What variables may still substitute in this build's expansions.
    substituted: Arc<expand::Budget>,
}

/// A stage's variables, by name.
type VarsFn<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The most bytes variables may substitute in one build's expansions (see
/// [`expand::Budget`]).
const MAX_SUBSTITUTED: u64 = 64 << 20;

/// A stage being built: its index, its task, and its lines.
type StageTask = (
    usize,
    tokio::task::JoinHandle<Result<String, BuildError>>,
    tokio::sync::mpsc::UnboundedReceiver<Message>,
);

/// The step containers of a build that exist now, with the stage each belongs to.
pub type Live = Arc<std::sync::Mutex<LiveSet>>;

/// What [`Live`] holds: the step containers, and which stages were stopped. A container made
/// for a stopped stage (its creation was under way when the stage's task was aborted) is
/// removed by its maker instead of being kept: nothing outlives a stopped build.
#[derive(Debug, Default)]
pub struct LiveSet {
    containers: BTreeMap<String, usize>,
    /// Every stage stopped (the client went away).
    all_stopped: bool,
    /// Every stage but this one stopped (it failed).
    only: Option<usize>,
}

impl LiveSet {
    /// Marks every stage stopped; their containers, to remove.
    pub fn stop_all(&mut self) -> Vec<String> {
        self.all_stopped = true;
        std::mem::take(&mut self.containers).into_keys().collect()
    }

    /// Marks every stage but `kept` stopped; their containers, to remove.
    fn stop_all_but(&mut self, kept: usize) -> Vec<String> {
        self.only = Some(kept);
        let ids: Vec<String> = self
            .containers
            .iter()
            .filter(|(_, s)| **s != kept)
            .map(|(id, _)| id.clone())
            .collect();
        self.containers.retain(|_, s| *s == kept);
        ids
    }

    fn is_stopped(&self, stage: usize) -> bool {
        self.all_stopped || self.only.is_some_and(|k| k != stage)
    }
}

/// Aborts a build's stage tasks when dropped: a build stopped from outside (its client went
/// away, and the task that ran it was aborted) stops every stage, not only the task that
/// waited for them.
struct AbortOnDrop(Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// The label of every step container (`com.berth.build-step`): one left by a berthd that
/// died mid-build is removed at the next start ([`crate::clean_leftovers`]).
pub const STEP_LABEL: &str = "com.berth.build-step";

impl Builder {
    pub fn new(
        engine: Arc<Engine>,
        context: Arc<Context>,
        opts: BuildOptions,
        dir: PathBuf,
        out: UnboundedSender<Message>,
    ) -> Builder {
        Builder {
            engine,
            context,
            opts,
            out,
            dir,
            escape: '\\',
            used_args: Default::default(),
            stage_images: Default::default(),
            needed: Default::default(),
            stage_names: Default::default(),
            stage: 0,
            live: Live::default(),
            substituted: Arc::new(expand::Budget::new(MAX_SUBSTITUTED)),
        }
    }

    /// The handle to the build's step containers, for [`abandon`].
    pub fn live(&self) -> Live {
        self.live.clone()
    }

    fn say(&self, text: impl Into<String>) {
        let _ = self.out.send(Message::Stream(text.into()));
    }

    /// Builds; returns the image id.
    pub async fn run(mut self) -> Result<String, BuildError> {
        let name = if self.opts.dockerfile.is_empty() {
            "Dockerfile".to_string()
        } else {
            self.opts.dockerfile.clone()
        };
        let text = self.read_dockerfile(&name)?;
        // Read: now out of COPY's sight if the .dockerignore says so (nothing shares the
        // context yet).
        if let Some(ctx) = Arc::get_mut(&mut self.context) {
            ctx.drop_ignored_build_files(&name);
        }
        let df = dockerfile::parse(&name, &text)
            .map_err(|e| BuildError::new(format!("failed to parse {name}: {e}")))?;
        if df.stages.len() > MAX_STAGES {
            return Err(BuildError::new(format!(
                "the Dockerfile {name} has {} stages: berth's builder takes at most {MAX_STAGES}",
                df.stages.len()
            )));
        }
        self.escape = df.directives.escape;
        for w in &df.warnings {
            self.say(format!("[WARNING]: {w}\n"));
        }
        if !df.warnings.is_empty() {
            self.say(
                "[WARNING]: Empty continuation lines will become errors in a future release.\n",
            );
        }
        let last = match &self.opts.target {
            Some(t) => df
                .stages
                .iter()
                .position(|s| s.name.as_deref() == Some(t.to_ascii_lowercase().as_str()))
                .ok_or_else(|| {
                    BuildError::new(format!("failed to reach build target {t} in Dockerfile"))
                })?,
            None => df.stages.len() - 1,
        };
        // Global ARGs: their defaults, overridden by the build args, for FROM lines.
        let mut globals = BTreeMap::new();
        for a in &df.global_args {
            if let Kind::Arg(list) = &a.kind {
                for (k, default) in list {
                    // A build arg without a value (`--build-arg K` with K unset on the
                    // client) leaves the default, as Docker's.
                    let v = match self.opts.build_args.get(k) {
                        Some(Some(v)) => Some(v.clone()),
                        _ => default
                            .as_deref()
                            .map(|d| self.expand_word(d, &|n: &str| globals_get(&globals, n)))
                            .transpose()?,
                    };
                    self.used_args.lock().expect("args lock").insert(k.clone());
                    globals.insert(k.clone(), v);
                }
            }
        }
        for s in &self.opts.no_cache_stages {
            if !df.stages.iter().any(|st| {
                st.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(s))
            }) {
                return Err(BuildError::new(format!(
                    "--no-cache-filter {s}: the Dockerfile has no stage of that name"
                )));
            }
        }
        let needed = needed_stages(&df.stages, last);
        let total: usize = df.stages[..=last]
            .iter()
            .zip(&needed)
            .filter(|(_, n)| **n)
            .map(|(s, _)| 1 + s.instructions.len())
            .sum::<usize>();
        self.stage_images = Arc::new(
            df.stages
                .iter()
                .map(|_| tokio::sync::watch::Sender::new(None))
                .collect(),
        );
        self.stage_names = Arc::new(df.stages.iter().map(|s| s.name.clone()).collect());
        self.needed = Arc::new(needed);
        let mut image = self
            .build_stages(Arc::new(df.stages), last, Arc::new(globals), total)
            .await?;
        if !self.opts.labels.is_empty() {
            image = self.relabel(&image).await?;
        }
        self.engine
            .images()
            .keep_built(&image)
            .map_err(|e| BuildError::new(e.to_string()))?;
        let _ = self.out.send(Message::Aux(image.clone()));
        let unused: Vec<&String> = self
            .opts
            .build_args
            .keys()
            .filter(|k| {
                !self.used_args.lock().expect("args lock").contains(*k)
                    && !PREDEFINED_ARGS.contains(&k.as_str())
            })
            .collect();
        if !unused.is_empty() {
            let list: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            self.say(format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                list.join(" ")
            ));
        }
        if let Some(max) = self.engine.config().build_cache_max {
            // Oldest first, until the rest fits berthd's bound.
            let req = berth_engine::BuildPrune {
                all: true,
                keep_storage: Some(max),
                ..Default::default()
            };
            let engine = self.engine.clone();
            match tokio::task::spawn_blocking(move || engine.prune_build_cache(&req)).await {
                Ok(Err(e)) => tracing::warn!("bound the build cache: {e}"),
                Err(e) => tracing::warn!("bound the build cache: {e}"),
                Ok(Ok(_)) => {}
            }
        }
        self.say(format!("Successfully built {}\n", short(&image)));
        for t in &self.opts.tags {
            let (repo, tag) = split_tag(t);
            self.engine
                .tag_image(&image, repo, tag)
                .map_err(|e| BuildError::new(e.to_string()))?;
            self.say(format!(
                "Successfully tagged {}\n",
                berth_engine::familiar_tagged(repo, tag)
            ));
        }
        Ok(image)
    }

    fn read_dockerfile(&self, name: &str) -> Result<String, BuildError> {
        let path = clean(name).ok_or_else(|| {
            BuildError::new(format!(
                "the Dockerfile ({name}) must be within the build context"
            ))
        })?;
        let missing = || BuildError::new(format!("Cannot locate specified Dockerfile: {name}"));
        let e = self.context.get(&path).ok_or_else(missing)?;
        if !matches!(e.kind, EntryKind::File | EntryKind::HardLink) {
            return Err(missing());
        }
        let bytes = self
            .context
            .read(e, MAX_DOCKERFILE)
            .map_err(|e| BuildError::new(format!("read the Dockerfile {name}: {e}")))?;
        String::from_utf8(bytes)
            .map_err(|_| BuildError::new(format!("the Dockerfile {name} is not UTF-8 text")))
    }

    fn expand_word(
        &self,
        raw: &str,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, BuildError> {
        expand::word(raw, &self.charged(vars), self.escape)
            .map_err(|e| BuildError::new(e.to_string()))
    }

    /// [`expand::words`], charged to the build's budget.
    fn expand_words(
        &self,
        raw: &str,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<String>, BuildError> {
        expand::words(raw, &self.charged(vars), self.escape)
            .map_err(|e| BuildError::new(e.to_string()))
    }

    /// `vars`, their substitutions charged to the build's budget.
    fn charged<'a>(
        &'a self,
        vars: &'a dyn Fn(&str) -> Option<String>,
    ) -> expand::Charged<'a, VarsFn<'a>> {
        expand::Charged {
            get: vars,
            budget: &self.substituted,
        }
    }

    /// Builds the needed stages up to `last`, each in its own task as soon as the build
    /// starts (a stage waits only where it uses another's image), and passes their lines on
    /// in stage order, so the output reads as a sequential build's. The first stage to fail
    /// stops the others (their step containers are removed; the failed step's stays, as
    /// Docker leaves it); its lines come out whole, then its error.
    async fn build_stages(
        &self,
        stages: Arc<Vec<Stage>>,
        last: usize,
        globals: Arc<BTreeMap<String, Option<String>>>,
        total: usize,
    ) -> Result<String, BuildError> {
        let (fail_tx, mut fail_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
        let mut tasks = Vec::new();
        let mut first_step = 0;
        for i in (0..=last).filter(|i| self.needed[*i]) {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let mut b = self.clone();
            b.out = tx;
            b.stage = i;
            let (stages, globals, fail) = (stages.clone(), globals.clone(), fail_tx.clone());
            let mut step = first_step;
            first_step += 1 + stages[i].instructions.len();
            let task = tokio::spawn(async move {
                let built = b.build_stage(&stages, i, &globals, &mut step, total).await;
                b.stage_images[i].send_replace(Some(built.as_ref().ok().cloned()));
                if built.is_err() {
                    let _ = fail.send(i);
                }
                built
            });
            tasks.push((i, task, rx));
        }
        let _abort = AbortOnDrop(tasks.iter().map(|t| t.1.abort_handle()).collect());
        drop(fail_tx);
        let mut image = String::new();
        for k in 0..tasks.len() {
            let failed = loop {
                tokio::select! {
                    biased;
                    m = tasks[k].2.recv() => match m {
                        Some(m) => {
                            let _ = self.out.send(m);
                        }
                        None => break None,
                    },
                    Some(j) = fail_rx.recv() => break Some(j),
                }
            };
            let (failed, known) = match failed {
                Some(j) => (j, None),
                None => match (&mut tasks[k].1).await {
                    Ok(Ok(id)) => {
                        image = id;
                        continue;
                    }
                    Ok(Err(e)) => (tasks[k].0, Some(e)),
                    Err(e) => (
                        tasks[k].0,
                        Some(BuildError::new(format!("the build stopped: {e}"))),
                    ),
                },
            };
            return Err(self.stop_stages(tasks, failed, known).await);
        }
        Ok(image)
    }

    /// Stops the stages of a build whose stage `failed` failed: the others are aborted and
    /// their step containers removed; `failed`'s lines are passed on; its error returned
    /// (`known`: its task's, when that was already waited for).
    async fn stop_stages(
        &self,
        tasks: Vec<StageTask>,
        failed: usize,
        known: Option<BuildError>,
    ) -> BuildError {
        let mut error = BuildError::new("the build stopped");
        let mut known = Some(known);
        for (i, task, mut rx) in tasks {
            if i != failed {
                // A finished stage's task may have been waited for already (a JoinHandle
                // waited for again panics).
                if !task.is_finished() {
                    task.abort();
                    let _ = task.await;
                }
                continue;
            }
            let result = match known.take().flatten() {
                Some(e) => Ok(Err(e)),
                None => task.await,
            };
            while let Ok(m) = rx.try_recv() {
                let _ = self.out.send(m);
            }
            error = match result {
                Ok(Err(e)) => e,
                Ok(Ok(_)) => BuildError::new("the build stopped"),
                Err(e) => BuildError::new(format!("the build stopped: {e}")),
            };
        }
        let others = self.live.lock().expect("live lock").stop_all_but(failed);
        for id in others {
            if let Err(e) = self.engine.remove(&id, true, true).await {
                tracing::warn!(container = %id, "remove a stopped stage's container: {e}");
            }
        }
        error
    }

    /// The image a `--from` (or a mount's `from=`) names: an earlier stage, by name or index
    /// (waited for while it builds), or an image. `flag` prefixes a stage's error.
    async fn image_named(&self, from: &str, flag: &str) -> Result<String, BuildError> {
        let lower = from.to_ascii_lowercase();
        match self
            .stage_names
            .iter()
            .position(|n| n.as_deref() == Some(lower.as_str()))
            .or_else(|| from.parse::<usize>().ok())
        {
            Some(i) => self
                .stage_image(i, from)
                .await
                .map_err(|e| BuildError::new(format!("{flag}={from}: {e}"))),
            None => self.resolve_or_pull(from, false).await.map(|r| r.id),
        }
    }

    /// The image stage `i` built, waited for; `what` names it as the Dockerfile does.
    async fn stage_image(&self, i: usize, what: &str) -> Result<String, BuildError> {
        if i >= self.stage || !self.needed.get(i).copied().unwrap_or(false) {
            return Err(BuildError::new(format!(
                "stage {what} is used before it is built"
            )));
        }
        let mut rx = self.stage_images[i].subscribe();
        let done = rx
            .wait_for(|v| v.is_some())
            .await
            .map_err(|_| BuildError::new(format!("stage {what} stopped")))?;
        match &*done {
            Some(Some(id)) => Ok(id.clone()),
            _ => Err(BuildError::new(format!("stage {what} failed"))),
        }
    }

    async fn build_stage(
        &self,
        stages: &[Stage],
        index: usize,
        globals: &BTreeMap<String, Option<String>>,
        step: &mut usize,
        total: usize,
    ) -> Result<String, BuildError> {
        let stage = &stages[index];
        *step += 1;
        self.say(format!("Step {step}/{total} : {}\n", stage.from.original));
        if let Some(p) = stage.from.flag("platform") {
            let p = self.expand_word(p, &|n: &str| globals_get(globals, n))?;
            if !p.is_empty() && p != "linux/amd64" && p != "linux" {
                return Err(BuildError::new(format!(
                    "FROM --platform={p}: berth builds for this machine's platform \
                     (linux/amd64) only"
                )));
            }
        }
        let base = self.expand_word(&stage.base, &|n: &str| globals_get(globals, n))?;
        let lower = base.to_ascii_lowercase();
        let (image, config) = if let Some(i) = stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| base.parse::<usize>().ok().filter(|i| *i < stages.len()))
        {
            let id = self.stage_image(i, &base).await?;
            let rec = self.resolve(&id)?;
            (id, rec.config.config)
        } else if lower == "scratch" {
            let engine = self.engine.clone();
            let id = tokio::task::spawn_blocking(move || engine.images().scratch())
                .await
                .map_err(|e| BuildError::new(e.to_string()))?
                .map_err(|e| BuildError::new(format!("FROM scratch: {e}")))?;
            (id, ContainerConfig::default())
        } else {
            let rec = self.resolve_or_pull(&base, self.opts.pull).await?;
            (rec.id, rec.config.config)
        };
        self.say(format!(" ---> {}\n", short(&image)));
        let mut state = State {
            image,
            config,
            args: BTreeMap::new(),
        };
        // The base's ONBUILD triggers run first, in this build, and are not inherited.
        let triggers = state.config.on_build.take().unwrap_or_default();
        if !triggers.is_empty() {
            self.say(format!(
                "# Executing {} build trigger{}\n",
                triggers.len(),
                if triggers.len() == 1 { "" } else { "s" }
            ));
        }
        for t in &triggers {
            let df = dockerfile::parse("ONBUILD", &format!("FROM scratch\n{t}\n"))
                .map_err(|e| BuildError::new(format!("the base's ONBUILD trigger {t}: {e}")))?;
            for inst in &df.stages[0].instructions {
                if matches!(inst.kind, Kind::Onbuild(_)) {
                    return Err(BuildError::new(
                        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                    ));
                }
                self.step(&mut state, inst).await?;
            }
        }
        for inst in &stage.instructions {
            *step += 1;
            self.say(format!("Step {step}/{total} : {}\n", inst.original));
            self.step(&mut state, inst).await?;
            self.say(format!(" ---> {}\n", short(&state.image)));
        }
        Ok(state.image)
    }

    fn resolve(&self, reference: &str) -> Result<berth_image::ImageRecord, BuildError> {
        self.engine
            .images()
            .resolve(reference)
            .map_err(|_| BuildError::new(format!("No such image: {reference}")))
    }

    /// The image a FROM or `--from` names: pulled when the store lacks it (as Docker's
    /// classic builder does), or always with `--pull`; an image id is never pulled.
    async fn resolve_or_pull(
        &self,
        reference: &str,
        always: bool,
    ) -> Result<berth_image::ImageRecord, BuildError> {
        let by_name = berth_image::reference::parse(reference).is_ok();
        if !(always && by_name) {
            if let Ok(r) = self.engine.images().resolve(reference) {
                return Ok(r);
            }
        }
        let puller = match (&self.opts.puller, by_name) {
            (Some(p), true) => p.clone(),
            _ => return self.resolve(reference),
        };
        let out = self.out.clone();
        let quiet_sink: Arc<dyn Fn(serde_json::Value) + Send + Sync> = Arc::new(move |v| {
            let _ = out.send(Message::Json(v));
        });
        (puller.0)(reference.to_string(), quiet_sink)
            .await
            .map_err(BuildError::new)?;
        self.resolve(reference)
    }

    async fn step(&self, state: &mut State, inst: &Instruction) -> Result<(), BuildError> {
        // Flags berth's executor applies: RUN's, COPY's and ADD's (checked there) and
        // HEALTHCHECK's; any other (the parser lets ARG's and STOPSIGNAL's through, as
        // BuildKit never looks at them) is refused rather than ignored.
        if let Some(f) = inst.flags.first().filter(|_| {
            !matches!(
                inst.kind,
                Kind::Run { .. } | Kind::Copy(_) | Kind::Add(_) | Kind::Healthcheck(Health::Cmd(_))
            )
        }) {
            return Err(BuildError::new(format!(
                "{} --{} is not supported by berth's builder: refused rather than ignored",
                inst.keyword(),
                f.name
            )));
        }
        let mut config = state.config.clone();
        match &inst.kind {
            Kind::From => unreachable!("a FROM starts a stage"),
            Kind::Run { command, .. } => {
                // BuildKit's network.host entitlement: a Dockerfile alone does not take the
                // host's network; the client asks for it (`docker build --network=host`).
                if inst.flag("network") == Some("host") && self.opts.network_mode != "host" {
                    return Err(BuildError::new(
                        "RUN --network=host: network.host is not allowed: the host's network \
                         is the client's to grant (docker build --network=host)",
                    ));
                }
                return self.run_step(state, inst, command).await;
            }
            Kind::Copy(c) | Kind::Add(c) => return self.copy_step(state, inst, c).await,
            Kind::Env(pairs) => {
                // Docker's rules: every pair is expanded with the environment as it was
                // before the instruction (`ENV abc=bye def=$abc` gives def the old abc),
                // then replaces its name's first entry in place, or is added at the end.
                // Names are found by an index: a scan and a copy of the whole environment
                // per pair made an ENV of 150000 pairs hold a thread for hours.
                let mut env = config.env.take().unwrap_or_default();
                let mut index: std::collections::HashMap<String, usize> = Default::default();
                for (i, e) in env.iter().enumerate() {
                    let name = e.split('=').next().unwrap_or_default();
                    index.entry(name.to_string()).or_insert(i);
                }
                let mut expanded = Vec::with_capacity(pairs.len());
                {
                    // The last entry of a name is its value (as `State::var` finds it).
                    let mut last: std::collections::HashMap<&str, &str> = Default::default();
                    for e in &env {
                        if let Some((k, v)) = e.split_once('=') {
                            last.insert(k, v);
                        }
                    }
                    let before = |n: &str| {
                        last.get(n)
                            .map(|v| v.to_string())
                            .or_else(|| state.args.get(n).cloned().flatten())
                    };
                    for (k, v) in pairs {
                        let k = self.expand_word(k, &before)?;
                        expanded.push((k, self.expand_word(v, &before)?));
                    }
                }
                for (k, v) in expanded {
                    let entry = format!("{k}={v}");
                    match index.get(&k) {
                        Some(i) => env[*i] = entry,
                        None => {
                            index.insert(k, env.len());
                            env.push(entry);
                        }
                    }
                }
                if env.len() > MAX_ENV {
                    return Err(BuildError::new(format!(
                        "ENV: {} variables: berth's builder takes at most {MAX_ENV} in an image",
                        env.len()
                    )));
                }
                config.env = Some(env);
                state.config.env = config.env.clone();
            }
            Kind::Arg(list) => {
                for (k, default) in list {
                    let v = match self.opts.build_args.get(k) {
                        Some(Some(v)) => Some(v.clone()),
                        _ => default
                            .as_deref()
                            .map(|d| self.expand_word(d, &|n: &str| state.var(n)))
                            .transpose()?,
                    };
                    self.used_args.lock().expect("args lock").insert(k.clone());
                    state.args.insert(k.clone(), v);
                }
                // No image: an ARG changes nothing the image records.
                return Ok(());
            }
            Kind::Label(pairs) => {
                let labels = config.labels.get_or_insert_with(BTreeMap::new);
                for (k, v) in pairs {
                    labels.insert(
                        self.expand_word(k, &|n: &str| state.var(n))?,
                        self.expand_word(v, &|n: &str| state.var(n))?,
                    );
                }
            }
            Kind::Expose(ports) => {
                let exposed = config.exposed_ports.get_or_insert_with(BTreeMap::new);
                for p in ports {
                    for p in self.expand_words(p, &|n: &str| state.var(n))? {
                        let p = if p.contains('/') {
                            p.to_ascii_lowercase()
                        } else {
                            format!("{p}/tcp")
                        };
                        exposed.insert(p, serde_json::json!({}));
                    }
                }
            }
            Kind::Workdir(dir) => {
                let dir = self.expand_word(dir, &|n: &str| state.var(n))?;
                let cur = config.working_dir.clone().unwrap_or_default();
                let joined = if dir.starts_with('/') {
                    dir
                } else {
                    format!("{}/{dir}", if cur.is_empty() { "/" } else { &cur })
                };
                let dir = format!("/{}", crate::context::clean_in_root(&joined));
                config.working_dir = Some(dir.clone());
                // Docker makes the directory in the image (root's, 0755) when it is missing.
                return self.workdir_step(state, inst, config, &dir).await;
            }
            Kind::User(u) => config.user = Some(self.expand_word(u, &|n: &str| state.var(n))?),
            Kind::Volume(paths) => {
                let volumes = config.volumes.get_or_insert_with(BTreeMap::new);
                for p in paths {
                    for p in self.expand_words(p, &|n: &str| state.var(n))? {
                        volumes.insert(p, serde_json::json!({}));
                    }
                }
            }
            Kind::Shell(s) => config.shell = Some(s.clone()),
            Kind::StopSignal(s) => {
                config.stop_signal = Some(self.expand_word(s, &|n: &str| state.var(n))?)
            }
            Kind::Cmd(c) => {
                config.cmd = Some(command_args(c, &state.shell()));
                config.args_escaped = None;
            }
            Kind::Entrypoint(c) => {
                config.entrypoint = Some(command_args(c, &state.shell()));
                // Docker: an ENTRYPOINT resets the CMD inherited from the base.
                config.cmd = None;
            }
            Kind::Healthcheck(h) => {
                config.healthcheck = Some(match h {
                    Health::None => Healthcheck {
                        test: Some(vec!["NONE".into()]),
                        ..Default::default()
                    },
                    Health::Cmd(c) => Healthcheck {
                        test: Some(match c {
                            Command::Exec(v) => std::iter::once("CMD".to_string())
                                .chain(v.clone())
                                .collect(),
                            Command::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
                        }),
                        interval: duration_flag(inst, "interval")?,
                        timeout: duration_flag(inst, "timeout")?,
                        start_period: duration_flag(inst, "start-period")?,
                        start_interval: duration_flag(inst, "start-interval")?,
                        retries: inst
                            .flag("retries")
                            .map(|r| {
                                r.parse::<i64>()
                                    .map_err(|_| BuildError::new(format!("invalid --retries: {r}")))
                            })
                            .transpose()?,
                        ..Default::default()
                    },
                });
            }
            Kind::Onbuild(t) => config.on_build.get_or_insert_with(Vec::new).push(t.clone()),
            Kind::Maintainer(_) => {}
        }
        let key = self.key(
            state,
            &[
                "meta",
                &inst.original,
                &serde_json::to_string(&config).unwrap_or_default(),
            ],
        );
        if self.use_cache(state, &key) {
            return Ok(());
        }
        let mut opts = self.commit_options(state, inst);
        if let Kind::Maintainer(m) = &inst.kind {
            opts.author = m.clone();
        }
        opts.config = config.clone();
        opts.cache_key = Some(key);
        let engine = self.engine.clone();
        let id = tokio::task::spawn_blocking(move || engine.images().commit_metadata(&opts))
            .await
            .map_err(|e| BuildError::new(e.to_string()))?
            .map_err(|e| BuildError::new(e.to_string()))?;
        state.config = config;
        state.image = id;
        Ok(())
    }

    /// The commit of a step: parent, config, and the history entry Docker writes
    /// (`/bin/sh -c #(nop)  ENV ...` for a metadata step).
    fn commit_options(&self, state: &State, inst: &Instruction) -> CommitOptions {
        let created_by = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            format!("#(nop)  {}", inst.original),
        ];
        CommitOptions {
            image_id: state.image.clone(),
            reference: None,
            changes: Vec::new(),
            author: String::new(),
            comment: String::new(),
            config: state.config.clone(),
            container_config: ContainerConfig {
                cmd: Some(created_by),
                ..state.config.clone()
            },
            container_id: String::new(),
            cache_key: None,
        }
    }

    /// A step container's environment: the stage's ENV, then its build args (in a RUN's
    /// environment, not in the image's).
    fn step_env(&self, state: &State) -> Vec<String> {
        let mut env: Vec<String> = state
            .env()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for (k, v) in &state.args {
            if let Some(v) = v {
                if !env.iter().any(|e| e.split('=').next() == Some(k.as_str())) {
                    env.push(format!("{k}={v}"));
                }
            }
        }
        env
    }

    /// A container of the current image for a step: `cmd` run by the runtime (RUN), or
    /// nothing run (COPY).
    async fn step_container(&self, state: &State, cmd: Vec<String>) -> Result<String, BuildError> {
        self.step_container_on(state, cmd, &StepHost::default())
            .await
    }

    /// [`step_container`] with a RUN's own network and mounts.
    async fn step_container_on(
        &self,
        state: &State,
        cmd: Vec<String>,
        host: &StepHost,
    ) -> Result<String, BuildError> {
        let network = host.network.as_deref();
        let env = self.step_env(state);
        let config = Config {
            image: state.image.clone(),
            labels: Some([(STEP_LABEL.to_string(), "1".to_string())].into()),
            cmd: Some(cmd),
            entrypoint: Some(vec![String::new()]),
            env: Some(env),
            working_dir: state.config.working_dir.clone().unwrap_or_default(),
            user: state.config.user.clone().unwrap_or_default(),
            ..Config::default()
        };
        let host_config = HostConfig {
            network_mode: match network.unwrap_or(&self.opts.network_mode) {
                "" => "default".into(),
                n => n.to_string(),
            },
            binds: (!host.binds.is_empty()).then(|| host.binds.clone()),
            ..HostConfig::default()
        };
        let mut host_config = host_config;
        if !host.tmpfs.is_empty() {
            host_config
                .extra
                .insert("Tmpfs".into(), serde_json::json!(host.tmpfs));
        }
        let req = CreateRequest {
            config,
            host_config: Some(host_config),
            networking_config: None,
            readonly_binds_non_recursive: false,
        };
        let engine = self.engine.clone();
        let (live, stage) = (self.live.clone(), self.stage);
        let runtime = tokio::runtime::Handle::current();
        // Created and recorded in one piece, which an abort of this task does not cut: a
        // container made for a stage stopped meanwhile is removed here.
        tokio::task::spawn_blocking(move || {
            let (id, _) = engine
                .create(None, None, req)
                .map_err(|e| BuildError::new(e.to_string()))?;
            let mut set = live.lock().expect("live lock");
            if set.is_stopped(stage) {
                drop(set);
                let _ = runtime.block_on(engine.remove(&id, true, true));
                return Err(BuildError::new("the build stopped"));
            }
            set.containers.insert(id.clone(), stage);
            Ok(id)
        })
        .await
        .map_err(|e| BuildError::new(e.to_string()))?
    }

    /// Removes a step container (forced: a RUN may still run when a build is stopped).
    async fn remove(&self, id: &str) -> berth_engine::Result<()> {
        let r = self.engine.remove(id, true, true).await;
        self.live.lock().expect("live lock").containers.remove(id);
        r
    }

    async fn run_step(
        &self,
        state: &mut State,
        inst: &Instruction,
        command: &Command,
    ) -> Result<(), BuildError> {
        if let Some(f) = inst
            .flags
            .iter()
            .find(|f| f.name != "network" && f.name != "mount")
        {
            return Err(BuildError::new(format!(
                "RUN --{} is not supported by berth's builder yet",
                f.name
            )));
        }
        let mut host = StepHost::default();
        let mut lock_names = Vec::new();
        for value in inst.flags_named("mount") {
            let vars = |n: &str| state.var(n);
            let expand = |w: &str| expand::word(w, &self.charged(&vars), self.escape);
            let m = dockerfile::parse_mount(value, &expand)
                .map_err(|e| BuildError::new(format!("RUN --mount={value}: {e}")))?;
            self.run_mount(state, &m, value, &mut host, &mut lock_names)
                .await?;
        }
        // Taken in one order, each once: two RUNs of concurrent stages locking the same
        // cache mounts never wait for each other in a circle, nor a RUN for itself.
        lock_names.sort();
        lock_names.dedup();
        let mut locks = Vec::new();
        for name in lock_names {
            let lock = CACHE_LOCKS
                .lock()
                .expect("cache locks")
                .entry(name)
                .or_default()
                .clone();
            locks.push(lock.lock_owned().await);
        }
        let network = inst.flag("network").map(String::from);
        if let Some(n) = network.as_deref() {
            if !matches!(n, "default" | "none" | "host") {
                return Err(BuildError::new(format!(
                    "RUN --network={n}: the network must be one of default, none, host"
                )));
            }
        }
        let cmd = match (inst.kind.run_script(), command) {
            // `RUN <<EOF` alone: the heredoc is the script, run by the shell.
            (Some(h), _) if h.content.starts_with("#!") => {
                return Err(BuildError::new(
                    "a RUN heredoc with a #! line is not supported by berth's builder yet",
                ))
            }
            (Some(h), _) => state
                .shell()
                .into_iter()
                .chain([h.content.clone()])
                .collect(),
            // Heredocs feeding the command: the shell reads them as it would in a script.
            (None, Command::Shell(text)) if !heredocs(inst).is_empty() => {
                let mut script = text.clone();
                script.push('\n');
                for h in heredocs(inst) {
                    script.push_str(&h.content);
                    script.push_str(&h.name);
                    script.push('\n');
                }
                state.shell().into_iter().chain([script]).collect()
            }
            _ => command_args(command, &state.shell()),
        };
        let key = self.key(
            state,
            &[
                "run",
                &format!("{:?}", host),
                &serde_json::to_string(&cmd).unwrap_or_default(),
                &serde_json::to_string(&self.step_env(state)).unwrap_or_default(),
                &serde_json::to_string(&state.config).unwrap_or_default(),
                network.as_deref().unwrap_or(&self.opts.network_mode),
            ],
        );
        if self.use_cache(state, &key) {
            return Ok(());
        }
        host.network = network.clone();
        // Held until the step ends: its mounts' files (a context copy, secrets) go then.
        let (binds, secret_env, _mount_files) = self.make_run_mounts(&host.planned).await?;
        host.binds.extend(binds);
        let id = self.step_container_on(state, cmd.clone(), &host).await?;
        self.say(format!(" ---> Running in {}\n", short(&id)));
        let waited = self
            .engine
            .wait(&id, WaitCondition::NextExit)
            .map_err(|e| BuildError::new(e.to_string()))?;
        // Secrets in the environment go to this run's process only, not to its config; its
        // runtime spec holds them, so the container goes after the step whatever `rm` says.
        let holds_secret = !secret_env.is_empty();
        if let Err(e) = self.engine.start_with_env(&id, secret_env).await {
            let _ = self.remove(&id).await;
            return Err(BuildError::new(e.to_string()));
        }
        let mut logs = self
            .engine
            .logs(
                &id,
                LogOptions {
                    stdout: true,
                    stderr: true,
                    follow: true,
                    tail: None,
                    since: None,
                    until: None,
                    timestamps: false,
                },
            )
            .map_err(|e| BuildError::new(e.to_string()))?;
        while let Some(chunk) = logs.recv().await {
            self.say(String::from_utf8_lossy(&chunk.bytes).into_owned());
        }
        let code = waited.await.status_code;
        if code != 0 {
            if self.opts.force_remove || holds_secret {
                let _ = self.remove(&id).await;
            }
            return Err(BuildError {
                message: format!(
                    "The command '{}' returned a non-zero code: {code}",
                    cmd.join(" ")
                ),
                code: Some(code),
            });
        }
        // The mount points the runtime made for the mounts are not the step's work.
        let targets = host
            .binds
            .iter()
            .filter_map(|b| b.split(':').nth(1).map(String::from))
            .chain(host.tmpfs.keys().cloned())
            .collect();
        self.remove_run_mount_stubs(&id, &state.image, targets)
            .await;
        let mut opts = self.commit_options(state, inst);
        opts.container_config.cmd = Some(cmd);
        opts.cache_key = Some(key);
        let committed = self.engine.commit_build(&id, opts).await;
        if holds_secret && !(self.opts.remove || self.opts.force_remove) {
            if let Err(e) = self.remove(&id).await {
                tracing::warn!(container = %id, "remove a build step's container: {e}");
            }
        } else {
            self.finish_container(&id).await;
        }
        state.image = committed.map_err(|e| BuildError::new(e.to_string()))?;
        Ok(())
    }

    /// One `RUN --mount`: a tmpfs, a cache directory kept under `<root>/build/
    /// cache-mounts` across builds (never in the image), a bind or a secret (planned here,
    /// made when the step runs: runmount.rs); ssh is refused by name.
    async fn run_mount(
        &self,
        state: &State,
        m: &dockerfile::Mount,
        value: &str,
        host: &mut StepHost,
        locks: &mut Vec<String>,
    ) -> Result<(), BuildError> {
        use dockerfile::{CacheSharing, MountType};
        let target = || {
            m.target
                .clone()
                .ok_or_else(|| BuildError::new(format!("RUN --mount={value}: target is required")))
        };
        match m.kind {
            MountType::Tmpfs => {
                let target = target()?;
                if m.from.is_some() || m.source.is_some() {
                    return Err(BuildError::new(format!(
                        "RUN --mount={value}: a tmpfs mount takes no from= or source="
                    )));
                }
                let mut opts: Vec<String> =
                    m.size.map(|s| format!("size={s}")).into_iter().collect();
                if m.read_only {
                    opts.push("ro".into());
                }
                host.tmpfs.insert(target, opts.join(","));
            }
            MountType::Cache => {
                let target = target()?;
                if m.from.is_some() || m.source.is_some() {
                    return Err(BuildError::new(format!(
                        "RUN --mount={value}: a cache mount from another stage or image is \
                         not supported by berth's builder yet"
                    )));
                }
                let id = m.id.clone().unwrap_or_else(|| target.clone());
                let name = {
                    use sha2::{Digest, Sha256};
                    format!("{:x}", Sha256::digest(id.as_bytes()))
                };
                let dir = self
                    .engine
                    .config()
                    .root
                    .join("build")
                    .join("cache-mounts")
                    .join(&name);
                if !dir.exists() {
                    let parent = dir.parent().expect("a cache mount has a parent");
                    std::fs::create_dir_all(parent)
                        .map_err(|e| BuildError::new(format!("a cache mount: {e}")))?;
                    let tmp = parent.join(format!(".new-{name}-{}", rand_suffix()));
                    std::fs::create_dir(&tmp)
                        .and_then(|()| {
                            use std::os::unix::fs::PermissionsExt;
                            std::fs::set_permissions(
                                &tmp,
                                std::fs::Permissions::from_mode(m.mode.unwrap_or(0o755)),
                            )?;
                            std::os::unix::fs::chown(&tmp, m.uid, m.gid)
                        })
                        .and_then(|()| match std::fs::rename(&tmp, &dir) {
                            Err(_) if dir.exists() => std::fs::remove_dir(&tmp),
                            r => r,
                        })
                        .map_err(|e| BuildError::new(format!("a cache mount: {e}")))?;
                }
                if matches!(
                    m.sharing,
                    Some(CacheSharing::Locked) | Some(CacheSharing::Private)
                ) {
                    locks.push(name);
                }
                let mode = if m.read_only { ":ro" } else { "" };
                host.binds.push(format!("{}:{target}{mode}", dir.display()));
            }
            MountType::Bind | MountType::Secret => {
                if let Some(p) = self.plan_run_mount(state, m, value).await? {
                    host.planned.push(p);
                }
            }
            MountType::Ssh => {
                return Err(BuildError::new(
                    "RUN --mount=type=ssh is not supported by berth's builder yet (no SSH \
                     agent forwarding)",
                ))
            }
        }
        Ok(())
    }

    async fn finish_container(&self, id: &str) {
        if self.opts.remove || self.opts.force_remove {
            if let Err(e) = self.remove(id).await {
                tracing::warn!(container = %id, "remove a build step's container: {e}");
            } else {
                self.say(format!("Removing intermediate container {}\n", short(id)));
            }
        }
    }

    /// The cache key of a step: the parent image and what the step does, after expansion.
    fn key(&self, state: &State, parts: &[&str]) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"berth build cache v1\0");
        h.update(state.image.as_bytes());
        for p in parts {
            h.update(b"\0");
            h.update(p.as_bytes());
        }
        format!("sha256:{:x}", h.finalize())
    }

    /// A step found in the cache: the state moves to its image (unless `--no-cache`).
    fn use_cache(&self, state: &mut State, key: &str) -> bool {
        let name = self.stage_names.get(self.stage).and_then(|n| n.as_deref());
        let filtered = name.is_some_and(|n| {
            self.opts
                .no_cache_stages
                .iter()
                .any(|s| s.eq_ignore_ascii_case(n))
        });
        if self.opts.no_cache || filtered {
            return false;
        }
        let Some(id) = self.engine.images().cached(key) else {
            return false;
        };
        let Ok(rec) = self.engine.images().resolve(&id) else {
            return false;
        };
        self.say(" ---> Using cache\n");
        state.image = rec.id;
        state.config = rec.config.config;
        true
    }

    /// The owner of what a COPY writes into container `id`: root, or `--chown`'s, names
    /// looked up in the container's own `/etc/passwd` and `/etc/group`.
    async fn owner_ids(&self, id: &str, owner: &Ownership) -> Result<(u32, u32), BuildError> {
        let Some(spec) = owner.chown.as_deref() else {
            return Ok((0, 0));
        };
        let numeric = spec.split(':').all(|p| p.parse::<u32>().is_ok());
        if numeric {
            return chown_ids(spec, "", "");
        }
        let passwd = self.read_small(id, "/etc/passwd").await;
        let group = self.read_small(id, "/etc/group").await;
        chown_ids(spec, &passwd, &group)
    }

    /// A small file of container `id` (up to 1 MiB), "" when it is missing.
    async fn read_small(&self, id: &str, path: &str) -> String {
        let Ok((_, mut rx)) = self.engine.archive_get(id, path).await else {
            return String::new();
        };
        let mut bytes = Vec::new();
        while let Some(Ok(chunk)) = rx.recv().await {
            bytes.extend(chunk);
            if bytes.len() > 2 << 20 {
                return String::new();
            }
        }
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut text = String::new();
        if let Some(Ok(mut entry)) = archive.entries().ok().and_then(|mut e| e.next()) {
            use std::io::Read;
            let _ = (&mut entry).take(1 << 20).read_to_string(&mut text);
        }
        text
    }

    /// Docker's rule for COPY's destination: a directory when written so (a trailing `/`,
    /// `.`), when there are several sources, or when it is a directory in container `id`.
    async fn dest_is_dir(&self, id: &str, dest: &str, dest_clean: &str, many: bool) -> bool {
        dest.ends_with('/')
            || dest.ends_with("/.")
            || dest == "."
            || many
            || self.is_dir_in(id, &format!("/{dest_clean}")).await
    }

    /// Whether `path` is a directory (or a symlink to one) in container `id`.
    async fn is_dir_in(&self, id: &str, path: &str) -> bool {
        const GO_DIR: u32 = 1 << 31;
        const GO_SYMLINK: u32 = 1 << 27;
        match self.engine.archive_stat(id, path).await {
            Ok(st) if st.mode & GO_DIR != 0 => true,
            Ok(st) if st.mode & GO_SYMLINK != 0 && !st.link_target.is_empty() => self
                .engine
                .archive_stat(id, &st.link_target)
                .await
                .is_ok_and(|t| t.mode & GO_DIR != 0),
            _ => false,
        }
    }

    /// WORKDIR: the config's working directory, and the directory made in a layer when the
    /// image lacks it.
    async fn workdir_step(
        &self,
        state: &mut State,
        inst: &Instruction,
        config: ContainerConfig,
        dir: &str,
    ) -> Result<(), BuildError> {
        let key = self.key(
            state,
            &[
                "workdir",
                dir,
                &serde_json::to_string(&config).unwrap_or_default(),
            ],
        );
        if self.use_cache(state, &key) {
            return Ok(());
        }
        let id = self.step_container(state, vec!["true".into()]).await?;
        let made = if self.is_dir_in(&id, dir).await {
            Ok(false)
        } else {
            let bytes = dir_tar(dir).map_err(|e| BuildError::new(format!("WORKDIR {dir}: {e}")))?;
            self.engine
                .archive_put(
                    &id,
                    "/",
                    ExtractOptions::default(),
                    Box::new(std::io::Cursor::new(bytes)),
                )
                .await
                .map(|()| true)
                .map_err(|e| BuildError::new(format!("WORKDIR {dir}: {e}")))
        };
        let mut opts = self.commit_options(state, inst);
        opts.config = config.clone();
        opts.cache_key = Some(key);
        let committed = match made {
            Ok(true) => self
                .engine
                .commit_build(&id, opts)
                .await
                .map_err(|e| BuildError::new(e.to_string())),
            Ok(false) => {
                let engine = self.engine.clone();
                tokio::task::spawn_blocking(move || engine.images().commit_metadata(&opts))
                    .await
                    .map_err(|e| BuildError::new(e.to_string()))
                    .and_then(|r| r.map_err(|e| BuildError::new(e.to_string())))
            }
            Err(e) => Err(e),
        };
        let _ = self.remove(&id).await;
        state.image = committed?;
        state.config = config;
        Ok(())
    }

    /// `--label`s of the build on the final image: one more image, as Docker's.
    async fn relabel(&self, image: &str) -> Result<String, BuildError> {
        let rec = self.resolve(image)?;
        let state = State {
            image: rec.id.clone(),
            config: rec.config.config.clone(),
            args: BTreeMap::new(),
        };
        let key = self.key(
            &state,
            &[
                "labels",
                &serde_json::to_string(&self.opts.labels).unwrap_or_default(),
            ],
        );
        if let Some(id) = self
            .engine
            .images()
            .cached(&key)
            .filter(|_| !self.opts.no_cache)
        {
            return Ok(id);
        }
        let mut config = rec.config.config.clone();
        config
            .labels
            .get_or_insert_with(BTreeMap::new)
            .extend(self.opts.labels.clone());
        let opts = CommitOptions {
            image_id: rec.id.clone(),
            reference: None,
            changes: Vec::new(),
            author: String::new(),
            comment: String::new(),
            config: config.clone(),
            container_config: ContainerConfig {
                cmd: Some(vec!["/bin/sh".into(), "-c".into(), "#(nop) LABEL".into()]),
                ..config
            },
            container_id: String::new(),
            cache_key: Some(key),
        };
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || engine.images().commit_metadata(&opts))
            .await
            .map_err(|e| BuildError::new(e.to_string()))?
            .map_err(|e| BuildError::new(e.to_string()))
    }
}

/// Which stages the stage `last` needs: itself, and the stages its `FROM` and `COPY --from`
/// name, transitively. A reference made of variables could name any earlier stage: those
/// are all kept.
fn needed_stages(stages: &[Stage], last: usize) -> Vec<bool> {
    // Names to indexes once (the first stage of a name, as `position` finds it), and each
    // stage queued once: linear in the stages, where thousands of `FROM $X` lines (each of
    // which may need every stage before it) once queued their squares.
    let mut names = std::collections::HashMap::new();
    for (i, s) in stages.iter().enumerate() {
        if let Some(n) = &s.name {
            names.entry(n.as_str()).or_insert(i);
        }
    }
    let index_of = |r: &str| {
        let r = r.to_ascii_lowercase();
        names
            .get(r.as_str())
            .copied()
            .or_else(|| r.parse::<usize>().ok().filter(|i| *i < stages.len()))
    };
    let mut needed = vec![false; stages.len()];
    needed[last] = true;
    let mut todo = vec![last];
    // Every stage below this one is needed (queued) already.
    let mut all_below = 0;
    while let Some(i) = todo.pop() {
        let mount_refs: Vec<String> = stages[i]
            .instructions
            .iter()
            .filter(|inst| matches!(inst.kind, Kind::Run { .. }))
            .flat_map(|inst| inst.flags_named("mount"))
            .filter_map(runmount::mount_from)
            .collect();
        let refs = std::iter::once(stages[i].base.as_str())
            .chain(
                stages[i]
                    .instructions
                    .iter()
                    .filter(|inst| matches!(inst.kind, Kind::Copy(_)))
                    .filter_map(|inst| inst.flag("from")),
            )
            .chain(mount_refs.iter().map(String::as_str));
        for r in refs {
            let below = if r.contains('$') {
                let range = all_below..i.max(all_below);
                all_below = all_below.max(i);
                range
            } else if let Some(j) = index_of(r).filter(|j| *j < i) {
                j..j + 1
            } else {
                continue;
            };
            for j in below {
                if !std::mem::replace(&mut needed[j], true) {
                    todo.push(j);
                }
            }
        }
    }
    needed
}

fn globals_get(globals: &BTreeMap<String, Option<String>>, name: &str) -> Option<String> {
    globals.get(name).cloned().flatten()
}

/// What a RUN's container gets besides the step's: its network and its mounts. Its `Debug`
/// is part of the step's cache key.
#[derive(Default)]
struct StepHost {
    network: Option<String>,
    /// `host:target[:ro]` of its cache mounts.
    binds: Vec<String>,
    /// target -> options of its tmpfs mounts.
    tmpfs: BTreeMap<String, String>,
    /// Its bind and secret mounts, made only when the step runs (not from the cache).
    planned: Vec<runmount::Planned>,
}

impl std::fmt::Debug for StepHost {
    /// The derived form, with `planned` only when there is one: the keys of steps without
    /// bind or secret mounts are those of the berth before them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("StepHost");
        d.field("network", &self.network)
            .field("binds", &self.binds)
            .field("tmpfs", &self.tmpfs);
        if !self.planned.is_empty() {
            d.field("planned", &self.planned);
        }
        d.finish()
    }
}

/// The lock of each cache mount id used with `sharing=locked` (or `private`).
static CACHE_LOCKS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
> = std::sync::LazyLock::new(Default::default);

/// A tar of one directory entry, `dir` (root's, 0755): made by the engine's extraction
/// with its missing parents.
fn dir_tar(dir: &str) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h.set_mtime(0);
    tar.append_data(
        &mut h,
        format!("{}/", dir.trim_start_matches('/')),
        std::io::empty(),
    )?;
    tar.into_inner()
}

/// A RUN's heredocs.
fn heredocs(inst: &Instruction) -> &[dockerfile::Heredoc] {
    match &inst.kind {
        Kind::Run { heredocs, .. } => heredocs,
        _ => &[],
    }
}

/// The argv of a command: exec form as is, shell form run by the shell.
fn command_args(c: &Command, shell: &[String]) -> Vec<String> {
    match c {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => shell.iter().cloned().chain([s.clone()]).collect(),
    }
}

/// `--interval=30s` and the like, in nanoseconds.
fn duration_flag(inst: &Instruction, name: &str) -> Result<Option<i64>, BuildError> {
    let Some(v) = inst.flag(name) else {
        return Ok(None);
    };
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num
        .parse()
        .map_err(|_| BuildError::new(format!("invalid --{name}: {v}")))?;
    let scale = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" | "" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return Err(BuildError::new(format!("invalid --{name}: {v}"))),
    };
    Ok(Some((n * scale) as i64))
}

/// COPY's and ADD's `--chown` and `--chmod`, as written (the names are looked up in the
/// destination image's `/etc/passwd` and `/etc/group` when the step runs).
#[derive(Debug, Default)]
struct Ownership {
    chown: Option<String>,
    chmod: Option<crate::chmod::Chmod>,
}

impl Ownership {
    /// The mode an entry of mode `mode` is written with.
    fn mode(&self, mode: u32, is_dir: bool) -> u32 {
        self.chmod.as_ref().map_or(mode, |c| c.apply(mode, is_dir))
    }
}

/// Docker's `--chown` of `user[:group]` against an image's passwd and group files: names
/// or numbers; without a group, the group id is the user id (Docker's rule).
fn chown_ids(spec: &str, passwd: &str, group: &str) -> Result<(u32, u32), BuildError> {
    let lookup = |file: &str, name: &str, what: &str| -> Result<u32, BuildError> {
        if let Ok(n) = name.parse::<u32>() {
            return Ok(n);
        }
        file.lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() > 2 && f[0] == name)
            .and_then(|f| f[2].parse().ok())
            .ok_or_else(|| {
                BuildError::new(format!(
                    "unable to convert uid/gid chown string to host mapping: can't find {what} \
                     for {} {name}: no such {}: {name}",
                    if what == "uid" { "user" } else { "group" },
                    if what == "uid" { "user" } else { "group" },
                ))
            })
    };
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = lookup(passwd, u, "uid")?;
    let gid = match g {
        Some(g) => lookup(group, g, "gid")?,
        None => uid,
    };
    Ok((uid, gid))
}

/// Go's `filepath.Match` of a cleaned pattern against a cleaned path, component by
/// component (`*` never crosses `/`).
#[cfg(test)]
fn glob_match(pattern: &str, path: &str) -> bool {
    glob_match_within(pattern, path, &mut GlobWork::default())
}

/// The most steps the glob matching of one COPY's or ADD's sources may take (each source
/// against each entry of the context): a few seconds.
const MAX_GLOB_STEPS: u64 = 1_000_000_000;

/// The steps glob matching took so far.
#[derive(Debug, Default)]
pub(crate) struct GlobWork(u64);

impl GlobWork {
    /// Counts `n` steps; false once past the bound.
    fn spend(&mut self, n: usize) -> bool {
        self.0 = self.0.saturating_add(n as u64);
        self.0 <= MAX_GLOB_STEPS
    }

    /// Whether the bound was passed (every match after it failed).
    pub(crate) fn exceeded(&self) -> bool {
        self.0 > MAX_GLOB_STEPS
    }
}

/// [`glob_match`], its steps counted in `work` (no match once it is exceeded).
pub(crate) fn glob_match_within(pattern: &str, path: &str, work: &mut GlobWork) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let n: Vec<&str> = path.split('/').collect();
    p.len() == n.len() && p.iter().zip(&n).all(|(p, n)| component_match(p, n, work))
}

/// One piece of a COPY source pattern's component.
enum GlobPiece {
    /// `*`
    Any,
    /// `?`
    One,
    /// `[...]`, `[!...]` / `[^...]`: characters and ranges.
    Class {
        neg: bool,
        set: Vec<char>,
    },
    Literal(char),
}

impl GlobPiece {
    fn takes(&self, c: char) -> bool {
        match self {
            GlobPiece::Any | GlobPiece::One => true,
            GlobPiece::Literal(l) => *l == c,
            GlobPiece::Class { neg, set } => {
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != *neg
            }
        }
    }
}

/// Whether the component `n` matches the pattern component `p`. Matched with one backtrack
/// point (the last `*`), in time linear in their lengths' product and without recursion: a
/// pattern of stars (`*a*a*a...*b`) once took exponential time, holding one of berthd's
/// threads for good, and a long one overflowed its stack.
fn component_match(p: &str, n: &str, work: &mut GlobWork) -> bool {
    if !work.spend(p.len() + n.len()) {
        return false;
    }
    let chars: Vec<char> = p.chars().collect();
    let mut pieces = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => pieces.push(GlobPiece::Any),
            '?' => pieces.push(GlobPiece::One),
            '[' => {
                // An unclosed class matches nothing.
                let Some(len) = chars[i..].iter().position(|c| *c == ']') else {
                    return false;
                };
                let class = &chars[i + 1..i + len];
                let (neg, set) = match class.first() {
                    Some('^') | Some('!') => (true, &class[1..]),
                    _ => (false, class),
                };
                pieces.push(GlobPiece::Class {
                    neg,
                    set: set.to_vec(),
                });
                i += len;
            }
            '\\' if i + 1 < chars.len() => {
                pieces.push(GlobPiece::Literal(chars[i + 1]));
                i += 1;
            }
            c => pieces.push(GlobPiece::Literal(c)),
        }
        i += 1;
    }
    let text: Vec<char> = n.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < text.len() {
        if !work.spend(1) {
            return false;
        }
        match pieces.get(pi) {
            Some(GlobPiece::Any) => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(piece) if piece.takes(text[ti]) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pieces[pi..].iter().all(|p| matches!(p, GlobPiece::Any))
}

fn short(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

fn split_tag(reference: &str) -> (&str, &str) {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (reference, ""),
    }
}

pub(crate) fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{n:x}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_per_component() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "d/a.txt"));
        assert!(glob_match("d/*.txt", "d/a.txt"));
        assert!(glob_match("file?", "file1"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[!a-c]x", "bx"));
        assert!(glob_match("[^a-c]x", "dx"));
        assert!(glob_match("a*b*c", "aXbYbc"));
        assert!(!glob_match("a*b*c", "aXbYbcd"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("?", ""));
        assert!(glob_match("\\*x", "*x"));
        assert!(!glob_match("\\*x", "ax"));
        assert!(glob_match("x\\", "x\\"));
        assert!(!glob_match("[ab", "a"));
        assert!(!glob_match("*[ab", "xa"));
    }

    /// A pattern of stars against a long name takes no time (it once took exponential
    /// time: `*a` 25 times and `*b` against 80 `a`s froze berthd's threads), and a long
    /// pattern does not overflow the stack.
    #[test]
    fn globs_take_linear_time_and_no_stack() {
        let start = std::time::Instant::now();
        let name = "a".repeat(80);
        assert!(!glob_match(&format!("{}*b", "*a".repeat(25)), &name));
        let long = "a".repeat(1 << 20);
        assert!(glob_match(&format!("{long}*"), &long));
        assert!(!glob_match(&format!("*{long}b"), &long));
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
        // The quadratic worst case stops at the bound, and says so.
        let (long, half) = ("a".repeat(100_000), "a".repeat(50_000));
        let mut work = GlobWork::default();
        assert!(!glob_match_within(&format!("*{half}b"), &long, &mut work));
        assert!(work.exceeded());
        assert!(start.elapsed() < std::time::Duration::from_secs(60));
    }

    /// A RUN without bind or secret mounts keeps the cache key it had before they existed.
    #[test]
    fn step_host_keys_of_runs_without_planned_mounts_are_unchanged() {
        let mut host = StepHost::default();
        host.binds.push("/c:/cache".into());
        assert_eq!(
            format!("{host:?}"),
            "StepHost { network: None, binds: [\"/c:/cache\"], tmpfs: {} }"
        );
    }

    #[test]
    fn needed_stages_follow_from_and_copy_from() {
        let df = dockerfile::parse(
            "Dockerfile",
            "FROM busybox AS a\nFROM busybox AS b\nFROM a AS c\nCOPY --from=1 /x /x\n\
             FROM busybox AS unused\nFROM c\n",
        )
        .unwrap();
        assert_eq!(
            needed_stages(&df.stages, 4),
            [true, true, true, false, true]
        );
        // A reference by variable may be any stage before it.
        let df = dockerfile::parse(
            "Dockerfile",
            "ARG X=a\nFROM busybox AS a\nFROM busybox AS b\nFROM $X\nFROM busybox\n",
        )
        .unwrap();
        assert_eq!(needed_stages(&df.stages, 2), [true, true, true, false]);
        assert_eq!(needed_stages(&df.stages, 3), [false, false, false, true]);
    }

    /// Thousands of `FROM $X` stages (each of which may need every stage before it) cost
    /// linear time and memory: they once queued the square of their number (30000 of them,
    /// a 240 kB Dockerfile, took berthd to 3.8 GB).
    #[test]
    fn needed_stages_are_linear_in_the_stages() {
        let n = 100_000;
        let text = format!("ARG X=busybox\n{}", "FROM $X\n".repeat(n));
        let df = dockerfile::parse("Dockerfile", &text).unwrap();
        let start = std::time::Instant::now();
        let needed = needed_stages(&df.stages, n - 1);
        assert!(needed.iter().all(|n| *n));
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn commands_and_durations() {
        let sh = default_shell();
        assert_eq!(
            command_args(&Command::Shell("echo hi".into()), &sh),
            ["/bin/sh", "-c", "echo hi"]
        );
        assert_eq!(
            command_args(&Command::Exec(vec!["a".into(), "b".into()]), &sh),
            ["a", "b"]
        );
    }
}
