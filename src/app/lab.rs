//! The app's state and everything a person can do to it: the loaded base
//! model, the project (tasks, samples, what each method learned, metrics),
//! the learners in memory, and the operations the panels call (add, rename,
//! move and delete tasks with undo, learn the next task, import, export,
//! clear). Every change to the project is saved to IndexedDB at once, so a
//! reload finds it again.

use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use mose_lab::backend::{self, Compute};
use mose_lab::data::{DataConfig, DataError};
use mose_lab::export::{Exported, export};
use mose_lab::model::generate::GenerationConfig;
use mose_lab::model::{FrozenBase, LoadProgress};
use mose_lab::mose::{Learner, Method, MoseConfig};
use mose_lab::project::{Project, ProjectError, ProjectTask};
use mose_lab::session::{LearnNext, Ran, SessionError, open_learners, start_methods};
use mose_lab::tasks::{self, EditError};
use mose_lab::train::{Flow, StepReport, TrainConfig};
use serde::{Deserialize, Serialize};

use super::base_model::{self, Base, BaseSource, ServedModel, gpu_failed};
use super::browser::{self, Store};

/// Settings for one kind of device: a GPU trains the full setting, the CPU
/// fallback a smaller one (docs/UX.md: "CPU mode: slower, smaller model").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceDefaults {
    /// Optimiser steps per task.
    pub steps: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// Token ids per example.
    pub max_seq_len: usize,
    /// Training samples a starter pack task takes (a seeded random subset).
    pub pack_train_samples: usize,
    /// Held-out samples scored per task.
    pub heldout_samples: usize,
}

/// Every number of the app.
#[derive(Debug, Clone, PartialEq)]
pub struct AppConfig {
    /// The IndexedDB database.
    pub db_name: &'static str,
    /// Where the project is saved in it.
    pub project_key: &'static str,
    /// Where a stored project this build cannot read is kept, untouched.
    pub unreadable_key: &'static str,
    /// Where the place of an interrupted run is kept: `<key>.meta`,
    /// `<key>.checkpoint` and `<key>.learner.<k>`.
    pub run_key: &'static str,
    /// The embedded base model's folder in the served site.
    pub model_dir: &'static str,
    /// The starter packs' folder in the served site.
    pub packs_dir: &'static str,
    /// The folder of the models the app serves beside itself, listed in its
    /// `index.json` (absent when it serves none).
    pub served_dir: &'static str,
    /// Where the base model choice is saved (and files from disk the person
    /// keeps, under `<key>.file.<i>`).
    pub base_key: &'static str,
    /// The name projects record for the embedded model (the CLI's folder name).
    pub model_name: &'static str,
    /// On a GPU.
    pub gpu: DeviceDefaults,
    /// On the CPU.
    pub cpu: DeviceDefaults,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Share of a pasted or chosen task's samples held out (docs/UX.md: 85/15).
    pub heldout_fraction: f64,
    /// Seeds splits, subsets and initialisation.
    pub seed: u64,
    /// Sequences per forward pass when scoring.
    pub eval_batch: usize,
    /// A task with fewer training samples gets a warning.
    pub few_samples: usize,
    /// A task with fewer tokens gets a warning.
    pub few_tokens: usize,
    /// Share of a task's samples also in another task above which both warn.
    pub duplicate_share: f64,
    /// Quiet time after typing before the router runs, in milliseconds.
    pub route_debounce_ms: u32,
    /// How "Generate" continues a prompt (its length is the Try panel's default).
    pub generation: GenerationConfig,
    /// The most new tokens the Try panel lets a person ask for.
    pub most_new_tokens: usize,
    /// Steps between two saved checkpoints of a running task.
    pub checkpoint_every: usize,
    /// The most memory a base model may need to load (its files and its
    /// weights in f32 twice, [`base_model::memory_needed`]): a wasm32 page
    /// addresses 4 GiB, and the app's own state needs some of it.
    pub most_model_memory: u64,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            db_name: "mose-lab",
            project_key: "project",
            unreadable_key: "project.unreadable",
            run_key: "run",
            model_dir: "model",
            packs_dir: "packs",
            served_dir: "served",
            base_key: "base",
            model_name: "model",
            gpu: DeviceDefaults {
                steps: 60,
                batch_size: 8,
                max_seq_len: 128,
                pack_train_samples: 400,
                heldout_samples: 48,
            },
            cpu: DeviceDefaults {
                steps: 30,
                batch_size: 4,
                max_seq_len: 64,
                pack_train_samples: 160,
                heldout_samples: 24,
            },
            learning_rate: 3e-3,
            heldout_fraction: 0.15,
            seed: 0,
            eval_batch: 16,
            few_samples: 8,
            few_tokens: 1500,
            duplicate_share: 0.5,
            route_debounce_ms: 300,
            generation: GenerationConfig {
                max_new_tokens: 48,
                temperature: 0.8,
                top_k: Some(40),
                top_p: 0.95,
                repetition_penalty: 1.1,
                stop: Vec::new(),
                stop_at_eos: true,
                seed: 0,
                merge_adapter: true,
            },
            most_new_tokens: 512,
            checkpoint_every: 10,
            most_model_memory: 3_500_000_000,
        }
    }
}

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

/// A starter pack with its text.
#[derive(Clone)]
pub struct Pack {
    /// What it is.
    pub info: PackInfo,
    /// `train.txt`.
    pub train: Vec<u8>,
    /// `test.txt`.
    pub test: Vec<u8>,
}

