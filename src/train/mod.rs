//! The training loop both fronts use (docs/METHOD.md, "Training task t"; Algorithm 1
//! of arXiv 2511.06237).
//!
//! A [`TaskRun`] learns one task: it yields to the caller between steps (the
//! browser page stays responsive), reports each step, can stop at any step and
//! resume from a checkpoint, and hands AdamW only the trainable set: the new
//! task's state for MoSE and LoRA per task, the shared adapter for the shared
//! baselines. Earlier tasks' tensors are never given to the optimizer, so
//! neither Adam's moments nor weight decay can move them. The learning rate
//! warms up linearly and then follows a cosine; gradients are clipped by their
//! global norm, as PyTorch's `clip_grad_norm_` does.

use burn::config::Config;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use web_time::Instant;

mod checkpoint;
pub mod pretrain;

pub use checkpoint::CHECKPOINT_FORMAT_VERSION;

use crate::data::{Batches, Example, PaddedBatch};
use crate::model::generate::{GenerateError, TextSampling, sample_texts};
use crate::model::{FrozenBase, Llama, next_token_nll};
use crate::mose::{
    Background, Capacity, Learner, Likeness, Method, MoseError, RouterKind, SharedLora, TaskParams,
    TaskStats, layer_features, pull_loss, push_loss, query_features, read_vec, unit,
};
use crate::optim::{AdamWSettings, FlatAdamW};

/// How each task is trained; serialised with each run.
#[derive(Config, Debug, PartialEq)]
pub struct TrainConfig {
    /// Optimiser steps per task.
    #[config(default = 200)]
    pub steps_per_task: usize,
    /// Sequences per step.
    #[config(default = 8)]
    pub batch_size: usize,
    /// Peak learning rate of AdamW.
    #[config(default = 3e-3)]
    pub learning_rate: f64,
    /// Fraction of the steps spent warming the learning rate up from 0.
    #[config(default = 0.05)]
    pub warmup_fraction: f64,
    /// The cosine ends at this fraction of the peak learning rate.
    #[config(default = 0.1)]
    pub min_lr_fraction: f64,
    /// AdamW's decoupled weight decay.
    #[config(default = 0.0)]
    pub weight_decay: f64,
    /// AdamW's decay of the first moment.
    #[config(default = 0.9)]
    pub adam_beta_1: f64,
    /// AdamW's decay of the second moment.
    #[config(default = 0.999)]
    pub adam_beta_2: f64,
    /// AdamW's epsilon.
    #[config(default = 1e-8)]
    pub adam_epsilon: f64,
    /// Gradients are scaled down when their global L2 norm exceeds this.
    #[config(default = 1.0)]
    pub grad_clip_norm: f64,
    /// Drives shuffling (initialisation is seeded by the learner).
    #[config(default = 0)]
    pub seed: u64,
    /// Sequences per forward pass when computing query features.
    #[config(default = 32)]
    pub query_batch_size: usize,
}

