//! A small continual sequence both the native and the browser tests run:
//! three clearly different synthetic text tasks on a tiny Llama whose weights
//! are drawn on the host from a seed (so every device starts from the same
//! model), with the BPE tokenizer fixture.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use mose_lab::data::{DataConfig, Example, Sample, split, tokenize};
use mose_lab::eval::Routing;
use mose_lab::model::{FrozenBase, HfParam, Llama, LlamaConfig};
#[cfg(not(target_arch = "wasm32"))]
use mose_lab::mose::Background;
use mose_lab::mose::{Learner, Method, MoseConfig};
use mose_lab::sequence::{SequenceReport, SequenceTask, score_base, score_learned};
use mose_lab::tokenizer::Tokenizer;
#[cfg(not(target_arch = "wasm32"))]
use mose_lab::train::base_model_background;
use mose_lab::train::{Flow, TaskRun, TrainConfig, learn_task};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

pub const TOKENIZER: &str = include_str!("../fixtures/tokenizer/tokenizer.json");

/// A 2-layer Llama (d 64, 4 heads, 2 KV heads) over the fixture tokenizer's
/// 1,001 ids, weights normal with std 0.1 drawn from `seed` on the host.
pub fn tiny_llama(seed: u64, device: &Device) -> Llama {
    let mut config = LlamaConfig::new(1001, 64, 128, 2, 4, 2);
    config.initializer_range = 0.1;
    let tokenizer = Tokenizer::from_json(TOKENIZER).expect("the fixture tokenizer");
    config.bos_token_id = tokenizer.special().bos;
    let mut model = config.init(device);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut normal = |n: usize| -> Vec<f32> {
        // Irwin–Hall: the sum of 12 uniforms minus 6 is close to a standard normal.
        (0..n)
            .map(|_| (0..12).map(|_| rng.random::<f32>()).sum::<f32>() - 6.0)
            .map(|z| z * 0.1)
            .collect()
    };
    for (_, param) in model.hf_params_mut() {
        match param {
            HfParam::Linear(p) | HfParam::Matrix(p) => {
                let shape = p.val().dims();
                let values = normal(shape[0] * shape[1]);
                *p = Param::initialized(
                    p.id,
                    Tensor::from_data(TensorData::new(values, shape), device),
                );
            }
            HfParam::Vector(_) => {} // norms stay at 1
        }
    }
    model
}

/// Three tasks a router should never confuse and a shared LoRA cannot hold
/// at once: counting in digits, runs of the alphabet, and shouted words.
pub fn synthetic_tasks(samples: usize, seed: u64) -> Vec<(&'static str, Vec<Sample>)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let counting = (0..samples)
        .map(|_| {
            let start = rng.random_range(0..80u32);
            let len = rng.random_range(8..13u32);
            let text: Vec<String> = (start..start + len).map(|n| n.to_string()).collect();
            Sample::Text(text.join(" "))
        })
        .collect();
    let letters = (0..samples)
        .map(|_| {
            let start = rng.random_range(0..14u8);
            let len = rng.random_range(8..13u8);
            let text: Vec<String> = (start..start + len)
                .map(|c| ((b'a' + c) as char).to_string())
                .collect();
            Sample::Text(text.join(" "))
        })
        .collect();
    const WORDS: [&str; 10] = [
        "STOP", "GO", "NOW", "HELP", "FIRE", "WAIT", "RUN", "YES", "NO", "LOOK",
    ];
    let shouting = (0..samples)
        .map(|_| {
            let len = rng.random_range(5..9usize);
            let text: Vec<&str> = (0..len)
                .map(|_| WORDS[rng.random_range(0..WORDS.len())])
                .collect();
            Sample::Text(format!("{}!", text.join(" ")))
        })
        .collect();
    vec![
        ("counting", counting),
        ("letters", letters),
        ("shouting", shouting),
    ]
}

/// A task's tokenized training and held-out examples.
pub struct TaskSplit {
    pub name: &'static str,
    pub train: Vec<Example>,
    pub heldout: Vec<Example>,
}

/// The synthetic tasks, split (seeded) and tokenized.
pub fn task_splits(tokenizer: &Tokenizer, samples: usize, seed: u64) -> Vec<TaskSplit> {
    let config = DataConfig::default();
    synthetic_tasks(samples, seed)
        .into_iter()
        .map(|(name, samples)| {
            let parts = split(samples.len(), &config, seed).expect("enough samples to split");
            let examples = |indices: &[usize]| -> Vec<Example> {
                indices
                    .iter()
                    .flat_map(|&i| {
                        tokenize(&samples[i], tokenizer, &config).expect("the sample tokenizes")
                    })
                    .collect()
            };
            TaskSplit {
                name,
                train: examples(&parts.train),
                heldout: examples(&parts.heldout),
            }
        })
        .collect()
}