/// What the page loaded: the device, the base model and the packs.
pub struct Engine {
    /// Where everything computes.
    pub compute: Compute,
    /// The base model, which a project with no learned task may change.
    pub base: Base,
    /// The models the app serves beside itself.
    pub served: Vec<ServedModel>,
    /// The starter packs.
    pub packs: Vec<Pack>,
    /// The settings for this device.
    pub defaults: DeviceDefaults,
    /// The IndexedDB store, or why there is none.
    pub store: Result<Store, String>,
    /// Whether the service worker holds an offline copy, or why not.
    pub offline: Result<(), String>,
}

impl Engine {
    /// The base model as runs take it: model, pad id and device.
    pub fn frozen(&self) -> FrozenBase<'_> {
        FrozenBase::new(&self.base.model, &self.base.tokenizer, &self.compute.device)
    }

    /// The same engine on another base model.
    fn with_base(&self, base: Base) -> Self {
        Self {
            compute: self.compute.clone(),
            base,
            served: self.served.clone(),
            packs: self.packs.clone(),
            defaults: self.defaults,
            store: self.store.clone(),
            offline: self.offline.clone(),
        }
    }
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

    // Downloads: 0.05 .. 0.7 of the bar, the model by bytes, then the packs.
    let fetch_text = |path: String| async move {
        browser::download(&path, |_, _| {})
            .await
            .map_err(unavailable)
    };
    let index = fetch_text(format!("{}/index.json", config.packs_dir)).await?;
    let infos: Vec<PackInfo> = serde_json::from_slice(&index)
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
    let base = match chosen {
        BaseSource::Embedded => None,
        source => {
            let files =
                base_model::files_of(&source, config, store.as_ref().ok(), on_weights.clone())
                    .await;
            report(stage(on_device, 0.62));
            let name = base_model::name_of(&source, config);
            match files {
                Ok(files) => Base::open(&files, &name, source, &compute, on_tensors.clone()).await,
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
    let base = match base {
        Some(base) => base,
        None => {
            let files = base_model::files_of(&BaseSource::Embedded, config, None, on_weights)
                .await
                .map_err(unavailable)?;
            report(stage(on_device, 0.62));
            Base::open(
                &files,
                config.model_name,
                BaseSource::Embedded,
                &compute,
                on_tensors,
            )
            .await
            .map_err(|e| format!("the base model cannot be loaded ({e}); reload the page"))?
        }
    };
    let mut packs = Vec::with_capacity(infos.len());
    for (i, info) in infos.iter().enumerate() {
        report(Loading {
            stage: format!("Downloading the starter pack {}", info.title),
            fraction: 0.7 + 0.1 * i as f64 / infos.len() as f64,
        });
        let dir = format!("{}/{}", config.packs_dir, info.name);
        let train = fetch_text(format!("{dir}/train.txt")).await?;
        let test = fetch_text(format!("{dir}/test.txt")).await?;
        packs.push(Pack {
            info: info.clone(),
            train,
            test,
        });
    }

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

/// What the train panel shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum TrainState {
    /// Nothing running.
    #[default]
    Idle,
    /// Reading the task's queries before the first step.
    Starting,
    /// Taking steps.
    Running,
    /// Stopped between two steps, can resume.
    Paused,
    /// Scoring every task after learning one.
    Scoring,
    /// Writing the project to storage.
    Saving,
    /// The run failed; the project is as it was before it.
    Failed(String),
}

impl TrainState {
    /// The `data-state` value.
    pub fn name(&self) -> &'static str {
        match self {
            TrainState::Idle => "idle",
            TrainState::Starting => "starting",
            TrainState::Running => "running",
            TrainState::Paused => "paused",
            TrainState::Scoring => "scoring",
            TrainState::Saving => "saving",
            TrainState::Failed(_) => "failed",
        }
    }

    /// True while a task is being learned.
    pub fn busy(&self) -> bool {
        !matches!(self, TrainState::Idle | TrainState::Failed(_))
    }
}

/// What a person asked of the running task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Run,
    /// Stop between two steps and wait.
    Pause,
    /// Stop and forget this task's run.
    Cancel,
}

/// Progress of the running task.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Progress {
    /// The task being learned.
    pub task: String,
    /// The method training now.
    pub method: Option<Method>,
    /// Its last step.
    pub step: Option<StepReport>,
    /// Seconds one step takes, averaged over this run.
    pub seconds_per_step: f64,
    /// Steps still to run, over every method of this task.
    pub steps_left: usize,
    /// While scoring: tasks scored and to score.
    pub scoring: Option<(usize, usize)>,
}

/// One loss value for the chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossPoint {
    /// Which method.
    pub method: Method,
    /// Step, 1-based.
    pub step: usize,
    /// Loss.
    pub loss: f32,
}

/// The settings a person can change before learning the next task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Steps per task.
    pub steps: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Sequences per step.
    pub batch_size: usize,
    /// Rank of each sub-expert.
    pub rank: usize,
    /// New sub-experts per site for each task.
    pub experts_per_task: usize,
    /// Held-out samples scored per task.
    pub heldout: usize,
    /// Token ids per example (fixed once learning starts).
    pub max_seq_len: usize,
    /// Train plain LoRA on the same tasks, to compare.
    pub compare_lora: bool,
}

/// Something a person can take back.
#[derive(Debug, Clone, PartialEq)]
pub struct Undo {
    /// What "Undo" undoes, in words.
    pub label: String,
    /// The project before it.
    pub project: Project,
}

