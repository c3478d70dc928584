//! The device check: a short, real training run that proves a device can do
//! what MoSE training does, and measures how fast.
//!
//! The model has the shape of one MoSE site (docs/METHOD.md, "Sub-experts"): a
//! frozen linear projection `W` with a trainable low-rank path beside it,
//! `y = x W + (alpha / r) * (x A^T) B^T`, with `A` small random and `B` zero, so
//! the untrained adapter changes nothing. The task is a classification whose
//! labels come from a teacher that differs from `W` by a low-rank correction:
//! the frozen layer alone gets many labels wrong and the adapter can learn the
//! difference. Loss is cross-entropy; AdamW sees the adapter's parameters only
//! (the frozen layer is never handed to the optimizer), and the test asserts
//! that `W` is bit-for-bit unchanged afterwards.
//!
//! All numbers are drawn on the host from one seed, so every device starts
//! from the same weights and data and their losses can be compared.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{DataError, Device, ExecutionError, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use web_time::Instant;

use crate::backend;

/// Settings of the device check. The defaults take a few seconds on a
/// software GPU and well under a second on a real one.
#[derive(Config, Debug)]
pub struct DeviceCheckConfig {
    /// Input features of the projection.
    #[config(default = 64)]
    pub d_input: usize,
    /// Output features, used as class logits.
    #[config(default = 16)]
    pub classes: usize,
    /// Rank `r` of the trainable path.
    #[config(default = 4)]
    pub rank: usize,
    /// Scale numerator: the path is multiplied by `alpha / rank`.
    #[config(default = 8.0)]
    pub alpha: f64,
    /// Training examples (one full batch per step).
    #[config(default = 256)]
    pub samples: usize,
    /// Optimizer steps.
    #[config(default = 30)]
    pub steps: usize,
    /// AdamW learning rate.
    #[config(default = 5e-2)]
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    #[config(default = 0.01)]
    pub weight_decay: f32,
    /// Size of the teacher's low-rank correction relative to the frozen weights.
    #[config(default = 4.0)]
    pub teacher_scale: f32,
    /// Seed for weights and data.
    #[config(default = 42)]
    pub seed: u64,
}

/// Why a device check could not finish.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The device failed while computing (lost GPU, out of memory).
    #[error("the device failed during the check: {0}")]
    Execution(#[from] ExecutionError),
    /// A tensor read back from the device had an unexpected type.
    #[error("could not read a tensor back from the device: {0}")]
    Data(#[from] DataError),
    /// The settings cannot run.
    #[error("invalid device-check setting: {0}")]
    Config(String),
}

/// One finished optimizer step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CheckStep {
    /// 1-based step number.
    pub step: usize,
    /// Total steps of the run.
    pub steps: usize,
    /// Training loss before this step's update, in nats.
    pub loss: f32,
    /// Seconds since the run started (includes shader compilation).
    pub elapsed_seconds: f64,
}

/// What a finished device check measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Loss at every step, in nats.
    pub losses: Vec<f32>,
    /// Steps per second after the first step (which compiles the shaders).
    pub steps_per_second: f64,
    /// Seconds the first step took.
    pub warmup_seconds: f64,
    /// Whether the frozen weights read back bit-for-bit equal to their start.
    pub frozen_unchanged: bool,
    /// Parameters the optimizer updated.
    pub trainable_params: usize,
    /// Parameters that stayed frozen.
    pub frozen_params: usize,
}

impl CheckReport {
    /// Loss before the first update.
    pub fn first_loss(&self) -> f32 {
        self.losses.first().copied().unwrap_or(f32::NAN)
    }

    /// Loss at the last step.
    pub fn last_loss(&self) -> f32 {
        self.losses.last().copied().unwrap_or(f32::NAN)
    }
}

/// The trainable low-rank path: `(alpha / r) * (x A^T) B^T`.
#[derive(Module, Debug)]
struct LowRankPath {
    /// `A`, shape `[rank, d_input]`, small random at start.
    lora_a: Param<Tensor<2>>,
    /// `B`, shape `[d_output, rank]`, zero at start.
    lora_b: Param<Tensor<2>>,
}

