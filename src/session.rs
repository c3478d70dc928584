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

use burn::tensor::Device;

use crate::data::DataError;
use crate::model::LlamaConfig;
use crate::mose::{Learner, Method, MoseError};
use crate::project::{Project, ProjectTask, TaskExamples, Trained};
use crate::sequence::{SequenceReport, SequenceTask};
use crate::tokenizer::Tokenizer;

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