/// The whole app state, as copyable handles.
#[derive(Clone, Copy)]
pub struct Lab {
    /// Every number.
    pub config: StoredValue<AppConfig>,
    /// The loaded model and device.
    pub engine: StoredValue<Rc<Engine>, LocalStorage>,
    /// The project.
    pub project: RwSignal<Project>,
    /// What each method of `project.trained` has learned, in the same order.
    pub learners: StoredValue<Vec<Learner>, LocalStorage>,
    /// Settings for the next task.
    pub settings: RwSignal<Settings>,
    /// The latest information for the person.
    pub notice: RwSignal<Option<String>>,
    /// The latest error for the person.
    pub error: RwSignal<Option<String>>,
    /// The last destructive change, while it can be undone.
    pub undo: RwSignal<Option<Undo>>,
    /// The train panel's state.
    pub train_state: RwSignal<TrainState>,
    /// Progress of the running task.
    pub progress: RwSignal<Progress>,
    /// The loss of every step of the current or last task.
    pub losses: RwSignal<Vec<LossPoint>>,
    /// What the person asked of the running task.
    pub control: RwSignal<Control>,
    /// Bytes stored and the quota, when known.
    pub storage: RwSignal<Option<(f64, f64)>>,
    /// A run a reload interrupted, which can resume.
    pub interrupted: RwSignal<Option<RunMeta>>,
    /// Whether a stored project this build could not open is kept aside.
    pub kept_aside: RwSignal<bool>,
    /// The base model being loaded in place of the current one, and how far.
    pub base_loading: RwSignal<Option<String>>,
    /// Bytes of model files kept in this browser, if any.
    pub kept_model: RwSignal<Option<u64>>,
}

/// Where a running task is, saved beside its checkpoint so that a run a
/// reload interrupted can resume (docs/UX.md, "Work survives a reload").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// The task's position.
    pub next: usize,
    /// Its name.
    pub task: String,
    /// The settings the run was started with.
    pub settings: Settings,
    /// Which method (position in the project's methods) the checkpoint
    /// holds; the ones before it finished this task.
    pub method: usize,
    /// Steps that method has done, of `steps`.
    pub step: usize,
    /// Steps per task.
    pub steps: usize,
}

/// A base model a person picks.
pub enum BaseChoice {
    /// The embedded model.
    Embedded,
    /// A model the app serves.
    Served(ServedModel),
    /// Files opened from disk, kept in this browser when `keep`.
    Disk {
        /// The files by name.
        files: base_model::Files,
        /// Whether the person asked to keep them.
        keep: bool,
    },
}

/// An interrupted run, read back from storage.
struct Resume {
    meta: RunMeta,
    checkpoint: Vec<u8>,
    finished: Vec<Vec<u8>>,
}

impl Lab {
    /// The state after loading, with the restored project or an empty one.
    pub fn new(config: AppConfig, engine: Engine, restored: Restored) -> Self {
        let (project, learners) = restored
            .project
            .unwrap_or_else(|| (empty_project(&config, &engine), Vec::new()));
        let settings = settings_of(&project, engine.defaults);
        let lab = Self {
            config: StoredValue::new(config),
            engine: StoredValue::new_local(Rc::new(engine)),
            project: RwSignal::new(project),
            learners: StoredValue::new_local(learners),
            settings: RwSignal::new(settings),
            notice: RwSignal::new(None),
            error: RwSignal::new(None),
            undo: RwSignal::new(None),
            train_state: RwSignal::new(TrainState::Idle),
            progress: RwSignal::new(Progress::default()),
            losses: RwSignal::new(Vec::new()),
            control: RwSignal::new(Control::Run),
            storage: RwSignal::new(None),
            interrupted: RwSignal::new(None),
            kept_aside: RwSignal::new(restored.kept_aside),
            base_loading: RwSignal::new(None),
            kept_model: RwSignal::new(None),
        };
        if let BaseSource::Disk {
            bytes, kept: true, ..
        } = lab.engine().base.source
        {
            lab.kept_model.set(Some(bytes));
        }
        if let Some(problem) = restored.problem {
            lab.fail(problem);
        }
        lab
    }

    /// Looks for a run a reload interrupted that fits the project.
    pub fn find_interrupted(self) {
        spawn_local(async move {
            let meta: Option<RunMeta> = self
                .read_run("meta")
                .await
                .and_then(|bytes| serde_json::from_slice(&bytes).ok());
            let fits = meta.as_ref().is_some_and(|m| {
                self.project.with_untracked(|p| {
                    p.learned() == m.next && p.tasks.get(m.next).is_some_and(|t| t.name == m.task)
                })
            });
            if fits {
                self.interrupted.set(meta);
            } else if meta.is_some() {
                self.forget_run().await;
            }
        });
    }

    /// Resumes the interrupted run from its last checkpoint.
    pub fn resume_interrupted(self) {
        let Some(meta) = self.interrupted.get_untracked() else {
            return;
        };
        if self.busy() {
            return;
        }
        self.interrupted.set(None);
        self.control.set(Control::Run);
        self.train_state.set(TrainState::Starting);
        self.error.set(None);
        spawn_local(async move {
            let checkpoint = self.read_run("checkpoint").await;
            let mut finished = Vec::with_capacity(meta.method);
            for k in 0..meta.method {
                finished.extend(self.read_run(&format!("learner.{k}")).await);
            }
            let outcome = match checkpoint {
                Some(checkpoint) if finished.len() == meta.method => {
                    let resume = Resume {
                        meta,
                        checkpoint,
                        finished,
                    };
                    learn_next(self, Some(resume)).await
                }
                _ => Err(cannot_resume("part of it is no longer stored")),
            };
            self.finish_learning(outcome).await;
        });
    }

    /// Drops the interrupted run.
    pub fn discard_interrupted(self) {
        self.interrupted.set(None);
        spawn_local(async move { self.forget_run().await });
    }

    async fn read_run(self, part: &str) -> Option<Vec<u8>> {
        let engine = self.engine();
        let store = engine.store.as_ref().ok()?;
        let key = format!("{}.{part}", self.config.with_value(|c| c.run_key));
        store.get(&key).await.ok().flatten()
    }

