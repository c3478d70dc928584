//! A project made ready to learn: its tasks as examples, its methods as
//! learners, and the sequence of tasks they learn. The app and the CLI both
//! come through here, so that a project reads the same on either front and
//! neither writes its own version of these steps.
//!
//! - [`project_examples`]: every task tokenized, with how many samples were
//!   made to fit the sequence length ([`crate::data::Fitted`]).
//! - [`sequence_tasks`]: those examples as the [`SequenceTask`]s that
//!   [`crate::sequence`] learns and scores.
//! - [`start_methods`]: fresh learners for a project's first task.
//! - [`open_learners`]: the learners a saved project holds, checked against
//!   the scores it recorded.
//! - [`LearnNext`]: the project's next task learned by each of its methods
//!   in turn, as a step loop the caller drives (progress, pause, checkpoint,
//!   resume and cancel are the caller's between calls), then every task
//!   scored and the states recorded in the project.

use burn::tensor::Device;
use web_time::Instant;

use crate::data::DataError;
use crate::model::{FrozenBase, LlamaConfig};
use crate::mose::{Capacity, Learner, Likeness, Method, MoseError};
use crate::project::{Project, ProjectTask, TaskExamples, Trained};
use crate::sequence::{SequenceReport, SequenceTask, score_base, score_learned};
use crate::tokenizer::Tokenizer;
use crate::train::{Flow, RunEnd, StepReport, TaskRun, TrainError};

/// Why a project cannot be made ready to learn.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// A task's text does not make examples.
    #[error("task {task}: {source}")]
    Data {
        /// The task's name.
        task: String,
        /// What is wrong with its text.
        source: DataError,
    },
    /// The method's settings do not fit the base model.
    #[error("these settings do not fit the model: {0}")]
    Settings(MoseError),
    /// A saved state cannot be read.
    #[error("the saved {method} state cannot be read: {source}")]
    State {
        /// The method's name.
        method: &'static str,
        /// Why.
        source: MoseError,
    },
    /// Every task of the project is learned.
    #[error("every task is learned: add a task to learn next")]
    NothingToLearn,
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The device could not hand back scores or a state.
    #[error("the device failed while scoring: {0}")]
    Device(MoseError),
    /// A saved state and the scores recorded with it disagree.
    #[error(
        "the {method} state holds {state} learned tasks but its scores {scores}; the project file is damaged: open an earlier copy of it"
    )]
    Mismatch {
        /// The method's name.
        method: &'static str,
        /// Tasks the state holds.
        state: usize,
        /// Tasks its report scored.
        scores: usize,
    },
}

/// Every task of `project` tokenized with its data settings, in order.
///
/// # Errors
/// [`SessionError::Data`] naming the first task whose text fails.
pub fn project_examples(
    project: &Project,
    tokenizer: &Tokenizer,
) -> Result<Vec<TaskExamples>, SessionError> {
    project
        .tasks
        .iter()
        .map(|task| {
            task.examples(tokenizer, &project.data)
                .map_err(|source| SessionError::Data {
                    task: task.name.clone(),
                    source,
                })
        })
        .collect()
}

/// A project's `tasks` as a sequence over their `examples` (from
/// [`project_examples`], same order).
pub fn sequence_tasks<'a>(
    tasks: &'a [ProjectTask],
    examples: &'a [TaskExamples],
) -> Vec<SequenceTask<'a>> {
    tasks
        .iter()
        .zip(examples)
        .map(|(task, examples)| SequenceTask {
            name: &task.name,
            train: &examples.train,
            heldout: &examples.heldout,
        })
        .collect()
}

/// New learners of `methods` with the project's MoSE settings and seed, and
/// the project's `trained` set to match them with empty reports: where a
/// project starts before its first task.
///
/// # Errors
/// [`SessionError::Settings`] when the settings do not fit `model`.
pub fn start_methods(
    project: &mut Project,
    methods: &[Method],
    model: &LlamaConfig,
    device: &Device,
) -> Result<Vec<Learner>, SessionError> {
    let learners = methods
        .iter()
        .map(|&method| Learner::new(method, project.mose.clone(), model, project.seed, device))
        .collect::<Result<Vec<_>, _>>()
        .map_err(SessionError::Settings)?;
    project.trained = methods
        .iter()
        .map(|&method| Trained {
            method,
            state: Vec::new(),
            report: SequenceReport::new(method),
        })
        .collect();
    Ok(learners)
}

