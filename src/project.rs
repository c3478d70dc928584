//! A project: the tasks a person defined, how each was split, the settings,
//! what every method learned and the metrics it reached, saved as one file
//! that the browser exports and imports and the CLI reads and writes
//! (docs/ARCHITECTURE.md, "Files that cross the boundary").
//!
//! The file is a safetensors container: its metadata holds the project as
//! JSON under `mose_lab_project`, with a `format_version` read before
//! anything else; each method's learned state is one `U8` tensor holding the
//! state file [`Learner::to_bytes`] writes, so it is validated again by
//! [`Learner::from_bytes`] when used.

use std::collections::HashMap;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::data::{
    DataConfig, DataError, Example, Fitted, Sample, Split, parse_task_text, split, tokenize_fitted,
};
use crate::model::{Fnv1a, LlamaConfig, LoadedModel};
use crate::mose::{Method, MoseConfig};
use crate::saved::{self, ReadError};
use crate::sequence::SequenceReport;
use crate::tokenizer::Tokenizer;
use crate::train::TrainConfig;

/// The project file format this build writes and reads.
pub const PROJECT_FORMAT_VERSION: u32 = 1;

/// The metadata key holding the project's JSON.
const PROJECT_KEY: &str = "mose_lab_project";
/// Tensor names of the learned states: `learner.<method>`.
const LEARNER_PREFIX: &str = "learner.";

/// Why a project file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// Not a MoSE Lab project at all.
    #[error(
        "this is not a MoSE Lab project file ({reason}); choose a file exported from MoSE Lab or written by `mose train`"
    )]
    NotAProject {
        /// What gave it away.
        reason: String,
    },
    /// A project from a newer MoSE Lab.
    #[error(
        "this project was saved by a newer MoSE Lab (format {found}; this one reads format {supported}); update MoSE Lab to open it"
    )]
    NewerVersion {
        /// The file's format version.
        found: u64,
        /// The version this build reads.
        supported: u32,
    },
    /// A project file whose parts do not fit together.
    #[error("this project file is damaged ({reason}); use an earlier export of it")]
    Damaged {
        /// What is inconsistent.
        reason: String,
    },
    /// The project was made with another base model.
    #[error(
        "this project was trained on the base model {expected}, not on {found}; load that base model first"
    )]
    WrongBaseModel {
        /// The project's base model.
        expected: String,
        /// The model loaded now.
        found: String,
    },
}

/// Which base model a project's states fit: its shape and a fingerprint of
/// its weights, so that a project is never run on another model of the same
/// shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseModel {
    /// A name for people (the model folder's name).
    pub name: String,
    /// Vocabulary, width, layers, heads and KV heads.
    pub shape: [usize; 5],
    /// FNV-1a 64 of the weight file, in hex.
    pub fingerprint: String,
}

impl BaseModel {
    /// The identity of the model `config` with weight file `weights`.
    pub fn of(name: &str, config: &LlamaConfig, weights: &[u8]) -> Self {
        Self::fingerprinted(name, config, Fnv1a::of(weights))
    }

    /// The identity of a model [`LoadedModel`] loaded: the same as
    /// [`BaseModel::of`] its weight file.
    pub fn of_loaded(name: &str, loaded: &LoadedModel) -> Self {
        Self::fingerprinted(name, &loaded.text.config, loaded.fingerprint)
    }

    fn fingerprinted(name: &str, config: &LlamaConfig, fingerprint: u64) -> Self {
        Self {
            name: name.to_string(),
            shape: [
                config.vocab_size,
                config.hidden_size,
                config.num_hidden_layers,
                config.num_attention_heads,
                config.kv_heads(),
            ],
            fingerprint: format!("{fingerprint:016x}"),
        }
    }

    fn describe(&self) -> String {
        let [vocab, hidden, layers, heads, kv] = self.shape;
        format!(
            "{:?} ({layers} layers, width {hidden}, {heads} heads / {kv} KV, vocabulary {vocab}, weights {})",
            self.name, self.fingerprint
        )
    }
}

/// One task: its samples and which of them are held out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectTask {
    /// The task's name.
    pub name: String,
    /// Every sample, training and held-out.
    pub samples: Vec<Sample>,
    /// Indices into `samples`.
    pub split: Split,
    /// The seed the split was drawn with; `None` for a fixed split (a starter pack's).
    pub split_seed: Option<u64>,
}

