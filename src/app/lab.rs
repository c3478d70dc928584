//! The app's state as copyable handles ([`Lab`]): the loaded engine, the
//! project and its learners, what the panels show (notices, the train
//! panel's state, progress and losses, the interrupted run, undo), and
//! saving the project. What a person does to it is in `actions.rs` (the
//! task list, undo, the base model, import and export) and `run.rs`
//! (learning the next task).

use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use mose_lab::backend::{self, BackendKind};
use mose_lab::mose::{Learner, Method};
use mose_lab::project::Project;
use mose_lab::train::StepReport;
use serde::{Deserialize, Serialize};

use super::base_model::BaseSource;
use super::browser;
use super::config::{AppConfig, Settings, settings_of};
use super::engine::{Engine, Restored, empty_project};

/// What the train panel shows.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossPoint {
    /// Which method.
    pub method: Method,
    /// Step, 1-based.
    pub step: usize,
    /// Loss.
    pub loss: f32,
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
    /// The starter pack being downloaded, by title.
    pub pack_loading: RwSignal<Option<String>>,
    /// The GPU the browser took away, until the app moves to the CPU.
    pub gpu_lost: RwSignal<Option<LostGpu>>,
    /// Counts changes of `engine`, for the views that show what it is.
    pub engine_changes: RwSignal<u32>,
}

/// A GPU the browser took away ([`backend::gpu_lost`]): every later read
/// from it fails, so the app offers to go on on the CPU, or after a reload.
#[derive(Debug, Clone, PartialEq)]
pub struct LostGpu {
    /// What the browser said.
    pub reason: String,
    /// The task that was being learned, which goes on where its checkpoint
    /// is (or from its first step when it had none yet).
    pub task: Option<String>,
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
            pack_loading: RwSignal::new(None),
            gpu_lost: RwSignal::new(None),
            engine_changes: RwSignal::new(0),
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

    /// The loaded model and device.
    pub fn engine(self) -> Rc<Engine> {
        self.engine.get_value()
    }

    /// Puts `engine` in place of the current one.
    pub fn set_engine(self, engine: Rc<Engine>) {
        self.engine.set_value(engine);
        self.engine_changes.update(|n| *n += 1);
    }

    /// The GPU the browser took away while the app still computes on it.
    pub fn lost_gpu(self) -> Option<String> {
        let on_gpu = self.engine().compute.kind == BackendKind::Wgpu;
        on_gpu.then(backend::gpu_lost).flatten()
    }

    /// [`Lab::lost_gpu`] after a failure on the GPU: a read that failed may
    /// reach the app before the browser's `lost` promise does, so this gives
    /// that promise up to `config.gpu_lost_wait_ms` to settle.
    pub async fn lost_gpu_after_failure(self) -> Option<String> {
        if self.engine().compute.kind != BackendKind::Wgpu {
            return None;
        }
        let (wait, poll) = self
            .config
            .with_value(|c| (c.gpu_lost_wait_ms, c.gpu_lost_poll_ms));
        for _ in 0..wait.div_ceil(poll.max(1)) {
            if let Some(reason) = self.lost_gpu() {
                return Some(reason);
            }
            gloo_timers::future::TimeoutFuture::new(poll).await;
        }
        self.lost_gpu()
    }

    /// Asks the running task to run, pause or cancel; in CPU mode the
    /// engine's worker hears it at once.
    pub fn set_control(self, control: Control) {
        self.control.set(control);
        if let Some(worker) = &self.engine().worker {
            worker.control(control);
        }
    }

    /// Shows `message` as information and clears the error.
    pub fn tell(self, message: impl Into<String>) {
        self.error.set(None);
        self.notice.set(Some(message.into()));
    }

    /// Shows `message` as an error; when the GPU is gone, offers the ways on.
    pub fn fail(self, message: impl Into<String>) {
        self.error.set(Some(message.into()));
        if let Some(reason) = self.lost_gpu()
            && self.gpu_lost.with_untracked(Option::is_none)
        {
            self.gpu_lost.set(Some(LostGpu { reason, task: None }));
        }
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
}