impl TrainConfig {
    /// The learning rate at `step` of `total`: linear warm-up, then a cosine
    /// from the peak down to `min_lr_fraction` of it.
    pub fn learning_rate_at(&self, step: usize, total: usize) -> f64 {
        let warmup = (self.warmup_fraction * total as f64).round() as usize;
        if step < warmup {
            return self.learning_rate * (step + 1) as f64 / warmup as f64;
        }
        let decay = total.saturating_sub(warmup).max(1);
        let progress = ((step - warmup) as f64 / decay as f64).min(1.0);
        let min = self.learning_rate * self.min_lr_fraction;
        min + (self.learning_rate - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }

    /// AdamW's constants.
    pub fn adam_settings(&self) -> AdamWSettings {
        AdamWSettings {
            beta_1: self.adam_beta_1,
            beta_2: self.adam_beta_2,
            epsilon: self.adam_epsilon,
            weight_decay: self.weight_decay,
            clip_norm: self.grad_clip_norm,
        }
    }

    fn validate(&self) -> Result<(), TrainError> {
        let bad = |field: &'static str, value: String, reason: &'static str| {
            Err(TrainError::InvalidConfig {
                field,
                value,
                reason,
            })
        };
        if self.steps_per_task == 0 {
            return bad("steps_per_task", "0".into(), "must be at least 1");
        }
        if self.batch_size == 0 || self.query_batch_size == 0 {
            return bad("batch_size", "0".into(), "must be at least 1");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad(
                "learning_rate",
                self.learning_rate.to_string(),
                "must be above 0",
            );
        }
        if !(0.0..1.0).contains(&self.warmup_fraction) {
            return bad(
                "warmup_fraction",
                self.warmup_fraction.to_string(),
                "must be in [0, 1)",
            );
        }
        if self.grad_clip_norm.is_nan() || self.grad_clip_norm <= 0.0 {
            return bad(
                "grad_clip_norm",
                self.grad_clip_norm.to_string(),
                "must be above 0",
            );
        }
        Ok(())
    }
}

/// Errors of training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A setting is out of range.
    #[error("training setting {field} = {value} is invalid: {reason}")]
    InvalidConfig {
        /// The setting.
        field: &'static str,
        /// Its value.
        value: String,
        /// What is allowed.
        reason: &'static str,
    },
    /// The task has nothing to learn from.
    #[error("task {task} has no training examples; add some text to it")]
    NoExamples {
        /// The task's name.
        task: String,
    },
    /// The loss stopped being a number.
    #[error(
        "the loss of task {task} became {loss} at step {step}; lower the learning rate and train it again"
    )]
    Diverged {
        /// The task's name.
        task: String,
        /// The step.
        step: usize,
        /// The value.
        loss: f32,
    },
    /// A checkpoint that cannot be resumed here.
    #[error("this training checkpoint cannot be resumed ({reason}); start the task again")]
    BadCheckpoint {
        /// What was wrong.
        reason: String,
    },
    /// The base model could not write its own texts for the router.
    #[error("the base model could not write its own texts for the router: {0}")]
    Background(#[from] GenerateError),
    /// An error of the MoSE layer.
    #[error(transparent)]
    Mose(#[from] MoseError),
}

/// Which part of Algorithm 1 a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Dense softmax over every visible sub-expert.
    Explore,
    /// Only each site's settled top-k.
    Settle,
    /// A shared baseline: one adapter, no phases.
    Shared,
}

/// What one step did, for progress bars and loss charts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Steps done, 1-based.
    pub step: usize,
    /// Steps in the task.
    pub steps: usize,
    /// The whole loss.
    pub loss: f32,
    /// Its next-token cross-entropy part, nats per target token.
    pub next_token_loss: f32,
    /// The learning rate used.
    pub learning_rate: f64,
    /// Target tokens in the batch.
    pub tokens: usize,
    /// Target tokens per second over this run so far.
    pub tokens_per_second: f64,
    /// The phase.
    pub phase: Phase,
}

/// What the caller wants after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Stop here; [`TaskRun::checkpoint`] keeps the place.
    Stop,
}

/// How [`TaskRun::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// Every step is done: call [`TaskRun::finish`].
    Finished,
    /// The caller stopped it: call `run` again, or save a checkpoint.
    Stopped,
}

enum Trainable {
    Task(TaskParams),
    Shared(SharedLora),
}