    async fn write_run(self, part: &str, bytes: &[u8]) {
        let engine = self.engine();
        let Ok(store) = &engine.store else {
            return;
        };
        let key = format!("{}.{part}", self.config.with_value(|c| c.run_key));
        // A checkpoint that cannot be kept only costs the resume after a reload.
        let _ = store.put(&key, bytes).await;
    }

    async fn forget_run(self) {
        let engine = self.engine();
        let Ok(store) = &engine.store else {
            return;
        };
        let run = self.config.with_value(|c| c.run_key);
        let parts = ["meta".to_string(), "checkpoint".to_string()]
            .into_iter()
            .chain((0..Method::ALL.len()).map(|k| format!("learner.{k}")));
        for part in parts {
            let _ = store.delete(&format!("{run}.{part}")).await;
        }
    }

    /// Shows how a learning run ended, and forgets its checkpoint.
    async fn finish_learning(self, outcome: Result<Option<String>, String>) {
        match outcome {
            Ok(Some(name)) => {
                self.train_state.set(TrainState::Idle);
                self.tell(format!(
                    "Learned {name}. Every task is scored again in Remember."
                ));
            }
            Ok(None) => {
                self.train_state.set(TrainState::Idle);
                self.tell("Cancelled: the project is as it was before this task.");
            }
            Err(why) => {
                self.train_state.set(TrainState::Failed(why.clone()));
                self.fail(why);
            }
        }
        self.progress.set(Progress::default());
        self.forget_run().await;
    }

    /// The loaded model and device.
    pub fn engine(self) -> Rc<Engine> {
        self.engine.get_value()
    }

    /// Shows `message` as information and clears the error.
    pub fn tell(self, message: impl Into<String>) {
        self.error.set(None);
        self.notice.set(Some(message.into()));
    }

    /// Shows `message` as an error.
    pub fn fail(self, message: impl Into<String>) {
        self.error.set(Some(message.into()));
    }

    /// Shows the error of an action that failed; nothing when it worked.
    pub fn report(self, outcome: Result<(), String>) {
        if let Err(why) = outcome {
            self.fail(why);
        }
    }

    /// True while a task is being learned: the task list is then fixed.
    pub fn busy(self) -> bool {
        self.train_state.with_untracked(TrainState::busy)
            || self.base_loading.with_untracked(Option::is_some)
    }

    /// Saves the project to the browser's storage and refreshes the meter.
    pub fn save(self) {
        let engine = self.engine();
        let project = self.project.get_untracked();
        let key = self.config.with_value(|c| c.project_key);
        spawn_local(async move {
            let Ok(store) = &engine.store else {
                return;
            };
            let saved = match project.to_bytes() {
                Ok(bytes) => store.put(key, &bytes).await,
                Err(e) => Err(e.to_string()),
            };
            if let Err(why) = saved {
                self.fail(format!(
                    "Your project could not be saved: {why}. Export it to keep it."
                ));
            }
            self.storage.set(browser::storage_use().await);
        });
    }

    /// Refreshes the storage meter.
    pub fn refresh_storage(self) {
        spawn_local(async move { self.storage.set(browser::storage_use().await) });
    }

    /// Changes the project, keeping the previous one for "Undo" under `label`.
    fn change_with_undo(self, label: &str, change: impl FnOnce(&mut Project)) {
        let before = self.project.get_untracked();
        self.project.update(change);
        self.undo.set(Some(Undo {
            label: label.to_string(),
            project: before,
        }));
        self.save();
    }

    /// Puts `project` in place of the current one, with its learners, the
    /// settings it implies and an empty loss chart; "Undo" (labelled
    /// `label`) brings the current one back.
    fn replace(self, label: &str, project: Project, learners: Vec<Learner>) {
        let before = self.project.get_untracked();
        self.settings
            .set(settings_of(&project, self.engine().defaults));
        self.learners.set_value(learners);
        self.losses.set(Vec::new());
        self.project.set(project);
        self.undo.set(Some(Undo {
            label: label.to_string(),
            project: before,
        }));
    }

    /// Puts back the project the last destructive change replaced.
    pub fn undo(self) {
        let Some(undo) = self.undo.get_untracked() else {
            return;
        };
        if self.busy() {
            self.fail("Wait until the task being learned is done, then undo.");
            return;
        }
        match learners_of(&undo.project, &self.engine()) {
            Ok(learners) => {
                self.learners.set_value(learners);
                self.project.set(undo.project);
                self.undo.set(None);
                self.tell(format!("Undone: {}.", undo.label));
                self.save();
            }
            Err(why) => self.fail(format!("That cannot be undone: {why}")),
        }
    }

    /// Adds a task from text a person pasted or chose.
    pub fn add_text_task(self, name: &str, bytes: &[u8]) -> Result<(), String> {
        let seed = self.config.with_value(|c| c.seed);
        let task = self
            .project
            .with_untracked(|p| tasks::text_task(p, name, bytes, seed))
            .map_err(|e| edit_message(&e))?;
        self.push_task(task)
    }

    /// Adds starter pack `name` as a task: a seeded subset of its training
    /// samples and its whole held-out split (cut to the held-out setting
    /// when it is first scored).
    pub fn add_pack_task(self, name: &str) -> Result<(), String> {
        let engine = self.engine();
        let Some(pack) = engine.packs.iter().find(|p| p.info.name == name) else {
            return Err(format!("There is no starter pack {name}."));
        };
        let (keep, seed) = (
            engine.defaults.pack_train_samples,
            self.config.with_value(|c| c.seed),
        );
        let task = self
            .project
            .with_untracked(|p| {
                let info = &pack.info;
                tasks::pack_task(p, &info.title, &pack.train, &pack.test, keep, seed)
            })
            .map_err(|e| edit_message(&e))?;
        self.push_task(task)
    }

