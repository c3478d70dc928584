//! What the page loads before it is ready, and how: the device, the base
//! model the person chose last, the starter packs' list, the served models,
//! the storage and the project stored in it ([`load`]), and the two ways a
//! project file becomes a project with learners (the restore and an import).

use std::rc::Rc;

use mose_lab::backend::{self, Compute};
use mose_lab::data::DataConfig;
use mose_lab::model::{FrozenBase, LoadProgress};
use mose_lab::mose::{Learner, MoseConfig};
use mose_lab::project::{Project, ProjectError};
use mose_lab::session::open_learners;
use mose_lab::train::TrainConfig;
use serde::Deserialize;

use super::base_model::{self, Base, BaseSource, Files, ServedModel};
use super::browser::{self, Store};
use super::config::{AppConfig, DeviceDefaults};
use super::worker::EngineWorker;

/// One starter pack as `packs/index.json` describes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PackInfo {
    /// Folder name.
    pub name: String,
    /// Title for people.
    pub title: String,
    /// One sentence.
    pub description: String,
    /// `text` or `pairs`.
    pub kind: String,
    /// Size of `train.txt`.
    pub train_bytes: u64,
    /// Size of `test.txt`.
    pub test_bytes: u64,
    /// Samples in the pack's training split.
    pub train_samples: usize,
}

/// What the page loaded: the device, the base model and the packs.
pub struct Engine {
    /// Where everything computes.
    pub compute: Compute,
    /// The base model, which a project with no learned task may change.
    pub base: Base,
    /// The models the app serves beside itself.
    pub served: Vec<ServedModel>,
    /// The starter packs' list; a pack's text is downloaded when it is
    /// chosen ([`download_pack`]).
    pub packs: Vec<PackInfo>,
    /// The settings for this device.
    pub defaults: DeviceDefaults,
    /// The IndexedDB store, or why there is none.
    pub store: Result<Store, String>,
    /// Whether the service worker holds an offline copy, or why not.
    pub offline: Result<(), String>,
    /// In CPU mode, the engine's Web Worker, which learns the tasks with
    /// its own copy of the base model ([`worker_for`]).
    pub worker: Option<Rc<EngineWorker>>,
}

impl Engine {
    /// The base model as runs take it: model, pad id and device.
    pub fn frozen(&self) -> FrozenBase<'_> {
        self.base.frozen(&self.compute.device)
    }

    /// The same engine on another base model, loaded from `files` (which
    /// the worker opens too).
    pub(super) fn with_base(&self, config: &AppConfig, base: Base, files: &Files) -> Self {
        self.moved(config, self.compute.clone(), (base, files), self.defaults)
    }

    /// The same engine on another device, with the base model loaded
    /// there from its files, and that device's defaults.
    pub(super) fn moved(
        &self,
        config: &AppConfig,
        compute: Compute,
        (base, files): (Base, &Files),
        defaults: DeviceDefaults,
    ) -> Self {
        let worker = worker_for(config, self.worker.clone(), &compute, &base, files);
        Self {
            compute,
            base,
            served: self.served.clone(),
            packs: self.packs.clone(),
            defaults,
            store: self.store.clone(),
            offline: self.offline.clone(),
            worker,
        }
    }
}

/// The engine's worker for `base` on `compute`: in CPU mode `kept` (or a new
/// one when it has stopped) with `files` opened in it; none on a GPU, where
/// the page's thread only waits for the device, or when the browser refuses
/// to start one (the page then learns on its own thread).
fn worker_for(
    config: &AppConfig,
    kept: Option<Rc<EngineWorker>>,
    compute: &Compute,
    base: &Base,
    files: &Files,
) -> Option<Rc<EngineWorker>> {
    if compute.kind != backend::BackendKind::Cpu {
        return None;
    }
    let worker = match kept.filter(|w| w.running()) {
        Some(worker) => worker,
        None => Rc::new(EngineWorker::start(config.worker_script).ok()?),
    };
    worker.open(files, &base.identity.name, &base.source);
    Some(worker)
}

/// The project found in storage at load, with what its states hold.
pub struct Restored {
    /// The project and one learner per method it trained, or `None`.
    pub project: Option<(Project, Vec<Learner>)>,
    /// Why a stored project could not be used, for the person.
    pub problem: Option<String>,
    /// Whether an unreadable project is kept aside in storage.
    pub kept_aside: bool,
}