impl LowRankPath {
    /// # Shapes
    /// - x: `[batch, d_input]`
    /// - output: `[batch, d_output]`
    fn forward(&self, x: Tensor<2>, scale: f64) -> Tensor<2> {
        let h = x.matmul(self.lora_a.val().transpose()); // [batch, rank]
        h.matmul(self.lora_b.val().transpose()).mul_scalar(scale) // [batch, d_output]
    }
}

/// A frozen projection with a trainable low-rank path beside it.
#[derive(Module, Debug)]
struct AdaptedLinear {
    base: Linear,
    path: LowRankPath,
}

impl AdaptedLinear {
    /// # Shapes
    /// - x: `[batch, d_input]`
    /// - output: `[batch, d_output]`
    fn forward(&self, x: Tensor<2>, scale: f64) -> Tensor<2> {
        self.base.forward(x.clone()) + self.path.forward(x, scale)
    }
}

/// Everything the run needs, drawn on the host from the seed.
struct Problem {
    /// Frozen weight, row-major `[d_input, classes]` (burn's `Linear` layout).
    base_weight: Vec<f32>,
    /// `A`, row-major `[rank, d_input]`.
    lora_a: Vec<f32>,
    /// Inputs, row-major `[samples, d_input]`.
    inputs: Vec<f32>,
    /// Teacher labels, one per sample.
    labels: Vec<i64>,
}

impl Problem {
    fn draw(config: &DeviceCheckConfig) -> Self {
        let (d, c, r, n) = (config.d_input, config.classes, config.rank, config.samples);
        let mut rng = StdRng::seed_from_u64(config.seed);
        let mut uniform = |len: usize, bound: f32| -> Vec<f32> {
            (0..len).map(|_| rng.random_range(-bound..bound)).collect()
        };
        let init_bound = 1.0 / (d as f32).sqrt();
        let base_weight = uniform(d * c, init_bound);
        let lora_a = uniform(r * d, init_bound);
        let inputs = uniform(n * d, 1.0);
        // Teacher correction U V with U: [d, r], V: [r, c].
        let u = uniform(d * r, init_bound * config.teacher_scale);
        let v = uniform(r * c, 1.0);

        let labels = (0..n)
            .map(|i| {
                let x = &inputs[i * d..(i + 1) * d];
                let xu: Vec<f32> = (0..r)
                    .map(|k| (0..d).map(|j| x[j] * u[j * r + k]).sum())
                    .collect();
                let logit = |class: usize| -> f32 {
                    let frozen: f32 = (0..d).map(|j| x[j] * base_weight[j * c + class]).sum();
                    let correction: f32 = (0..r).map(|k| xu[k] * v[k * c + class]).sum();
                    frozen + correction
                };
                (0..c)
                    .map(|class| (class, logit(class)))
                    .fold((0, f32::NEG_INFINITY), |best, (class, l)| {
                        if l > best.1 { (class, l) } else { best }
                    })
                    .0 as i64
            })
            .collect();
        Self {
            base_weight,
            lora_a,
            inputs,
            labels,
        }
    }

    fn model(&self, config: &DeviceCheckConfig, device: &Device) -> AdaptedLinear {
        let (d, c, r) = (config.d_input, config.classes, config.rank);
        let mut base = LinearConfig::new(d, c).with_bias(false).init(device);
        base.weight = Param::from_data(TensorData::new(self.base_weight.clone(), [d, c]), device);
        AdaptedLinear {
            base: base.freeze(),
            path: LowRankPath {
                lora_a: Param::from_data(TensorData::new(self.lora_a.clone(), [r, d]), device),
                lora_b: Param::from_tensor(Tensor::zeros([c, r], device)),
            },
        }
    }
}

