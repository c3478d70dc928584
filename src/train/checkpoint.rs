//! A stopped [`TaskRun`] as bytes, and the run again from them: the same
//! safetensors-plus-JSON shape as a saved state (docs/ARCHITECTURE.md, "Files
//! that cross the boundary"). The tensors are the trainable values and AdamW's
//! two moments, each one flat vector in the module's visiting order; the JSON
//! holds the step, the batch order, the settled sets, the losses so far, the
//! settings, and what the run was started against, so a checkpoint is only
//! resumed into the learner and the examples it came from.
//!
//! The query features are not stored: each step computes its batch's from
//! the frozen model. A resumed run therefore takes exactly the steps the
//! uninterrupted run would have taken (tests/mose.rs).

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use super::{TaskRun, TrainConfig, TrainError, Trainable};
use crate::data::{Batches, Example};
use crate::model::Llama;
use crate::mose::{Learner, Likeness, Method, read_vec};
use crate::optim::{self, FlatAdamW};
use crate::saved::{self, ReadError};

/// The checkpoint format this build writes and reads.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 1;

/// The metadata key of the JSON description.
const CHECKPOINT_KEY: &str = "mose_lab_checkpoint";

const PARAMS: &str = "params";
const FIRST_MOMENT: &str = "adam.first_moment";
const SECOND_MOMENT: &str = "adam.second_moment";

/// The JSON half of a checkpoint.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format_version: u32,
    task: String,
    method: Method,
    learned_before: Vec<String>,
    examples: usize,
    step: usize,
    steps: usize,
    batches: Batches,
    settled: Option<Vec<Vec<usize>>>,
    /// The earlier task the run builds on (absent in older checkpoints: none).
    #[serde(default)]
    familiar: Option<usize>,
    /// How the task read to the router (absent in older checkpoints).
    #[serde(default)]
    likeness: Option<Likeness>,
    losses: Vec<f32>,
    config: TrainConfig,
    adam_steps: usize,
    /// Every trainable tensor's shape, in visiting order.
    shapes: Vec<Vec<usize>>,
}

impl TaskRun {
    /// The run's place as one file, to [`resume`](Self::resume) it later,
    /// after a reload or on another device.
    pub async fn checkpoint(&self) -> Result<Vec<u8>, TrainError> {
        let trainable = self
            .trainable
            .as_ref()
            .expect("a run holds its trainable state");
        let mut tensors = vec![(PARAMS, read_vec(trainable.flatten()).await?)];
        if let Some((first, second)) = self.optimizer.moments() {
            tensors.push((FIRST_MOMENT, read_vec(first.clone()).await?));
            tensors.push((SECOND_MOMENT, read_vec(second.clone()).await?));
        }
        let header = Header {
            format_version: CHECKPOINT_FORMAT_VERSION,
            task: self.name.clone(),
            method: self.method,
            learned_before: self.learned_before.clone(),
            examples: self.examples,
            step: self.step,
            steps: self.steps,
            batches: self.batches.clone(),
            settled: self.settled.clone(),
            familiar: self.familiar,
            likeness: self.likeness,
            losses: self.losses.clone(),
            config: self.config.clone(),
            adam_steps: self.optimizer.time(),
            shapes: trainable.shapes(),
        };
        let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = tensors
            .into_iter()
            .map(|(name, values)| (name.to_string(), vec![values.len()], values))
            .collect();
        saved::write(&tensors, CHECKPOINT_KEY, &header).map_err(bad)
    }