/// The learners a project's saved states hold, in its `trained` order, each
/// checked to hold as many tasks as its report scored.
///
/// # Errors
/// [`SessionError::State`] for a state that cannot be read;
/// [`SessionError::Mismatch`] for one that disagrees with its report.
pub fn open_learners(
    project: &Project,
    model: &LlamaConfig,
    device: &Device,
) -> Result<Vec<Learner>, SessionError> {
    project
        .trained
        .iter()
        .map(|trained| {
            let method = trained.method.name();
            let learner = Learner::from_bytes(&trained.state, model, device)
                .map_err(|source| SessionError::State { method, source })?;
            let (state, scores) = (learner.tasks_learned(), trained.report.learned());
            if state != scores {
                return Err(SessionError::Mismatch {
                    method,
                    state,
                    scores,
                });
            }
            Ok(learner)
        })
        .collect()
}

/// What [`LearnNext::run`] stopped at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// `on_step` said stop; [`LearnNext::run`] goes on from the same step.
    Stopped,
    /// Method `k` (the project's `trained[k]`) has learned the task; the
    /// next call starts the next method: a place to keep its state.
    MethodLearned(usize),
    /// Every method has learned the task (the call after the last
    /// [`Ran::MethodLearned`]): [`LearnNext::score`] is next.
    Learned,
}

/// The next task of a project learned by each of its methods in turn, one
/// step loop the caller drives: it calls [`LearnNext::run`] until
/// [`Ran::Learned`], doing between calls what only it knows how (show
/// progress, write a checkpoint, wait while paused, give up when
/// cancelled), then [`LearnNext::score`].
pub struct LearnNext {
    task: usize,
    examples: Vec<TaskExamples>,
    method: usize,
    run: Option<TaskRun>,
    capacities: Vec<Capacity>,
    /// How the task read to each finished method's router before it trained.
    likeness: Vec<Option<Likeness>>,
    /// Seconds each method has spent on the task, training and scoring.
    seconds: Vec<f64>,
}

impl LearnNext {
    /// Prepares to learn the first task of `project` not learned yet.
    ///
    /// # Errors
    /// [`SessionError::NothingToLearn`]; [`SessionError::Data`] for a task's text.
    pub fn new(project: &Project, tokenizer: &Tokenizer) -> Result<Self, SessionError> {
        let task = project.learned();
        if task >= project.tasks.len() {
            return Err(SessionError::NothingToLearn);
        }
        Ok(Self {
            task,
            examples: project_examples(project, tokenizer)?,
            method: 0,
            run: None,
            capacities: Vec::new(),
            likeness: Vec::new(),
            seconds: Vec::new(),
        })
    }

    /// Prepares to go on from a [`LearnNext::checkpoint`] of method
    /// `method`, the methods before it having learned the task already
    /// (`learners[..method]` hold it, as kept at [`Ran::MethodLearned`]).
    ///
    /// # Errors
    /// As [`LearnNext::new`]; [`SessionError::Train`] for a checkpoint that
    /// does not fit; [`SessionError::Mismatch`] for a learner before
    /// `method` that has not learned the task.
    pub async fn resume(
        base: FrozenBase<'_>,
        project: &Project,
        tokenizer: &Tokenizer,
        learners: &[Learner],
        method: usize,
        checkpoint: &[u8],
    ) -> Result<Self, SessionError> {
        let mut next = Self::new(project, tokenizer)?;
        for learner in &learners[..method.min(learners.len())] {
            let capacity = match learner.tasks_learned() == next.task + 1 {
                true => learner.capacity().last().copied(),
                false => None,
            };
            next.capacities.push(capacity.ok_or(SessionError::Mismatch {
                method: learner.method().name(),
                state: learner.tasks_learned(),
                scores: next.task + 1,
            })?);
            next.likeness.push(None);
            next.seconds.push(0.0);
        }
        let learner = learners.get(method).ok_or(SessionError::Mismatch {
            method: "resumed",
            state: method,
            scores: learners.len(),
        })?;
        let train = &next.examples[next.task].train;
        next.run =
            Some(TaskRun::resume(checkpoint, base.model, learner, train, base.device).await?);
        next.method = method;
        Ok(next)
    }