/// A loading stage, for the progress bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Loading {
    /// What is happening, in words.
    pub stage: String,
    /// Of the whole load, 0 to 1.
    pub fraction: f64,
}

/// Loads the base model the person chose last (the embedded one at first),
/// the packs and the list of served models, uploads and warms up the model
/// and restores the stored project. Reports each stage.
///
/// # Errors
/// What failed and what to do, in words.
pub async fn load(
    config: &AppConfig,
    report: impl Fn(Loading) + Clone + 'static,
) -> Result<(Engine, Restored), String> {
    let stage = |stage: &str, fraction: f64| Loading {
        stage: stage.to_string(),
        fraction,
    };
    report(stage("Looking for a GPU", 0.0));
    let (compute, _) = backend::best().await;
    let defaults = match compute.kind {
        backend::BackendKind::Wgpu | backend::BackendKind::Cuda => config.gpu,
        backend::BackendKind::Cpu => config.cpu,
    };
    let store = Store::open(config.db_name).await;
    let served = base_model::served_models(config).await;
    let chosen = base_model::starting_source(config, store.as_ref().ok(), &served, &compute).await;

    // Downloads: 0.05 .. 0.6 of the bar, the model by bytes.
    let index = browser::download(&format!("{}/index.json", config.packs_dir), |_, _| {})
        .await
        .map_err(unavailable)?;
    let packs: Vec<PackInfo> = serde_json::from_slice(&index)
        .map_err(|e| format!("the starter pack list is damaged ({e}); reload the page"))?;
    let on_weights = {
        let report = report.clone();
        move |received: f64, total: f64| {
            report(Loading {
                stage: format!(
                    "Downloading the model: {:.1} of {:.1} MB",
                    received / 1e6,
                    total / 1e6
                ),
                fraction: 0.05 + 0.55 * received / total.max(1.0),
            })
        }
    };
    let on_device = match compute.kind {
        backend::BackendKind::Wgpu | backend::BackendKind::Cuda => {
            "Uploading the model to the GPU and compiling its shaders"
        }
        backend::BackendKind::Cpu => "Loading the model into memory",
    };
    let on_tensors = {
        let report = report.clone();
        move |p: LoadProgress| {
            report(Loading {
                stage: format!("{on_device}: {} of {} tensors", p.done, p.total),
                fraction: 0.62 + 0.06 * p.done as f64 / p.total.max(1) as f64,
            })
        }
    };
    let mut problem = None;
    let chosen = match chosen {
        BaseSource::Embedded => None,
        source => {
            let files =
                base_model::files_of(&source, config, store.as_ref().ok(), on_weights.clone())
                    .await;
            report(stage(on_device, 0.62));
            let name = base_model::name_of(&source, config);
            match files {
                Ok(files) => Base::open(&files, &name, source, &compute, on_tensors.clone())
                    .await
                    .map(|base| (base, files)),
                Err(why) => Err(why),
            }
            .map_err(|why| {
                problem = Some(format!(
                    "The base model you chose, {name}, could not be loaded: {why}. The embedded model is used instead."
                ))
            })
            .ok()
        }
    };
    let (base, files) = match chosen {
        Some(chosen) => chosen,
        None => {
            let files = base_model::files_of(&BaseSource::Embedded, config, None, on_weights)
                .await
                .map_err(unavailable)?;
            report(stage(on_device, 0.62));
            let base = Base::open(
                &files,
                config.model_name,
                BaseSource::Embedded,
                &compute,
                on_tensors,
            )
            .await
            .map_err(|e| format!("the base model cannot be loaded ({e}); reload the page"))?;
            (base, files)
        }
    };
    let worker = worker_for(config, None, &compute, &base, &files);
    drop(files);
    report(stage("Keeping a copy for offline use", 0.9));
    let offline = browser::offline_copy().await;

    report(stage("Restoring your project", 0.96));
    let engine = Engine {
        compute,
        base,
        served,
        packs,
        defaults,
        store,
        offline,
        worker,
    };
    let mut restored = restore(&engine, config).await;
    if let Some(problem) = problem {
        restored.problem = Some(match restored.problem {
            Some(more) => format!("{problem} {more}"),
            None => problem,
        });
    }
    Ok((engine, restored))
}