impl ProjectTask {
    /// A task from text a person gave, split at random with `seed`.
    ///
    /// # Errors
    /// The text's [`DataError`] (empty, binary, too large, too few samples).
    pub fn from_text(
        name: &str,
        bytes: &[u8],
        data: &DataConfig,
        seed: u64,
    ) -> Result<Self, DataError> {
        let samples = parse_task_text(bytes, data)?;
        let split = split(samples.len(), data, seed)?;
        Ok(Self {
            name: name.to_string(),
            samples,
            split,
            split_seed: Some(seed),
        })
    }

    /// A task whose split is fixed: a starter pack's `train.txt` and `test.txt`.
    ///
    /// # Errors
    /// Either text's [`DataError`].
    pub fn from_split_texts(
        name: &str,
        train: &[u8],
        test: &[u8],
        data: &DataConfig,
    ) -> Result<Self, DataError> {
        let mut samples = parse_task_text(train, data)?;
        let train_len = samples.len();
        samples.extend(parse_task_text(test, data)?);
        Ok(Self {
            name: name.to_string(),
            split: Split {
                train: (0..train_len).collect(),
                heldout: (train_len..samples.len()).collect(),
            },
            samples,
            split_seed: None,
        })
    }

    /// The training and held-out examples, and how many samples were made
    /// to fit `data.max_seq_len` ([`Fitted`]).
    ///
    /// # Errors
    /// A sample's [`DataError`] (too short, or a sequence length without
    /// room for one prompt and one answer token).
    pub fn examples(
        &self,
        tokenizer: &Tokenizer,
        data: &DataConfig,
    ) -> Result<TaskExamples, DataError> {
        let mut fitted = Fitted::default();
        let mut side = |indices: &[usize]| -> Result<Vec<Example>, DataError> {
            let mut out = Vec::new();
            for &i in indices {
                let (examples, fit) = tokenize_fitted(&self.samples[i], tokenizer, data)?;
                fitted.add(fit);
                out.extend(examples);
            }
            Ok(out)
        };
        let train = side(&self.split.train)?;
        let heldout = side(&self.split.heldout)?;
        Ok(TaskExamples {
            train,
            heldout,
            fitted,
        })
    }
}

/// One task's examples, tokenized.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskExamples {
    /// Examples to learn from.
    pub train: Vec<Example>,
    /// Examples to score.
    pub heldout: Vec<Example>,
    /// How many of its samples (both splits) were made to fit.
    pub fitted: Fitted,
}

/// What one method learned: the state and the metrics after each task.
#[derive(Debug, Clone, PartialEq)]
pub struct Trained {
    /// The method.
    pub method: Method,
    /// [`Learner::to_bytes`](crate::mose::Learner::to_bytes) after the last task.
    pub state: Vec<u8>,
    /// The scores after each task learned.
    pub report: SequenceReport,
}

/// A whole project.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    /// The base model its states fit.
    pub base_model: BaseModel,
    /// The tasks, in learning order.
    pub tasks: Vec<ProjectTask>,
    /// How task text becomes examples.
    pub data: DataConfig,
    /// How each task is trained.
    pub train: TrainConfig,
    /// The method's settings.
    pub mose: MoseConfig,
    /// Drives every initialisation.
    pub seed: u64,
    /// What each method learned, MoSE first.
    pub trained: Vec<Trained>,
}

/// The JSON part of the file.
#[derive(Serialize, Deserialize)]
struct Header {
    format_version: u32,
    base_model: BaseModel,
    tasks: Vec<ProjectTask>,
    data: DataConfig,
    train: TrainConfig,
    #[serde(deserialize_with = "crate::mose::deserialize_config")]
    mose: MoseConfig,
    seed: u64,
    reports: Vec<SequenceReport>,
}