/// One task being learned.
pub struct TaskRun {
    name: String,
    method: Method,
    /// The tasks the learner held when this run started.
    learned_before: Vec<String>,
    /// Training examples the run was started with.
    examples: usize,
    step: usize,
    steps: usize,
    batches: Batches,
    optimizer: FlatAdamW,
    trainable: Option<Trainable>,
    hidden: usize,
    /// Each site's top-k once the settle phase has begun.
    settled: Option<Vec<Vec<usize>>>,
    /// The earlier task this one builds on ([`Learner::familiar_task`]).
    familiar: Option<usize>,
    /// How the task read to the router before it trained ([`Learner::likeness`]).
    likeness: Option<Likeness>,
    /// The task's training features for the Gaussian router (computed at
    /// the start, or again at the end of a resumed run).
    features: Option<Vec<f32>>,
    /// The statistics of the base model's own texts, when the learner asked
    /// for them ([`Learner::needs_background`]); computed at the end of the run.
    background: Option<TaskStats>,
    /// The loss of every step so far.
    pub losses: Vec<f32>,
    config: TrainConfig,
}

impl TaskRun {
    /// Prepares to learn `name` from `examples` (Algorithm 1, steps 1 and
    /// 2): reads the task's text with the frozen model for the router, asks
    /// the router whether an earlier task already covers this kind of text,
    /// and allocates the new state (the key router's key from the first
    /// batches' mean query).
    pub async fn start(
        base: FrozenBase<'_>,
        learner: &Learner,
        name: &str,
        examples: &[Example],
        config: &TrainConfig,
    ) -> Result<Self, TrainError> {
        let FrozenBase {
            model,
            pad_id,
            device,
        } = base;
        config.validate()?;
        if examples.is_empty() {
            return Err(TrainError::NoExamples { task: name.into() });
        }
        let batches = Batches::new(examples.len(), config.batch_size, config.seed);
        let train_device = device.clone().autodiff();
        let hidden = model.config().hidden_size;
        let mut features = None;
        let mut familiar = None;
        let mut likeness = None;
        let trainable = match learner.shared() {
            Some(shared) => Trainable::Shared(shared.clone().train()),
            None if learner.config().router == RouterKind::Key => {
                // Key: the normalised mean query of the first batches.
                let mut first = batches.clone();
                let mut mean = vec![0.0f64; hidden];
                let mut count = 0usize;
                for _ in 0..learner.config().key_init_batches {
                    let indices = first.next_indices();
                    let queries =
                        indices_queries(model, learner, examples, &indices, pad_id, device).await?;
                    for query in queries.chunks(hidden) {
                        for (m, q) in mean.iter_mut().zip(query) {
                            *m += *q as f64;
                        }
                        count += 1;
                    }
                }
                let key: Vec<f32> = mean.iter().map(|m| (m / count as f64) as f32).collect();
                let start = learner.task_start(None).await?;
                Trainable::Task(learner.new_task(unit(&key), start, &train_device))
            }
            None => {
                // Every row the task's statistics will hold (whole examples,
                // then prefixes): the new task's own mean is built as each
                // learned task's was; its whole examples are judged.
                let (rows, whole) =
                    task_features(model, learner, examples, pad_id, config, device).await?;
                likeness = learner.likeness(&rows, whole, device).await?;
                familiar = learner.familiar_task(likeness);
                features = Some(rows);
                let start = learner.task_start(familiar).await?;
                Trainable::Task(learner.new_task(vec![0.0; hidden], start, &train_device))
            }
        };
        Ok(Self {
            name: name.into(),
            method: learner.method(),
            learned_before: learner.task_names().iter().map(|n| n.to_string()).collect(),
            examples: examples.len(),
            step: 0,
            steps: config.steps_per_task,
            batches,
            optimizer: FlatAdamW::new(config.adam_settings()),
            trainable: Some(trainable),
            hidden,
            settled: None,
            familiar,
            likeness,
            features,
            background: None,
            losses: Vec::new(),
            config: config.clone(),
        })
    }

    /// The task's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Steps done so far.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Steps in the task.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// How the task read to the router before it trained: the learned task
    /// it is most like and how much (MoSE with the Gaussian router, after
    /// the first task; `None` otherwise).
    pub fn likeness(&self) -> Option<Likeness> {
        self.likeness
    }