/// Starter pack `info`'s training and held-out text, downloaded from the
/// app's own origin (the offline copy answers once it is kept).
///
/// # Errors
/// What failed and what to do, in words.
pub async fn download_pack(
    config: &AppConfig,
    info: &PackInfo,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let dir = format!("{}/{}", config.packs_dir, info.name);
    let text = |file: &'static str| {
        let url = format!("{dir}/{file}");
        async move { browser::download(&url, |_, _| {}).await }
    };
    let cannot = |why: String| {
        format!(
            "The starter pack {} could not be downloaded ({why}); check the connection and add it again",
            info.title
        )
    };
    let train = text("train.txt").await.map_err(cannot)?;
    let test = text("test.txt").await.map_err(cannot)?;
    Ok((train, test))
}

fn unavailable(e: String) -> String {
    format!("MoSE Lab could not download its files ({e}); check the connection and reload the page")
}

/// The stored project with its learners, or why it could not be used: a
/// project this build cannot read, or whose states do not load into the
/// model, is kept aside under its own key instead of being overwritten.
async fn restore(engine: &Engine, config: &AppConfig) -> Restored {
    let nothing = |problem: Option<String>| Restored {
        project: None,
        problem,
        kept_aside: false,
    };
    let store = match &engine.store {
        Ok(store) => store,
        Err(why) => {
            return nothing(Some(format!(
                "{why}. Work in this page will not survive a reload."
            )));
        }
    };
    let bytes = match store.get(config.project_key).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return nothing(None),
        Err(why) => return nothing(Some(why)),
    };
    match open_project(&bytes, engine) {
        Ok(project) => Restored {
            project: Some(project),
            problem: None,
            kept_aside: false,
        },
        Err(why) => {
            let kept_aside = store.put(config.unreadable_key, &bytes).await.is_ok();
            let what_now = if kept_aside {
                let _ = store.delete(config.project_key).await;
                "It is kept aside in this browser's storage; export it with \"Export the unreadable project\"."
            } else {
                "It could not be kept aside, so your next change here will replace it."
            };
            Restored {
                project: None,
                problem: Some(format!(
                    "Your saved project could not be opened: {why}. {what_now}"
                )),
                kept_aside,
            }
        }
    }
}
/// The project a new page starts with.
pub(super) fn empty_project(config: &AppConfig, engine: &Engine) -> Project {
    let defaults = engine.defaults;
    let data = DataConfig {
        max_seq_len: defaults.max_seq_len,
        heldout_fraction: config.heldout_fraction,
        ..DataConfig::default()
    };
    let train = TrainConfig::new()
        .with_steps_per_task(defaults.steps)
        .with_batch_size(defaults.batch_size)
        .with_learning_rate(config.learning_rate)
        .with_seed(config.seed);
    // A model without statistics of its own text that fit the defaults
    // routes without them: writing the texts in a page would take minutes
    // to hours for a model larger than the embedded one (docs/METHOD.md,
    // "The base model's own text").
    let defaults = MoseConfig::new();
    let fitting = engine
        .base
        .background
        .as_ref()
        .is_some_and(|b| b.fits(&engine.base.identity.fingerprint, &defaults));
    let mose = match (fitting, &engine.base.source) {
        (false, BaseSource::Served { .. } | BaseSource::Disk { .. }) => {
            defaults.with_background_texts(0)
        }
        _ => defaults,
    };
    Project::new(engine.base.identity.clone(), data, train, mose, config.seed)
}

/// A project file read for this base model, with the learners its states
/// hold: what an import and the restore at load both accept.
pub(super) fn open_project(
    bytes: &[u8],
    engine: &Engine,
) -> Result<(Project, Vec<Learner>), String> {
    let project = Project::from_bytes(bytes)
        .and_then(|p| p.check_base_model(&engine.base.identity).map(|_| p))
        .map_err(|e| match e {
            // The library says "load that base model first"; here that is a choice in the page.
            ProjectError::WrongBaseModel { expected, found } => format!(
                "this project was trained on the base model {expected}, not on {found}; \
                 choose that model under \"Change the base model\" in the Tasks panel, then open the project again"
            ),
            other => other.to_string(),
        })?;
    let learners = learners_of(&project, engine)?;
    Ok((project, learners))
}

/// The learners a project's saved states hold.
pub(super) fn learners_of(project: &Project, engine: &Engine) -> Result<Vec<Learner>, String> {
    open_learners(project, &engine.base.model_config, &engine.compute.device)
        .map_err(|e| e.to_string())
}