    fn push_task(self, task: ProjectTask) -> Result<(), String> {
        let name = task.name.clone();
        let mut project = self.project.get_untracked();
        tasks::add_task(&mut project, task, &self.engine().base.tokenizer)
            .map_err(|e| edit_message(&e))?;
        self.project.set(project);
        self.tell(format!("Added the task {name}."));
        self.save();
        Ok(())
    }

    /// Renames task `index` (not yet learned).
    pub fn rename_task(self, index: usize, name: &str) -> Result<(), String> {
        self.edit(|p| tasks::rename_task(p, index, name))
    }

    /// Moves task `index` by `by` places (both ends not yet learned).
    pub fn move_task(self, index: usize, by: isize) -> Result<(), String> {
        self.edit(|p| tasks::move_task(p, index, by))
    }

    /// Deletes task `index` (not yet learned); "Undo" brings it back.
    pub fn delete_task(self, index: usize) -> Result<(), String> {
        let before = self.project.get_untracked();
        let name = self.edit(|p| tasks::delete_task(p, index).map(|t| t.name))?;
        self.undo.set(Some(Undo {
            label: format!("deleting {name}"),
            project: before,
        }));
        self.tell(format!("Deleted the task {name}."));
        Ok(())
    }

    /// Applies `edit` to the task list, unless a task is being learned or
    /// `edit` refuses; saves the project when it changed.
    fn edit<T>(self, edit: impl FnOnce(&mut Project) -> Result<T, EditError>) -> Result<T, String> {
        if self.busy() {
            return Err("The task list is fixed while a task is being learned.".into());
        }
        let mut project = self.project.get_untracked();
        let done = edit(&mut project).map_err(|e| edit_message(&e))?;
        if self.project.with_untracked(|p| *p != project) {
            self.project.set(project);
            self.save();
        }
        Ok(done)
    }

    /// Forgets everything learned, keeping the tasks ("Undo" brings it back).
    pub fn start_over(self) {
        if self.busy() {
            return;
        }
        self.change_with_undo("starting over", |p| p.trained.clear());
        self.learners.set_value(Vec::new());
        self.losses.set(Vec::new());
        self.tell("Everything learned is forgotten; the tasks are kept.");
    }

    /// Why the base model cannot change now, if it cannot: a task is being
    /// learned, or the project has learned tasks on this model.
    pub fn base_locked(self) -> Option<String> {
        if self.busy() {
            return Some("Wait until the task being learned is done.".into());
        }
        self.project.with(|p| p.learned() > 0).then(|| {
            "The base model can change only before the first task is learned: start over \
                 (or export this project first) to use another one."
                .into()
        })
    }

    /// Makes `choice` the base model: loads it on the device, and on
    /// success starts the project over on it, keeping its tasks (a project
    /// kept aside because it was made on that model opens instead), and
    /// saves the choice so that a reload loads the same model.
    pub async fn choose_base(self, choice: BaseChoice) -> Result<(), String> {
        if let Some(why) = self.base_locked() {
            return Err(why);
        }
        let config = self.config.get_value();
        let engine = self.engine();
        let (source, files) = match choice {
            BaseChoice::Embedded => (BaseSource::Embedded, None),
            BaseChoice::Served(model) => (
                BaseSource::Served {
                    name: model.name,
                    file: model.file,
                },
                None,
            ),
            BaseChoice::Disk { files, keep } => (
                BaseSource::Disk {
                    name: base_model::disk_name(&files),
                    bytes: files.iter().map(|(_, b)| b.len() as u64).sum(),
                    kept: keep,
                },
                Some(files),
            ),
        };
        let name = base_model::name_of(&source, &config);
        self.base_loading.set(Some(format!("Loading {name}")));
        let loaded = async {
            let files = match files {
                Some(files) => files,
                None => {
                    let on_bytes = move |got: f64, total: f64| {
                        self.base_loading.set(Some(format!(
                            "Downloading {name}: {:.1} of {:.1} MB",
                            got / 1e6,
                            total / 1e6
                        )))
                    };
                    base_model::files_of(&source, &config, None, on_bytes).await?
                }
            };
            if let Some(needed) = base_model::memory_needed(&files)
                && needed > config.most_model_memory
            {
                return Err(format!(
                    "loading it takes about {:.1} GB of memory (its weights expanded to 32-bit floats), \
                     more than a browser page can hold ({:.1} GB): choose a smaller model",
                    needed as f64 / 1e9,
                    config.most_model_memory as f64 / 1e9
                ));
            }
            let name = base_model::name_of(&source, &config);
            let on_tensors = |p: LoadProgress| {
                self.base_loading.set(Some(format!(
                    "Loading {name} onto the device: {} of {} tensors",
                    p.done, p.total
                )))
            };
            let base = Base::open(&files, &name, source.clone(), &engine.compute, on_tensors).await?;
            Ok::<_, String>((base, files))
        }
        .await;
        self.base_loading.set(None);
        let (base, files) = loaded.map_err(|why| {
            format!(
                "{} cannot be the base model: {why}",
                base_model::name_of(&source, &config)
            )
        })?;
        let description = base.describe();
        let engine = Rc::new(engine.with_base(base));
        self.engine.set_value(engine.clone());
        let kept_aside = match &engine.store {
            Ok(store) => store.get(config.unreadable_key).await.ok().flatten(),
            Err(_) => None,
        };
        let (project, learners) = match kept_aside.and_then(|b| open_project(&b, &engine).ok()) {
            Some(opened) => {
                if let Ok(store) = &engine.store {
                    let _ = store.delete(config.unreadable_key).await;
                }
                self.kept_aside.set(false);
                opened
            }
            None => {
                let mut project = empty_project(&config, &engine);
                project.tasks = self.project.with_untracked(|p| p.tasks.clone());
                (project, Vec::new())
            }
        };
        self.settings.set(settings_of(&project, engine.defaults));
        self.learners.set_value(learners);
        self.losses.set(Vec::new());
        self.undo.set(None);
        self.project.set(project);
        self.save();
        if let Ok(store) = &engine.store {
            base_model::save_source(&config, store, &engine.base.source, &files).await?;
            self.kept_model.set(match engine.base.source {
                BaseSource::Disk {
                    bytes, kept: true, ..
                } => Some(bytes),
                _ => None,
            });
            self.refresh_storage();
        }
        self.tell(format!(
            "The base model is now {description}. Tasks learned from here on adapt it."
        ));
        Ok(())
    }