/// The settings the tests' learners start from: the defaults, with the
/// Gaussian router, which reads every layer. Were the key router chosen, its
/// query would read layer 0: this base model's weights are random, and
/// deeper random layers only blur the lexical differences a cosine needs.
pub fn fixture_config() -> MoseConfig {
    MoseConfig::new().with_query_layer(Some(0))
}

/// A learner with `config` on `model`, seeded as every test's is.
pub fn fixture_learner(
    method: Method,
    config: MoseConfig,
    model: &Llama,
    device: &Device,
) -> Learner {
    Learner::new(method, config, model.config(), 7, device).expect("a valid configuration")
}

/// The learner every sequence test uses, on the fixture model
/// (`tiny_llama(1)`) with [`fixture_config`]. It adopts the fixture model's
/// own text, written once per test binary ([`fixture_background`]), as the
/// app and the CLI adopt a model folder's.
#[cfg(not(target_arch = "wasm32"))]
pub fn learner(method: Method, model: &Llama, device: &Device) -> Learner {
    let mut learner = fixture_learner(method, fixture_config(), model, device);
    if learner.needs_background() {
        let background = fixture_background(model, &learner, device);
        assert!(learner.adopt_background(background, FIXTURE_FINGERPRINT));
    }
    learner
}

/// What stands for the fixture model's weight fingerprint.
const FIXTURE_FINGERPRINT: &str = "tiny-llama-1";

/// The statistics of the fixture model's own text under `learner`'s
/// recipe (the default: 1024 texts of 63 tokens, its context's length),
/// written on the first call's device: about a minute natively, once,
/// where every learner writing its own would cost that each.
#[cfg(not(target_arch = "wasm32"))]
fn fixture_background(model: &Llama, learner: &Learner, device: &Device) -> &'static Background {
    static BACKGROUND: std::sync::OnceLock<Background> = std::sync::OnceLock::new();
    BACKGROUND.get_or_init(|| {
        let pad = Tokenizer::from_json(TOKENIZER)
            .expect("the fixture tokenizer")
            .pad_id();
        let base = FrozenBase {
            model,
            pad_id: pad,
            device,
        };
        pollster::block_on(base_model_background(
            base,
            FIXTURE_FINGERPRINT,
            learner,
            &TrainConfig::new(),
        ))
        .expect("the fixture model writes its own text")
        .expect("the fixture model names a start token")
    })
}

/// Learns the tasks of `splits` in order with `method` and scores them.
#[cfg(not(target_arch = "wasm32"))]
pub async fn run(
    method: Method,
    model: &Llama,
    splits: &[TaskSplit],
    pad: u32,
    config: &TrainConfig,
    device: &Device,
) -> SequenceReport {
    run_with(
        learner(method, model, device),
        model,
        splits,
        pad,
        config,
        device,
    )
    .await
}

/// Learns the tasks of `splits` in order with `learner` and scores them.
pub async fn run_with(
    mut learner: Learner,
    model: &Llama,
    splits: &[TaskSplit],
    pad: u32,
    config: &TrainConfig,
    device: &Device,
) -> SequenceReport {
    let tasks: Vec<SequenceTask> = splits
        .iter()
        .map(|s| SequenceTask {
            name: s.name,
            train: &s.train,
            heldout: &s.heldout,
        })
        .collect();
    let base = FrozenBase {
        model,
        pad_id: pad,
        device,
    };
    // Each task learned in turn, every task scored after each: the step
    // loop of the library's session, without its project and checkpoints.
    let mut report = SequenceReport::new(learner.method());
    score_base(base, &mut report, &tasks, 16)
        .await
        .expect("the base model scores");
    for task in &tasks {
        let mut run = TaskRun::start(base, &learner, task.name, task.train, config)
            .await
            .expect("the task starts");
        run.run(base, &learner, task.train, &mut |_| Flow::Continue)
            .await
            .expect("the task trains");
        let capacity = run.finish(&mut learner).await.expect("the task finishes");
        // The browser run is slow on a software adapter: say where it is.
        #[cfg(target_arch = "wasm32")]
        wasm_bindgen_test::console_log!("learned {}", task.name);
        score_learned(base, &learner, &mut report, &tasks, capacity, 16)
            .await
            .expect("every task scores");
    }
    report
}

/// The tiny model, the fixture tokenizer's pad id, and the synthetic tasks
/// (`samples` each) split and tokenized with `seed`.
pub struct Setup {
    pub model: Llama,
    pub pad: u32,
    pub splits: Vec<TaskSplit>,
}