    /// Trains until every step is done or `on_step` says stop, yielding to
    /// the caller's event loop after each step.
    pub async fn run(
        &mut self,
        base: FrozenBase<'_>,
        learner: &Learner,
        examples: &[Example],
        on_step: &mut dyn FnMut(&StepReport) -> Flow,
    ) -> Result<RunEnd, TrainError> {
        let FrozenBase {
            model,
            pad_id,
            device,
        } = base;
        let started = Instant::now();
        let mut tokens_seen = 0usize;
        let settle_at = match learner.method().is_routed() {
            true => (learner.config().explore_fraction * self.steps as f64).round() as usize,
            false => usize::MAX,
        };
        while self.step < self.steps {
            if self.step >= settle_at && self.settled.is_none() {
                self.settle(learner).await?;
            }
            let indices = self.batches.next_indices();
            let batch: Vec<&Example> = indices.iter().map(|&i| &examples[i]).collect();
            let batch = PaddedBatch::new(&batch, pad_id);
            let report = self
                .train_step(model, learner, &batch, &indices, device)
                .await?;
            tokens_seen += report.tokens;
            let seconds = started.elapsed().as_secs_f64().max(1e-9);
            let report = StepReport {
                tokens_per_second: tokens_seen as f64 / seconds,
                ..report
            };
            self.losses.push(report.loss);
            let flow = on_step(&report);
            crate::backend::yield_now().await;
            if flow == Flow::Stop && self.step < self.steps {
                return Ok(RunEnd::Stopped);
            }
        }
        let gaussian =
            learner.method().is_routed() && learner.config().router == RouterKind::Gaussian;
        if gaussian && self.features.is_none() {
            let (rows, _) =
                task_features(model, learner, examples, pad_id, &self.config, device).await?;
            self.features = Some(rows);
        }
        if learner.needs_background() && self.background.is_none() {
            self.background =
                background_stats(model, learner, pad_id, &self.config, device).await?;
        }
        Ok(RunEnd::Finished)
    }

    /// Consolidates the learned task into `learner` (Algorithm 1, step 5)
    /// and returns the capacity after it.
    ///
    /// # Panics
    /// If the run has not finished its steps.
    pub async fn finish(mut self, learner: &mut Learner) -> Result<Capacity, TrainError> {
        assert!(
            self.step >= self.steps,
            "finish a task only after its last step"
        );
        if learner.method().is_routed() && self.settled.is_none() {
            self.settle(learner).await?;
        }
        let trainable = self
            .trainable
            .take()
            .expect("a run holds its trainable state");
        Ok(match trainable {
            Trainable::Task(params) => {
                let chosen = self.settled.take().unwrap_or_default();
                let features = self.features.take().unwrap_or_default();
                let background = self.background.take();
                learner
                    .add_task(self.name, params, chosen, &features, background)
                    .await?
            }
            Trainable::Shared(lora) => learner.set_shared(self.name, lora),
        })
    }

    /// Fixes each site's top-k set for the settle phase.
    async fn settle(&mut self, learner: &Learner) -> Result<(), TrainError> {
        let Some(Trainable::Task(params)) = &self.trainable else {
            return Ok(());
        };
        self.settled = Some(learner.settle_sets(params).await?);
        Ok(())
    }