    /// Deletes the model files kept in this browser; the model stays loaded
    /// until the page is reloaded.
    pub async fn forget_kept_base(self) -> Result<(), String> {
        self.drop_kept_files().await?;
        self.refresh_storage();
        self.tell(
            "The model's files are deleted from this browser; after a reload, open them again to use it.",
        );
        Ok(())
    }

    /// Deletes kept model files and saves the choice as not kept.
    async fn drop_kept_files(self) -> Result<(), String> {
        let config = self.config.get_value();
        let engine = self.engine();
        let Ok(store) = &engine.store else {
            return Ok(());
        };
        base_model::forget_files(&config, store).await?;
        if let BaseSource::Disk { name, bytes, .. } = &engine.base.source {
            let source = BaseSource::Disk {
                name: name.clone(),
                bytes: *bytes,
                kept: false,
            };
            base_model::save_source(&config, store, &source, &Vec::new()).await?;
        }
        self.kept_model.set(None);
        Ok(())
    }

    /// The project as one file, for "Export".
    pub fn export(self) -> Result<Vec<u8>, String> {
        self.project
            .with_untracked(Project::to_bytes)
            .map_err(|e| format!("The project could not be written: {e}"))
    }

    /// Learned task `index` as a model of its own: MoSE's sub-experts and
    /// modulation for it folded into the base model's weights, as a zip of
    /// a Hugging Face folder (config.json, model.safetensors,
    /// tokenizer.json) named after the task. Returns the bytes and the
    /// file's name.
    pub async fn export_task_model(self, index: usize) -> Result<(Vec<u8>, String), String> {
        let engine = self.engine();
        let name = self
            .project
            .with_untracked(|p| p.tasks.get(index).map(|t| t.name.clone()))
            .ok_or("That task is gone; export another one.")?;
        let mose = self
            .learners
            .get_value()
            .into_iter()
            .find(|l| l.method() == Method::Mose)
            .ok_or("Learn a task first, then download it as a model.")?;
        let cannot = |e: &dyn std::fmt::Display| format!("{name} could not be exported: {e}.");
        let checkpoint = export(
            &engine.base.model,
            &mose,
            Exported::Task(index),
            &engine.compute.device,
        )
        .await
        .map_err(|e| cannot(&e))?
        .with_tokenizer(
            engine.base.tokenizer_json.clone(),
            engine.base.chat_template.clone(),
        );
        let folder = file_stem(&name);
        let bytes = checkpoint.to_zip(&folder).map_err(|e| cannot(&e))?;
        Ok((bytes, format!("{folder}.zip")))
    }

    /// Replaces the project with an exported one ("Undo" brings back the old one).
    pub fn import(self, bytes: &[u8]) -> Result<(), String> {
        if self.busy() {
            return Err("Wait until the task being learned is done, then import.".into());
        }
        let engine = self.engine();
        let (project, learners) = open_project(bytes, &engine)
            .map_err(|e| format!("That file cannot be imported: {e}."))?;
        let summary = format!(
            "Imported a project with {} tasks, {} learned.",
            project.tasks.len(),
            project.learned()
        );
        self.replace("the import", project, learners);
        self.save();
        self.tell(summary);
        Ok(())
    }

    /// Deletes the stored project and starts an empty one ("Undo" brings it back).
    pub fn clear(self) {
        if self.busy() {
            self.fail("Wait until the task being learned is done, then delete.");
            return;
        }
        let engine = self.engine();
        let config = self.config.get_value();
        self.replace(
            "deleting everything",
            empty_project(&config, &engine),
            Vec::new(),
        );
        self.kept_aside.set(false);
        spawn_local(async move {
            if let Ok(store) = &engine.store {
                for key in [config.project_key, config.unreadable_key] {
                    if let Err(why) = store.delete(key).await {
                        self.fail(why);
                    }
                }
            }
            if let Err(why) = self.drop_kept_files().await {
                self.fail(why);
            }
            self.storage.set(browser::storage_use().await);
        });
        self.tell("Everything stored in this browser is deleted.");
    }

    /// The project kept aside because this build could not read it.
    pub async fn unreadable(self) -> Option<Vec<u8>> {
        let engine = self.engine();
        let store = engine.store.as_ref().ok()?;
        let key = self.config.with_value(|c| c.unreadable_key);
        store.get(key).await.ok().flatten()
    }

    /// Learns the next task with MoSE (and plain LoRA when compared), scores
    /// every task after it and saves the project.
    pub fn learn_next(self) {
        if self.busy() {
            return;
        }
        self.control.set(Control::Run);
        self.train_state.set(TrainState::Starting);
        self.error.set(None);
        self.interrupted.set(None);
        spawn_local(async move {
            self.forget_run().await;
            self.finish_learning(learn_next(self, None).await).await;
        });
    }
}