    /// The index of the task being learned.
    pub fn task(&self) -> usize {
        self.task
    }

    /// The index of the method learning now (into the project's `trained`).
    pub fn method(&self) -> usize {
        self.method
    }

    /// How the task read to method `k`'s router before it trained, once `k`
    /// has learned it ([`TaskRun::likeness`]).
    pub fn likeness(&self, k: usize) -> Option<Likeness> {
        self.likeness.get(k).copied().flatten()
    }

    /// The current method's step, and its losses so far (empty before its
    /// run starts).
    pub fn progress(&self) -> (usize, &[f32]) {
        match &self.run {
            Some(run) => (run.step(), &run.losses),
            None => (0, &[]),
        }
    }

    /// Trains with `learners` (the project's `trained` order) from where it
    /// stands, until `on_step` says stop, a method finishes the task, or
    /// every method has. `on_step` hears each step with the method's index.
    ///
    /// # Errors
    /// [`SessionError::Train`] when training fails (the learners before
    /// the failing method keep the task; the caller keeps its own copy of
    /// the project to fall back on).
    pub async fn run(
        &mut self,
        base: FrozenBase<'_>,
        project: &Project,
        learners: &mut [Learner],
        on_step: &mut dyn FnMut(usize, &StepReport) -> Flow,
    ) -> Result<Ran, SessionError> {
        if self.method >= learners.len() {
            return Ok(Ran::Learned);
        }
        let started = Instant::now();
        let (task, method) = (&project.tasks[self.task], self.method);
        if self.seconds.len() <= method {
            self.seconds.push(0.0);
        }
        let train = &self.examples[self.task].train;
        let learner = &mut learners[method];
        let run = match &mut self.run {
            Some(run) => run,
            None => self
                .run
                .insert(TaskRun::start(base, learner, &task.name, train, &project.train).await?),
        };
        let mut on_step = |report: &StepReport| on_step(method, report);
        let end = run.run(base, learner, train, &mut on_step).await?;
        if end == RunEnd::Stopped {
            self.seconds[method] += started.elapsed().as_secs_f64();
            return Ok(Ran::Stopped);
        }
        let run = self.run.take().expect("the run just ran");
        self.likeness.push(run.likeness());
        self.capacities.push(run.finish(learner).await?);
        self.seconds[method] += started.elapsed().as_secs_f64();
        self.method += 1;
        Ok(Ran::MethodLearned(method))
    }

    /// The current method's run as bytes, to [`LearnNext::resume`] from;
    /// `None` before it starts.
    ///
    /// # Errors
    /// [`SessionError::Train`] when the device cannot hand the state back.
    pub async fn checkpoint(&self) -> Result<Option<Vec<u8>>, SessionError> {
        match &self.run {
            Some(run) => Ok(Some(run.checkpoint().await?)),
            None => Ok(None),
        }
    }

    /// Scores every task of `project` with each learner (the base model on
    /// tasks it has not scored yet too), routed and with the oracle, and
    /// records the rows and the learners' states in `project.trained`.
    /// `on_method` hears each method's index as its scoring starts.
    ///
    /// # Errors
    /// [`SessionError::Device`] when the device cannot hand scores back.
    pub async fn score(
        self,
        base: FrozenBase<'_>,
        project: &mut Project,
        learners: &[Learner],
        eval_batch: usize,
        on_method: &mut dyn FnMut(usize),
    ) -> Result<(), SessionError> {
        let sequence = sequence_tasks(&project.tasks, &self.examples);
        for (k, (learner, capacity)) in learners.iter().zip(self.capacities).enumerate() {
            on_method(k);
            let started = Instant::now();
            let report = &mut project.trained[k].report;
            score_base(base, report, &sequence, eval_batch)
                .await
                .map_err(SessionError::Device)?;
            score_learned(base, learner, report, &sequence, capacity, eval_batch)
                .await
                .map_err(SessionError::Device)?;
            project.trained[k].state = learner
                .to_bytes(base.model.config())
                .await
                .map_err(SessionError::Device)?;
            let training = self.seconds.get(k).copied().unwrap_or_default();
            project.trained[k].report.seconds += training + started.elapsed().as_secs_f64();
        }
        Ok(())
    }
}