impl Project {
    /// The project as one file.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ProjectError> {
        let header = Header {
            format_version: PROJECT_FORMAT_VERSION,
            base_model: self.base_model.clone(),
            tasks: self.tasks.clone(),
            data: self.data.clone(),
            train: self.train.clone(),
            mose: self.mose.clone(),
            seed: self.seed,
            reports: self.trained.iter().map(|t| t.report.clone()).collect(),
        };
        let damaged = |e: String| ProjectError::Damaged { reason: e };
        let json = serde_json::to_string(&header).map_err(|e| damaged(e.to_string()))?;
        let names: Vec<String> = self
            .trained
            .iter()
            .map(|t| format!("{LEARNER_PREFIX}{}", t.method.name()))
            .collect();
        let views = self
            .trained
            .iter()
            .zip(&names)
            .map(|(t, name)| {
                TensorView::new(Dtype::U8, vec![t.state.len()], &t.state)
                    .map(|view| (name.as_str(), view))
                    .map_err(|e| damaged(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let metadata = HashMap::from([(PROJECT_KEY.to_string(), json)]);
        safetensors::serialize(views, Some(metadata)).map_err(|e| damaged(e.to_string()))
    }

    /// A project written by [`to_bytes`](Self::to_bytes).
    ///
    /// # Errors
    /// [`ProjectError::NotAProject`] for any other file,
    /// [`ProjectError::NewerVersion`] for a newer format,
    /// [`ProjectError::Damaged`] when its parts do not fit together.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProjectError> {
        let not_a_project = |reason: String| ProjectError::NotAProject { reason };
        let damaged = |reason: String| ProjectError::Damaged { reason };
        let header: Header = saved::read_description(
            bytes,
            PROJECT_KEY,
            PROJECT_FORMAT_VERSION..=PROJECT_FORMAT_VERSION,
        )
        .map_err(|e| match e {
            ReadError::NotSafetensors(reason) => not_a_project(reason),
            ReadError::NoDescription => {
                not_a_project("it has no MoSE Lab project description".into())
            }
            ReadError::Version(Some(found)) if found > PROJECT_FORMAT_VERSION as u64 => {
                ProjectError::NewerVersion {
                    found,
                    supported: PROJECT_FORMAT_VERSION,
                }
            }
            ReadError::Version(found) => damaged(format!(
                "format version {}",
                found.map_or("missing".into(), |v| v.to_string())
            )),
            ReadError::Json(reason) => damaged(reason),
        })?;
        let file = SafeTensors::deserialize(bytes).map_err(|e| not_a_project(e.to_string()))?;
        for task in &header.tasks {
            let n = task.samples.len();
            let indices = task.split.train.iter().chain(&task.split.heldout);
            if task.split.train.is_empty() || task.split.heldout.is_empty() {
                return Err(damaged(format!("task {:?} has an empty split", task.name)));
            }
            if let Some(i) = indices.clone().find(|&&i| i >= n) {
                return Err(damaged(format!(
                    "task {:?} splits sample {i} of {n}",
                    task.name
                )));
            }
        }
        let mut trained = Vec::with_capacity(header.reports.len());
        for report in header.reports {
            let name = format!("{LEARNER_PREFIX}{}", report.method.name());
            let view = file.tensor(&name).map_err(|_| {
                damaged(format!("the state of {} is missing", report.method.name()))
            })?;
            if view.dtype() != Dtype::U8 {
                return Err(damaged(format!("{name} is {:?}, not bytes", view.dtype())));
            }
            if let Err(reason) = report.check() {
                return Err(damaged(format!(
                    "the metrics of {}: {reason}",
                    report.method.name()
                )));
            }
            if report.tasks.len() > header.tasks.len()
                || report
                    .tasks
                    .iter()
                    .zip(&header.tasks)
                    .any(|(a, b)| *a != b.name)
            {
                return Err(damaged(format!(
                    "the metrics of {} name other tasks than the project",
                    report.method.name()
                )));
            }
            trained.push(Trained {
                method: report.method,
                state: view.data().to_vec(),
                report,
            });
        }
        Ok(Self {
            base_model: header.base_model,
            tasks: header.tasks,
            data: header.data,
            train: header.train,
            mose: header.mose,
            seed: header.seed,
            trained,
        })
    }

    /// Checks that the project's states fit `model`.
    ///
    /// # Errors
    /// [`ProjectError::WrongBaseModel`] naming both models.
    pub fn check_base_model(&self, model: &BaseModel) -> Result<(), ProjectError> {
        if self.base_model.shape != model.shape || self.base_model.fingerprint != model.fingerprint
        {
            return Err(ProjectError::WrongBaseModel {
                expected: self.base_model.describe(),
                found: model.describe(),
            });
        }
        Ok(())
    }

    /// A project with no task yet.
    pub fn new(
        base_model: BaseModel,
        data: DataConfig,
        train: TrainConfig,
        mose: MoseConfig,
        seed: u64,
    ) -> Self {
        Self {
            base_model,
            tasks: Vec::new(),
            data,
            train,
            mose,
            seed,
            trained: Vec::new(),
        }
    }

    /// How many of the tasks, from the first, have been learned (by MoSE,
    /// and by every method compared with it).
    pub fn learned(&self) -> usize {
        self.trained
            .iter()
            .map(|t| t.report.learned())
            .min()
            .unwrap_or(0)
    }

    /// Drops the scores of every task not learned yet, after such a task
    /// was removed, renamed or moved (see [`SequenceReport::forget_unlearned`]).
    pub fn forget_unlearned(&mut self) {
        for trained in &mut self.trained {
            trained.report.forget_unlearned();
        }
    }

    /// What `method` learned, if the project has it.
    pub fn trained(&self, method: Method) -> Option<&Trained> {
        self.trained.iter().find(|t| t.method == method)
    }
}