/// The project a new page starts with.
fn empty_project(config: &AppConfig, engine: &Engine) -> Project {
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
    // A model without the statistics of its own text routes without them:
    // writing the texts in a page would take minutes to hours for a model
    // larger than the embedded one (docs/METHOD.md, "The base model's own text").
    let mose = match (&engine.base.background, &engine.base.source) {
        (None, BaseSource::Served { .. } | BaseSource::Disk { .. }) => {
            MoseConfig::new().with_background_texts(0)
        }
        _ => MoseConfig::new(),
    };
    Project::new(engine.base.identity.clone(), data, train, mose, config.seed)
}

/// The settings panel's values for `project`.
fn settings_of(project: &Project, defaults: DeviceDefaults) -> Settings {
    Settings {
        steps: project.train.steps_per_task,
        learning_rate: project.train.learning_rate,
        batch_size: project.train.batch_size,
        rank: project.mose.rank,
        experts_per_task: project.mose.new_experts_per_task,
        heldout: defaults.heldout_samples,
        max_seq_len: project.data.max_seq_len,
        compare_lora: project.trained.is_empty() || project.trained(Method::SeqLora).is_some(),
    }
    .clamped()
}

impl Settings {
    /// The settings with every count at least 1.
    pub fn clamped(self) -> Self {
        Self {
            steps: self.steps.max(1),
            batch_size: self.batch_size.max(1),
            rank: self.rank.max(1),
            experts_per_task: self.experts_per_task.max(1),
            heldout: self.heldout.max(1),
            max_seq_len: self.max_seq_len.max(2),
            ..self
        }
    }
}