    /// The run a [`checkpoint`](Self::checkpoint) holds, for the same
    /// learner (the tasks it had learned when the run started) and the same
    /// training examples.
    ///
    /// # Errors
    /// [`TrainError::BadCheckpoint`] for anything else, saying what differs.
    pub async fn resume(
        bytes: &[u8],
        model: &Llama,
        learner: &Learner,
        examples: &[Example],
        device: &Device,
    ) -> Result<Self, TrainError> {
        let header: Header = saved::read_description(
            bytes,
            CHECKPOINT_KEY,
            CHECKPOINT_FORMAT_VERSION..=CHECKPOINT_FORMAT_VERSION,
        )
        .map_err(|e| match e {
            ReadError::NotSafetensors(e) => bad(format!("it is not a training checkpoint: {e}")),
            ReadError::NoDescription => bad("it is not a training checkpoint".into()),
            ReadError::Version(found) => bad(format!(
                "it has format version {}, this build reads {CHECKPOINT_FORMAT_VERSION}",
                found.map_or("none".into(), |v| v.to_string())
            )),
            ReadError::Json(e) => bad(e),
        })?;
        if header.method != learner.method() {
            return Err(bad(format!(
                "it trains {:?}, the project uses {:?}",
                header.method,
                learner.method()
            )));
        }
        if header.learned_before != learner.task_names() {
            return Err(bad(format!(
                "it was started after the tasks {:?}, the project has learned {:?}",
                header.learned_before,
                learner.task_names()
            )));
        }
        if header.examples != examples.len() {
            return Err(bad(format!(
                "it was started with {} training examples, task {} now has {}",
                header.examples,
                header.task,
                examples.len()
            )));
        }
        if header.step > header.steps || header.losses.len() != header.step {
            return Err(bad("its step count is inconsistent".into()));
        }
        let file = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
        let values = |name: &str| -> Result<Option<Tensor<1>>, TrainError> {
            let Ok(view) = file.tensor(name) else {
                return Ok(None);
            };
            let host = match saved::f32_values(&view) {
                Some(values) if view.shape().len() == 1 => values,
                _ => return Err(bad(format!("its tensor {name} is not a vector of f32"))),
            };
            let n = host.len();
            Ok(Some(Tensor::from_data(TensorData::new(host, [n]), device)))
        };

        let train_device = device.clone().autodiff();
        let skeleton = match learner.shared() {
            Some(shared) => Trainable::Shared(shared.clone()),
            None => {
                let start = learner.task_start(header.familiar).await?;
                let key = vec![0.0; model.config().hidden_size];
                Trainable::Task(learner.new_task(key, start, &train_device))
            }
        };
        let shapes = skeleton.shapes();
        if shapes != header.shapes {
            return Err(bad(format!(
                "its tensors have the shapes {:?}, this task's are {shapes:?}",
                header.shapes
            )));
        }
        let total: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
        let sized = |name: &str| -> Result<Option<Tensor<1>>, TrainError> {
            match values(name)? {
                Some(v) if v.dims()[0] != total => Err(bad(format!(
                    "its tensor {name} has {} values, the task has {total}",
                    v.dims()[0]
                ))),
                found => Ok(found),
            }
        };
        let params = sized(PARAMS)?.ok_or_else(|| bad(format!("it has no {PARAMS}")))?;
        let settings = header.config.adam_settings();
        let optimizer = match (sized(FIRST_MOMENT)?, sized(SECOND_MOMENT)?) {
            (Some(first), Some(second)) if header.adam_steps > 0 => {
                FlatAdamW::resume(settings, header.adam_steps, first, second)
            }
            (None, None) if header.adam_steps == 0 => FlatAdamW::new(settings),
            _ => return Err(bad("its optimizer state is incomplete".into())),
        };
        if let (Trainable::Task(p), Some(sets)) = (&skeleton, &header.settled) {
            let fits = sets.len() == p.gates.len()
                && sets.iter().zip(&p.gates).all(|(set, gate)| {
                    let [visible] = gate.val().dims();
                    set.iter().all(|&i| i < visible)
                });
            if !fits {
                return Err(bad("its settled sub-experts do not fit the task".into()));
            }
        }
        let trainable = skeleton.unflatten(params);
        Ok(Self {
            name: header.task,
            method: header.method,
            learned_before: header.learned_before,
            examples: header.examples,
            step: header.step,
            steps: header.steps,
            batches: header.batches,
            optimizer,
            trainable: Some(trainable),
            hidden: model.config().hidden_size,
            settled: header.settled,
            familiar: header.familiar,
            likeness: header.likeness,
            features: None,
            background: None,
            losses: header.losses,
            config: header.config,
        })
    }
}

impl Trainable {
    /// Every trainable value in visiting order, `[values]`.
    fn flatten(&self) -> Tensor<1> {
        match self {
            Trainable::Task(p) => optim::flatten(p),
            Trainable::Shared(l) => optim::flatten(l),
        }
    }

    /// Every trainable tensor's shape, in visiting order.
    fn shapes(&self) -> Vec<Vec<usize>> {
        match self {
            Trainable::Task(p) => optim::shapes(p),
            Trainable::Shared(l) => optim::shapes(l),
        }
    }

    /// The same module holding `values` (as [`Self::flatten`] gives them),
    /// requiring gradients.
    fn unflatten(self, values: Tensor<1>) -> Self {
        match self {
            Trainable::Task(p) => Trainable::Task(optim::unflatten(p, values, true)),
            Trainable::Shared(l) => Trainable::Shared(optim::unflatten(l, values, true)),
        }
    }
}

fn bad(reason: String) -> TrainError {
    TrainError::BadCheckpoint { reason }
}