    async fn train_step(
        &mut self,
        model: &Llama,
        learner: &Learner,
        batch: &PaddedBatch,
        indices: &[usize],
        device: &Device,
    ) -> Result<StepReport, TrainError> {
        let (ids, targets) = batch_tensors(batch, device);
        let target_count = batch.targets.iter().filter(|&&t| t > 0.0).count();
        let trainable = self
            .trainable
            .take()
            .expect("a run holds its trainable state");
        let (mixture, phase) = match &trainable {
            Trainable::Task(params) => (
                learner.training_mixture(params, self.settled.as_deref()),
                if self.settled.is_some() {
                    Phase::Settle
                } else {
                    Phase::Explore
                },
            ),
            Trainable::Shared(lora) => (lora_mixture(learner, lora), Phase::Shared),
        };
        let logits = model.forward_adapted(ids.clone(), &mixture);
        let nll = next_token_nll(logits, ids) * targets; // [b, t - 1]
        let next_token_loss = nll.sum().div_scalar(target_count.max(1) as f64);
        let mut loss = next_token_loss.clone();
        if let Trainable::Task(params) = &trainable
            && learner.config().router == RouterKind::Key
        {
            let config = learner.config();
            // The batch's query features, from the frozen model: computed
            // per step (not for every example up front), so a task starts at
            // once and a resumed run computes exactly what the whole run did.
            let (query_ids, _) = batch_tensors(batch, device);
            let queries = batch_queries(model, learner, batch, query_ids, device).await?;
            let queries = Tensor::<2>::from_data(
                TensorData::new(queries, [indices.len(), self.hidden]),
                device,
            );
            let key = params.key.val();
            loss = loss + pull_loss(queries.clone(), key.clone()).mul_scalar(config.lambda_pull);
            if config.lambda_push > 0.0
                && let Some(others) = learner.unit_keys(device)
            {
                loss = loss
                    + push_loss(queries, key, others, config.push_margin)
                        .mul_scalar(config.lambda_push);
            }
        }
        let values = read_vec(Tensor::cat(vec![loss.clone(), next_token_loss], 0)).await?;
        if !values[0].is_finite() {
            return Err(TrainError::Diverged {
                task: self.name.clone(),
                step: self.step + 1,
                loss: values[0],
            });
        }
        let learning_rate = self.config.learning_rate_at(self.step, self.steps);
        let grads = loss.backward();
        let trainable = match trainable {
            Trainable::Task(params) => {
                let grads = GradientsParams::from_grads(grads, &params);
                Trainable::Task(self.optimizer.step(learning_rate, params, grads))
            }
            Trainable::Shared(lora) => {
                let grads = GradientsParams::from_grads(grads, &lora);
                Trainable::Shared(self.optimizer.step(learning_rate, lora, grads))
            }
        };
        self.trainable = Some(trainable);
        self.step += 1;
        Ok(StepReport {
            step: self.step,
            steps: self.steps,
            loss: values[0],
            next_token_loss: values[1],
            learning_rate,
            tokens: target_count,
            tokens_per_second: 0.0,
            phase,
        })
    }
}

/// Learns one task from start to end: [`TaskRun::start`], [`TaskRun::run`]
/// and [`TaskRun::finish`]. Returns `None` when `on_step` stopped it.
pub async fn learn_task(
    base: FrozenBase<'_>,
    learner: &mut Learner,
    name: &str,
    examples: &[Example],
    config: &TrainConfig,
    on_step: &mut dyn FnMut(&StepReport) -> Flow,
) -> Result<Option<Capacity>, TrainError> {
    let mut run = TaskRun::start(base, learner, name, examples, config).await?;
    match run.run(base, learner, examples, on_step).await? {
        RunEnd::Finished => Ok(Some(run.finish(learner).await?)),
        RunEnd::Stopped => Ok(None),
    }
}

fn lora_mixture(learner: &Learner, lora: &SharedLora) -> crate::mose::Mixture {
    lora.mixture(
        learner.sites(),
        learner.config(),
        learner.config().moe_top_k,
    )
}

/// Token ids `[b, len]` and the loss mask `[b, len - 1]` of a batch.
pub(crate) fn batch_tensors(batch: &PaddedBatch, device: &Device) -> (Tensor<2, Int>, Tensor<2>) {
    let ids: Vec<i64> = batch.ids.iter().map(|&id| id as i64).collect();
    let ids = Tensor::from_data(TensorData::new(ids, [batch.batch, batch.len]), device);
    let targets = Tensor::from_data(
        TensorData::new(batch.targets.clone(), [batch.batch, batch.len - 1]),
        device,
    );
    (ids, targets)
}