/// A project file read for this base model, with the learners its states
/// hold: what an import and the restore at load both accept.
fn open_project(bytes: &[u8], engine: &Engine) -> Result<(Project, Vec<Learner>), String> {
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
fn learners_of(project: &Project, engine: &Engine) -> Result<Vec<Learner>, String> {
    open_learners(project, &engine.base.model_config, &engine.compute.device)
        .map_err(|e| e.to_string())
}

/// A data error as a sentence that names the task.
fn data_message(name: &str, e: &DataError) -> String {
    format!("{name}: {}", sentence(&e.to_string()))
}

/// An edit's refusal as the page says it: a sentence, a task's data error
/// as [`data_message`] says it.
fn edit_message(e: &EditError) -> String {
    match e {
        EditError::Data { task, source } => data_message(task, source),
        // It starts with the task's name, as the person wrote it.
        EditError::Learned { .. } => format!("{e}."),
        other => sentence(&other.to_string()),
    }
}

/// `text` with a capital and a full stop.
fn sentence(text: &str) -> String {
    let mut text = text.to_string();
    if let Some(first) = text.get(0..1) {
        text.replace_range(0..1, &first.to_uppercase());
    }
    format!("{text}.")
}

/// A session error as the page says it: a task's data error names the task.
fn session_message(e: &SessionError) -> String {
    match e {
        SessionError::Data { task, source } => data_message(task, source),
        other => other.to_string(),
    }
}

/// The body of [`Lab::learn_next`]: `Ok(Some(task))` when learned,
/// `Ok(None)` when cancelled.
async fn learn_next(lab: Lab, resume: Option<Resume>) -> Result<Option<String>, String> {
    let engine = lab.engine();
    let device = &engine.compute.device;
    let settings = match &resume {
        Some(resume) => resume.meta.settings.clone(),
        None => lab.settings.get_untracked(),
    };
    let mut project = lab.project.get_untracked();
    let next = project.learned();
    let Some(task) = project.tasks.get(next).cloned() else {
        return Err("Every task is learned: add a task to learn next.".into());
    };
    let mut learners = lab.learners.get_value();
    project.train = project
        .train
        .clone()
        .with_steps_per_task(settings.steps)
        .with_learning_rate(settings.learning_rate)
        .with_batch_size(settings.batch_size);
    if project.trained.is_empty() {
        project.data.max_seq_len = settings.max_seq_len;
        project.mose = project
            .mose
            .clone()
            .with_rank(settings.rank)
            .with_new_experts_per_task(settings.experts_per_task)
            .with_top_k_experts(settings.experts_per_task);
        let mut methods = vec![Method::Mose];
        if settings.compare_lora {
            methods.push(Method::SeqLora);
        }
        learners = start_methods(&mut project, &methods, &engine.base.model_config, device)
            .map_err(|e| match e {
                SessionError::Settings(e) => format!("These settings do not fit the model: {e}"),
                other => other.to_string(),
            })?;
    }
    // Tasks scored for the first time keep at most the held-out setting's samples.
    let scored = project.trained[0].report.base.len();
    for later in project.tasks.iter_mut().skip(scored) {
        later.split.heldout.truncate(settings.heldout.max(1));
    }
    let base = engine.frozen();
    let method_of: Vec<Method> = learners.iter().map(Learner::method).collect();
    let methods = learners.len();
    let tokenizer = &engine.base.tokenizer;
    if let Some(r) = &resume {
        // The methods that finished the task before the reload.
        for (k, bytes) in r.finished.iter().enumerate() {
            learners[k] = Learner::from_bytes(bytes, &engine.base.model_config, device)
                .map_err(|e| cannot_resume(&e.to_string()))?;
        }
    }
    if let Some(background) = &engine.base.background {
        for learner in &mut learners {
            learner.adopt_background(background, &engine.base.identity.fingerprint);
        }
    }
    let mut learning = match &resume {
        Some(r) => LearnNext::resume(
            base,
            &project,
            tokenizer,
            &learners,
            r.meta.method,
            &r.checkpoint,
        )
        .await
        .map_err(|e| cannot_resume(&e.to_string()))?,
        None => LearnNext::new(&project, tokenizer).map_err(|e| session_message(&e))?,
    };

    // A resumed run's chart starts with the losses before the reload.
    let (_, losses) = learning.progress();
    let method = method_of[learning.method()];
    lab.losses.set(
        losses
            .iter()
            .enumerate()
            .map(|(i, &loss)| LossPoint {
                method,
                step: i + 1,
                loss,
            })
            .collect(),
    );
    let every = lab.config.with_value(|c| c.checkpoint_every).max(1);
    let total = project.train.steps_per_task;
    let meta = |method: usize, step: usize| RunMeta {
        next,
        task: task.name.clone(),
        settings: settings.clone(),
        method,
        step,
        steps: total,
    };
    // The method shown, when it started here, and its steps since.
    let mut started: Option<(usize, web_time::Instant, usize)> = None;
    lab.train_state.set(TrainState::Running);
    loop {
        let k = learning.method();
        if k >= methods {
            // Every method has learned the task: this call says so.
        } else if started.is_none_or(|(shown, _, _)| shown != k) {
            started = Some((k, web_time::Instant::now(), 0));
            lab.progress.set(Progress {
                task: task.name.clone(),
                method: Some(method_of[k]),
                steps_left: total * (methods - k) - learning.progress().0,
                ..Progress::default()
            });
        }
        let mut checkpoint_due = false;
        let mut on_step = |k: usize, report: &StepReport| {
            let (_, since, steps) = started.get_or_insert((k, web_time::Instant::now(), 0));
            *steps += 1;
            checkpoint_due = report.step.is_multiple_of(every) && report.step < report.steps;
            let per_step = since.elapsed().as_secs_f64() / *steps as f64;
            let method = method_of[k];
            lab.losses.update(|l| {
                l.push(LossPoint {
                    method,
                    step: report.step,
                    loss: report.loss,
                })
            });
            lab.progress.update(|p| {
                p.step = Some(report.clone());
                p.seconds_per_step = per_step;
                p.steps_left = (report.steps - report.step) + total * (methods - k - 1);
            });
            match lab.control.get_untracked() {
                Control::Run if !checkpoint_due => Flow::Continue,
                _ => Flow::Stop,
            }
        };
        let ran = learning
            .run(base, &project, &mut learners, &mut on_step)
            .await
            .map_err(|e| train_failed(&task.name, &e.to_string()))?;
        match ran {
            Ran::Learned => break,
            Ran::MethodLearned(k) if k + 1 < methods => {
                // Kept for a reload: the next method starts from scratch.
                if let Ok(bytes) = learners[k].to_bytes(&engine.base.model_config).await {
                    lab.write_run(&format!("learner.{k}"), &bytes).await;
                }
            }
            Ran::MethodLearned(_) => {}
            Ran::Stopped => {
                if lab.control.get_untracked() != Control::Cancel {
                    // Stopped for a checkpoint, or paused: keep the place, so a
                    // reload can resume from here.
                    if let Ok(Some(bytes)) = learning.checkpoint().await {
                        lab.write_run("checkpoint", &bytes).await;
                        let at = meta(learning.method(), learning.progress().0);
                        let meta = serde_json::to_vec(&at).unwrap_or_default();
                        lab.write_run("meta", &meta).await;
                    }
                }
                if lab.control.get_untracked() == Control::Pause {
                    lab.train_state.set(TrainState::Paused);
                    while lab.control.get_untracked() == Control::Pause {
                        gloo_timers::future::TimeoutFuture::new(100).await;
                    }
                    lab.train_state.set(TrainState::Running);
                }
                if lab.control.get_untracked() == Control::Cancel {
                    return Ok(None);
                }
            }
        }
    }

    lab.train_state.set(TrainState::Scoring);
    let eval_batch = lab.config.with_value(|c| c.eval_batch);
    let mut on_method = |k: usize| {
        lab.progress.update(|p| {
            p.method = Some(method_of[k]);
            p.scoring = Some((k, methods));
        });
    };
    learning
        .score(base, &mut project, &learners, eval_batch, &mut on_method)
        .await
        .map_err(|e| gpu_failed(&e.to_string()))?;
    if lab.control.get_untracked() == Control::Cancel {
        return Ok(None);
    }

    lab.train_state.set(TrainState::Saving);
    // Tasks added while this one was learned stay; the rest is this run's.
    let trained = project.trained;
    let (train_config, mose_config, data) = (project.train, project.mose, project.data);
    let splits: Vec<_> = project.tasks.into_iter().map(|t| t.split).collect();
    lab.project.update(|p| {
        p.trained = trained;
        p.train = train_config;
        p.mose = mose_config;
        p.data = data;
        for (task, split) in p.tasks.iter_mut().zip(splits) {
            task.split = split;
        }
    });
    lab.learners.set_value(learners);
    lab.undo.set(None);
    lab.save();
    Ok(Some(task.name))
}

fn cannot_resume(e: &str) -> String {
    format!("The interrupted run cannot resume ({e}); learn the task again")
}

fn train_failed(task: &str, e: &str) -> String {
    format!(
        "Learning {task} stopped: {e}. The project is as it was before. If the device ran out of memory, \
         lower the batch size or the steps in the settings and try again"
    )
}

/// A task's name as a file or folder name: letters, digits, `-` and `_`
/// kept, runs of anything else one `-`, with `-mose` after it.
fn file_stem(name: &str) -> String {
    let mut stem = String::new();
    for c in name.chars() {
        match c.is_alphanumeric() || c == '_' || c == '-' {
            true => stem.push(c),
            false if !stem.ends_with('-') && !stem.is_empty() => stem.push('-'),
            false => {}
        }
    }
    let stem = stem.trim_end_matches('-');
    match stem.is_empty() {
        true => "task-mose".to_string(),
        false => format!("{stem}-mose"),
    }
}