/// Runs the device check on `device`, calling `on_step` after every step and
/// yielding to the event loop between steps (see [`backend::yield_now`]).
///
/// # Errors
/// [`CheckError::Config`] for settings that cannot run; the device's own
/// errors (a lost GPU, out of memory) as [`CheckError::Execution`].
pub async fn run(
    config: &DeviceCheckConfig,
    device: &Device,
    mut on_step: impl FnMut(CheckStep),
) -> Result<CheckReport, CheckError> {
    if config.steps < 2 || config.samples == 0 || config.rank == 0 || config.classes < 2 {
        return Err(CheckError::Config(format!(
            "need steps >= 2, samples >= 1, rank >= 1 and classes >= 2 (got steps {}, samples {}, rank {}, classes {})",
            config.steps, config.samples, config.rank, config.classes
        )));
    }
    let problem = Problem::draw(config);
    let device = device.clone().autodiff();
    let mut model = problem.model(config, &device);
    let scale = config.alpha / config.rank as f64;

    let inputs = Tensor::<2>::from_data(
        TensorData::new(problem.inputs.clone(), [config.samples, config.d_input]),
        &device,
    );
    let labels = Tensor::<1, Int>::from_data(
        TensorData::new(problem.labels.clone(), [config.samples]),
        &device,
    );
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut optimizer = AdamWConfig::new()
        .with_weight_decay(config.weight_decay)
        .init();

    let start = Instant::now();
    let mut warmup_seconds = 0.0;
    let mut losses = Vec::with_capacity(config.steps);
    for step in 1..=config.steps {
        let logits = model.forward(inputs.clone(), scale);
        let loss = loss_fn.forward(logits, labels.clone());
        let loss_value = loss.clone().into_scalar_async::<f32>().await?;
        let grads = GradientsParams::from_grads(loss.backward(), &model.path);
        model.path = optimizer.step(config.learning_rate, model.path, grads);

        losses.push(loss_value);
        let elapsed_seconds = start.elapsed().as_secs_f64();
        if step == 1 {
            warmup_seconds = elapsed_seconds;
        }
        on_step(CheckStep {
            step,
            steps: config.steps,
            loss: loss_value,
            elapsed_seconds,
        });
        backend::yield_now().await;
    }
    // Make the last update land before the clock stops.
    let _ = model
        .path
        .lora_b
        .val()
        .sum()
        .into_scalar_async::<f32>()
        .await?;
    let measured = start.elapsed().as_secs_f64() - warmup_seconds;
    let steps_per_second = (config.steps - 1) as f64 / measured.max(f64::EPSILON);

    let frozen_now = model
        .base
        .weight
        .val()
        .into_data_async()
        .await?
        .try_into_vec::<f32>()?;
    let frozen_unchanged = frozen_now
        .iter()
        .zip(&problem.base_weight)
        .all(|(now, before)| now.to_bits() == before.to_bits())
        && frozen_now.len() == problem.base_weight.len();

    Ok(CheckReport {
        losses,
        steps_per_second,
        warmup_seconds,
        frozen_unchanged,
        trainable_params: model.path.num_params(),
        frozen_params: model.base.num_params(),
    })
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    /// B starts at zero, so before any step the adapted projection computes
    /// exactly what the frozen one does (docs/METHOD.md, "Invariants").
    #[test]
    fn untrained_path_changes_nothing() {
        let config = DeviceCheckConfig::new();
        let device = Device::flex();
        let problem = Problem::draw(&config);
        let model = problem.model(&config, &device);
        let x = Tensor::<2>::from_data(
            TensorData::new(problem.inputs.clone(), [config.samples, config.d_input]),
            &device,
        );
        let adapted = model.forward(x.clone(), config.alpha / config.rank as f64);
        let frozen = model.base.forward(x);
        adapted.into_data().assert_eq(&frozen.into_data(), true);
    }

    /// The labels are not trivial: the frozen layer alone gets a good share wrong.
    #[test]
    fn teacher_differs_from_the_frozen_layer() {
        let config = DeviceCheckConfig::new();
        let problem = Problem::draw(&config);
        let (d, c) = (config.d_input, config.classes);
        let frozen_wrong = (0..config.samples)
            .filter(|&i| {
                let x = &problem.inputs[i * d..(i + 1) * d];
                let logit = |k: usize| -> f32 {
                    (0..d).map(|j| x[j] * problem.base_weight[j * c + k]).sum()
                };
                let argmax = (0..c).max_by(|&a, &b| logit(a).total_cmp(&logit(b)));
                argmax != Some(problem.labels[i] as usize)
            })
            .count();
        assert!(
            frozen_wrong * 4 > config.samples,
            "only {frozen_wrong} of {} labels differ from the frozen layer's",
            config.samples
        );
    }

    #[test]
    fn rejects_settings_that_cannot_run() {
        let config = DeviceCheckConfig::new().with_steps(1);
        let outcome = pollster::block_on(run(&config, &Device::flex(), |_| {}));
        assert!(matches!(outcome, Err(CheckError::Config(_))), "{outcome:?}");
    }
}