pub fn setup(samples: usize, seed: u64, device: &Device) -> Setup {
    let tokenizer = Tokenizer::from_json(TOKENIZER).expect("the fixture tokenizer");
    Setup {
        model: tiny_llama(1, device),
        pad: tokenizer.special().pad.expect("a pad token"),
        splits: task_splits(&tokenizer, samples, seed),
    }
}

impl Setup {
    /// The model as runs take it, on `device`.
    pub fn base<'a>(&'a self, device: &'a Device) -> FrozenBase<'a> {
        FrozenBase {
            model: &self.model,
            pad_id: self.pad,
            device,
        }
    }

    /// Learns `split` to the end with `learner`.
    pub async fn learn(
        &self,
        learner: &mut Learner,
        split: &TaskSplit,
        config: &TrainConfig,
        device: &Device,
    ) {
        let base = FrozenBase {
            model: &self.model,
            pad_id: self.pad,
            device,
        };
        learn_task(base, learner, split.name, &split.train, config, &mut |_| {
            Flow::Continue
        })
        .await
        .expect("the task trains")
        .expect("nothing stops it");
    }
}

/// A sequence short enough for WebGPU on a software adapter in the browser,
/// where one training step of this model takes about 8 s (SwiftShader in
/// headless Chromium on 2 cores): 4 steps per task.
pub struct ShortSequence {
    pub samples: usize,
    pub steps: usize,
}

pub const SHORT_SEQUENCE: ShortSequence = ShortSequence {
    samples: 24,
    steps: 4,
};

pub fn short_config() -> TrainConfig {
    TrainConfig::new()
        .with_steps_per_task(SHORT_SEQUENCE.steps)
        .with_learning_rate(1e-2)
}

impl ShortSequence {
    /// MoSE over the three synthetic tasks on `device`, without the
    /// router's model of the base model's own text: writing those texts
    /// costs minutes on a software GPU in the browser, and texts drawn on
    /// two devices can part at a token whose probabilities differ in the
    /// last bit, which this comparison of exact routing decisions cannot
    /// allow (the background has tests of its own in tests/mose.rs).
    pub async fn run(&self, device: &Device) -> SequenceReport {
        let s = setup(self.samples, 3, device);
        let config = fixture_config().with_background_texts(0);
        let learner = fixture_learner(Method::Mose, config, &s.model, device);
        run_with(learner, &s.model, &s.splits, s.pad, &short_config(), device).await
    }
}

/// What the native run of the short sequence recorded
/// (`MOSE_WRITE_FIXTURES=1 cargo test --test mose short_sequence`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Recorded {
    pub routed: Vec<Vec<f64>>,
    pub oracle: Vec<Vec<f64>>,
    pub base: Vec<f64>,
    pub bwt: f64,
    pub routing: Vec<Vec<usize>>,
}

impl Recorded {
    pub fn of(report: &SequenceReport) -> Self {
        Self {
            routed: report.r_matrix(Routing::Routed),
            oracle: report.r_matrix(Routing::Oracle),
            base: report.base.iter().map(|s| s.log_likelihood).collect(),
            bwt: report.summary(Routing::Routed).bwt.unwrap_or(0.0),
            routing: report.confusion().map(|c| c.counts).unwrap_or_default(),
        }
    }
}

const RECORDED: &str = include_str!("../fixtures/mose/short-sequence.json");

/// The R matrices (within 0.05 nats per token), BWT (within 0.02) and the
/// routing decisions (exactly) equal the native CPU run's.
pub fn assert_matches_recorded(report: &SequenceReport, device: &str) {
    let recorded: Recorded =
        serde_json::from_str(RECORDED).expect("tests/fixtures/mose/short-sequence.json");
    let found = Recorded::of(report);
    let worst = |a: &[Vec<f64>], b: &[Vec<f64>]| {
        a.iter()
            .flatten()
            .zip(b.iter().flatten())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f64, f64::max)
    };
    let diffs = [
        (
            "base",
            worst(
                std::slice::from_ref(&found.base),
                std::slice::from_ref(&recorded.base),
            ),
        ),
        ("routed R", worst(&found.routed, &recorded.routed)),
        ("oracle R", worst(&found.oracle, &recorded.oracle)),
        ("BWT", (found.bwt - recorded.bwt).abs()),
    ];
    for (what, diff) in diffs {
        let tolerance = if what == "BWT" { 0.02 } else { 0.05 };
        assert!(
            diff <= tolerance,
            "{device}: {what} differs from the native run by {diff} (tolerance {tolerance}):\nfound {found:?}\nrecorded {recorded:?}"
        );
    }
    assert_eq!(
        found.routing, recorded.routing,
        "{device}: routing decisions"
    );
}