/// Unit query features of `examples[i]` for each `i` of `indices` (one
/// batch, padded as a training step pads it), `[indices, hidden]` row-major.
async fn indices_queries(
    model: &Llama,
    learner: &Learner,
    examples: &[Example],
    indices: &[usize],
    pad_id: u32,
    device: &Device,
) -> Result<Vec<f32>, MoseError> {
    let refs: Vec<&Example> = indices.iter().map(|&i| &examples[i]).collect();
    let batch = PaddedBatch::new(&refs, pad_id);
    let (ids, _) = batch_tensors(&batch, device);
    batch_queries(model, learner, &batch, ids, device).await
}

/// A task's training features for the Gaussian router, `[n, width]`
/// row-major, and how many of the rows are whole examples: every example's
/// (as many as training will read, within `route_sample_floor` and
/// `route_sample_cap`; a seeded sample), then, for each example
/// whose query is longer than `route_prefix_tokens`, the feature of that
/// prefix (what a short prompt shows the router).
async fn task_features(
    model: &Llama,
    learner: &Learner,
    examples: &[Example],
    pad_id: u32,
    config: &TrainConfig,
    device: &Device,
) -> Result<(Vec<f32>, usize), MoseError> {
    let mut chosen: Vec<usize> = (0..examples.len()).collect();
    let mose = learner.config();
    let budget = config.steps_per_task.saturating_mul(config.batch_size);
    let cap = budget.clamp(
        mose.route_sample_floor.min(mose.route_sample_cap),
        mose.route_sample_cap,
    );
    if chosen.len() > cap {
        let seed = learner.seed() ^ (learner.tasks_learned() as u64).wrapping_mul(0x2545_F491);
        chosen.shuffle(&mut StdRng::seed_from_u64(seed));
        chosen.truncate(cap);
        chosen.sort_unstable();
    }
    let chosen: Vec<&Example> = chosen.iter().map(|&i| &examples[i]).collect();
    features_with_prefixes(model, learner, &chosen, pad_id, config, device).await
}

/// The router's features of `examples`, `[n, width]` row-major, and how
/// many rows are whole examples: each example's, then the feature of the
/// first `route_prefix_tokens` query tokens of each example whose query is
/// longer.
async fn features_with_prefixes(
    model: &Llama,
    learner: &Learner,
    examples: &[&Example],
    pad_id: u32,
    config: &TrainConfig,
    device: &Device,
) -> Result<(Vec<f32>, usize), MoseError> {
    let prefix = learner.config().route_prefix_tokens;
    let width = learner.feature_width();
    let mut full = Vec::with_capacity(examples.len() * width);
    let mut prefixes = Vec::new();
    for chunk in examples.chunks(config.query_batch_size) {
        let batch = PaddedBatch::new(chunk, pad_id);
        let (ids, _) = batch_tensors(&batch, device);
        let rows = batch_features(model, learner, &batch, ids, device, Some(prefix)).await?;
        let (whole, short) = rows.split_at(chunk.len() * width);
        full.extend_from_slice(whole);
        for (example, row) in chunk.iter().zip(short.chunks(width)) {
            if example.query_len > prefix {
                prefixes.extend_from_slice(row);
            }
        }
        crate::backend::yield_now().await;
    }
    let whole = full.len() / width;
    full.extend(prefixes);
    Ok((full, whole))
}

/// The statistics of the base model's own text under `learner`'s settings,
/// for a model folder to carry ([`Background`]): what a learner computes
/// with its first task, computed once. `fingerprint` names the weights
/// ([`crate::project::BaseModel`]'s). `None` for a model whose config names
/// no start or end token to write from.
///
/// # Errors
/// The device's, while writing or reading the texts.
pub async fn base_model_background(
    base: FrozenBase<'_>,
    fingerprint: &str,
    learner: &Learner,
    config: &TrainConfig,
) -> Result<Option<Background>, TrainError> {
    let FrozenBase {
        model,
        pad_id,
        device,
    } = base;
    let stats = background_stats(model, learner, pad_id, config, device).await?;
    Ok(stats.map(|stats| Background::new(fingerprint, learner.background_recipe(), stats)))
}

/// The router's statistics of texts the frozen base model writes by itself
/// (`background_texts` of `background_tokens` tokens from its start token,
/// seeded by `background_seed`), read as a task's training text is: whole,
/// and their first `route_prefix_tokens` tokens. `None` for no texts or a
/// model whose config names no start or end token to start from.
async fn background_stats(
    model: &Llama,
    learner: &Learner,
    pad_id: u32,
    config: &TrainConfig,
    device: &Device,
) -> Result<Option<TaskStats>, TrainError> {
    let mose = learner.config();
    let start = model
        .config()
        .bos_token_id
        .or_else(|| model.config().eos_ids().first().copied());
    let Some(start) = start.filter(|_| mose.background_texts > 0) else {
        return Ok(None);
    };
    let sampling = TextSampling {
        start,
        count: mose.background_texts,
        tokens: mose.background_tokens,
        temperature: mose.background_temperature,
        batch: mose.route_batch_size,
        seed: mose.background_seed,
    };
    let texts = sample_texts(model, &sampling, device).await?;
    let examples: Vec<Example> = texts
        .into_iter()
        .map(|ids| Example {
            targets: vec![true; ids.len().saturating_sub(1)],
            query_len: ids.len(),
            ids,
            answer: None,
            window: 0,
        })
        .collect();
    let examples: Vec<&Example> = examples.iter().collect();
    let (rows, _) =
        features_with_prefixes(model, learner, &examples, pad_id, config, device).await?;
    Ok(Some(
        TaskStats::of_features(&rows, learner.feature_width(), device).await?,
    ))
}

/// The router's feature of every row of `batch` (whose ids are `ids`),
/// [`Learner::feature_width`] values each, row-major on the host; with
/// `prefix`, followed by each row's feature over its first `prefix` query
/// tokens (the Gaussian router's only: one pass gives both).
pub(crate) async fn batch_features(
    model: &Llama,
    learner: &Learner,
    batch: &PaddedBatch,
    ids: Tensor<2, Int>,
    device: &Device,
    prefix: Option<usize>,
) -> Result<Vec<f32>, MoseError> {
    if learner.config().router == RouterKind::Key {
        return batch_queries(model, learner, batch, ids, device).await;
    }
    let shape = [batch.batch, batch.len];
    let mut masks = vec![batch.query_mask.clone()];
    if let Some(prefix) = prefix {
        let short: Vec<f32> = batch
            .query_mask
            .iter()
            .enumerate()
            .map(|(i, &m)| if i % batch.len < prefix { m } else { 0.0 })
            .collect();
        masks.push(short);
    }
    let masks: Vec<Tensor<2>> = masks
        .into_iter()
        .map(|m| Tensor::from_data(TensorData::new(m, shape), device))
        .collect();
    let features = layer_features(model, ids, &masks, learner.feature_groups());
    read_vec(Tensor::cat(features, 0)).await
}

/// Unit query features of the rows of `batch` (whose ids are `ids`),
/// `[batch, hidden]` row-major on the host.
pub(crate) async fn batch_queries(
    model: &Llama,
    learner: &Learner,
    batch: &PaddedBatch,
    ids: Tensor<2, Int>,
    device: &Device,
) -> Result<Vec<f32>, MoseError> {
    let mask = Tensor::from_data(
        TensorData::new(batch.query_mask.clone(), [batch.batch, batch.len]),
        device,
    );
    read_vec(query_features(model, ids, mask, learner.query_layer())).await
}
