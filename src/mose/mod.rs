//! Mixtures of SubExperts (arXiv 2511.06237) and its baselines, as
//! docs/METHOD.md describes them: sub-expert pools beside the frozen
//! attention projections, one task state per task (key, gates, modulation,
//! own sub-experts), the router, and the shared-adapter baselines.
//!
//! A [`Learner`] holds what a method has learned so far. Training a task is
//! `crate::train`'s job; scoring is `crate::eval`'s; this module says what the
//! model computes for a given state.

mod background;
mod baselines;
mod lda;
mod mixture;
mod pool;
mod router;
mod state;
mod task;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::model::{Adapter, LlamaConfig, Site};
pub use background::{BACKGROUND_FILE, BACKGROUND_FORMAT_VERSION, Background, BackgroundRecipe};
pub use baselines::SharedLora;
use lda::TaskIdentifier;
pub(crate) use lda::TaskStats;
pub(crate) use mixture::Mixture;
use mixture::{ExpertWeights, SiteMix};
pub(crate) use pool::SubExpertConfig;
use pool::{SubExpert, SubExpertPool};
pub use router::{Route, RouterKind};
pub(crate) use router::{layer_features, pull_loss, push_loss, query_features};
pub use state::STATE_FORMAT_VERSION;

pub use task::{Capacity, GateKind, Likeness, TaskParams};
pub(crate) use task::{LearnedTask, read_vec, top_positions, unit};
use task::{TaskStart, gate_weights_host, logit_for};

/// Every number of the method (docs/METHOD.md); serialised with each run.
#[derive(Config, Debug, PartialEq)]
pub struct MoseConfig {
    /// Projections that get sub-experts in each adapted layer.
    #[config(default = "vec![Site::Q, Site::K, Site::V, Site::O]")]
    pub sites: Vec<Site>,
    /// Layers (0-based) that get sub-experts; `None` for every layer.
    #[config(default = "None")]
    pub layers: Option<Vec<usize>>,
    /// Rank `r` of each sub-expert.
    #[config(default = 4)]
    pub rank: usize,
    /// The path is scaled by `alpha / r`.
    #[config(default = 8.0)]
    pub alpha: f64,
    /// `A` starts uniform in `±init_gain / sqrt(d_in)` (1 is PEFT's LoRA init).
    #[config(default = 1.0)]
    pub init_gain: f64,
    /// Each task also owns a modulation `m_t` scaling the frozen output by `(1 + m_t)`.
    #[config(default = true)]
    pub modulate: bool,
    /// Fresh sub-experts allocated per site for each task, at least; a task
    /// that sees fewer than `top_k_experts` earlier sub-experts (the first)
    /// gets enough fresh ones to fill its `top_k_experts`.
    #[config(default = 2)]
    pub new_experts_per_task: usize,
    /// Sub-experts a task's gate keeps at each site once settled.
    #[config(default = 2)]
    pub top_k_experts: usize,
    /// How a task's gate weighs its sub-experts.
    #[config(default = "GateKind::Sigmoid")]
    pub gate: GateKind,
    /// NoRGa's residual scale `alpha` ([`GateKind::Norga`]).
    #[config(default = 1.0)]
    pub norga_alpha: f64,
    /// NoRGa's residual steepness `tau` ([`GateKind::Norga`]).
    #[config(default = 1.0)]
    pub norga_tau: f64,
    /// Initial gate logit of an earlier task's sub-expert (new ones start at 0).
    #[config(default = -2.0)]
    pub reuse_bias: f64,
    /// The settle phase keeps at each site the sub-experts that change the
    /// output most (gate weight times `|B A|`), not the largest logits.
    #[config(default = true)]
    pub settle_by_contribution: bool,
    /// A new task whose text the router cannot tell from an earlier task's
    /// starts from that task's sub-experts and modulation and adds no new
    /// sub-expert: routing between the two is then harmless.
    #[config(default = true)]
    pub reuse_familiar: bool,
    /// The share of a new task's training samples the router would send to
    /// one earlier task (nearer its mean than their own) for the new task to
    /// count as familiar.
    #[config(default = 0.25)]
    pub familiar_share: f64,
    /// The router's statistics read as many of a task's training examples
    /// (a seeded sample) as its training steps will (steps times batch), but
    /// at least `route_sample_floor` and at most this many: a bounded cost
    /// per task, never more than a third of training's (a forward pass only).
    #[config(default = 1024)]
    pub route_sample_cap: usize,
    /// The fewest training examples the router's statistics read, where the
    /// task has them: enough for a mean and a range.
    #[config(default = 64)]
    pub route_sample_floor: usize,
    /// Fraction of a task's steps spent exploring (dense softmax over every visible expert).
    #[config(default = 0.7)]
    pub explore_fraction: f64,
    /// Weight of `L_pull`, which draws the task's key towards its queries.
    #[config(default = 0.5)]
    pub lambda_pull: f64,
    /// Weight of the push hinge against other tasks' keys (0 turns it off).
    #[config(default = 0.1)]
    pub lambda_push: f64,
    /// Margin of the push hinge.
    #[config(default = 0.1)]
    pub push_margin: f64,
    /// How a sequence's task is identified.
    #[config(default = "RouterKind::Gaussian")]
    pub router: RouterKind,
    /// The Gaussian router's feature is at most this wide: each layer's mean
    /// hidden state, concatenated, with layers averaged in groups beyond it.
    #[config(default = 1024)]
    pub route_feature_width: usize,
    /// The Gaussian router's statistics also count each training window's
    /// first this many query tokens, so a short prompt routes like a sample.
    #[config(default = 16)]
    pub route_prefix_tokens: usize,
    /// Windows (or pair lines) of a typed prompt read per forward pass when
    /// routing it: a long pasted text costs several passes, never one
    /// unbounded batch.
    #[config(default = 32)]
    pub route_batch_size: usize,
    /// Beyond the nearest task's range the base model answers ("none of these").
    #[config(default = true)]
    pub none_of_these: bool,
    /// A task's range: this quantile of its own training features'
    /// (leave-one-out) distances to it.
    #[config(default = 0.99)]
    pub none_quantile: f64,
    /// With "none of these": texts the frozen base model writes by itself
    /// (from its start token) that the router models as the base model's
    /// own text, a feature nearer to them than to every task going to the
    /// base model; read once, with the first task, decoded
    /// `route_batch_size` texts at a time. 0 turns it off.
    #[config(default = 1024)]
    pub background_texts: usize,
    /// Tokens in each of those texts.
    #[config(default = 100)]
    pub background_tokens: usize,
    /// Temperature they are drawn at (1: the model's own distribution).
    #[config(default = 1.0)]
    pub background_temperature: f64,
    /// Seed of their draws: the texts describe the base model, not a
    /// project, so every project shares them (and a model folder can carry
    /// their statistics, [`Background`]).
    #[config(default = 0)]
    pub background_seed: u64,
    /// Decoder layer (0-based) whose output the key router's query averages; `None` for the last.
    #[config(default = "None")]
    pub query_layer: Option<usize>,
    /// Tasks mixed for each sequence.
    #[config(default = 1)]
    pub top_k_tasks: usize,
    /// Temperature of the softmax over the chosen tasks' scores.
    #[config(default = 0.1)]
    pub route_temperature: f64,
    /// Training batches whose mean query initialises a new task's key.
    #[config(default = 4)]
    pub key_init_batches: usize,
    /// Experts per site of the MoE-LoRA baseline (they share the LoRA rank between them).
    #[config(default = 4)]
    pub moe_experts: usize,
    /// Experts each token mixes in the MoE-LoRA baseline.
    #[config(default = 2)]
    pub moe_top_k: usize,
}

impl MoseConfig {
    /// The settings files saved before the router, gate and reuse settings
    /// existed were trained with: the key router, the softmax gate, no reuse
    /// of familiar tasks.
    pub fn legacy() -> Self {
        Self::new()
            .with_router(RouterKind::Key)
            .with_gate(GateKind::Softmax)
            .with_reuse_bias(-1.0)
            .with_settle_by_contribution(false)
            .with_reuse_familiar(false)
            .with_none_of_these(false)
            .with_background_texts(0)
    }

    /// Fresh sub-experts for a task that sees `old` earlier ones:
    /// `new_experts_per_task`, or enough to fill the gate's `top_k_experts`
    /// where the earlier ones are fewer (the first task).
    pub fn new_experts_for(&self, old: usize) -> usize {
        let fill = self.top_k_experts.saturating_sub(old);
        self.new_experts_per_task.max(fill)
    }

    /// Reads settings saved as JSON, filling any setting the file predates
    /// from [`legacy`](Self::legacy) (a file without a `router` predates them
    /// all), with no background for a file without `background_texts`, or
    /// from the defaults.
    ///
    /// # Errors
    /// When a setting is present but malformed.
    pub fn from_json(value: serde_json::Value) -> Result<Self, serde_json::Error> {
        let base = match value.get("router") {
            // Files saved before the base model's own text was modelled
            // routed without it, and keep routing so.
            Some(_) if value.get("background_texts").is_none() => {
                Self::new().with_background_texts(0)
            }
            Some(_) => Self::new(),
            None => Self::legacy(),
        };
        let mut merged = serde_json::to_value(base)?;
        if let (Some(merged), serde_json::Value::Object(saved)) = (merged.as_object_mut(), value) {
            merged.extend(saved);
        }
        serde_json::from_value(merged)
    }
}

/// Deserialises a [`MoseConfig`] with [`MoseConfig::from_json`], for the
/// files that hold one.
pub(crate) fn deserialize_config<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<MoseConfig, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    MoseConfig::from_json(value).map_err(serde::de::Error::custom)
}

/// A continual-learning method (docs/METHOD.md, "Baselines").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Mixtures of SubExperts with the task-key router.
    Mose,
    /// One LoRA fine-tuned task after task: the forgetting baseline.
    SeqLora,
    /// One private LoRA per task, chosen by the MoSE router (no reuse).
    LoraPerTask,
    /// A fixed pool of LoRA experts per site with a learned token router, top-k.
    MoeLora,
}

impl Method {
    /// Every method, MoSE first.
    pub const ALL: [Method; 4] = [
        Method::Mose,
        Method::SeqLora,
        Method::LoraPerTask,
        Method::MoeLora,
    ];

    /// The name used in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Method::Mose => "mose",
            Method::SeqLora => "seq-lora",
            Method::LoraPerTask => "lora-per-task",
            Method::MoeLora => "moe-lora",
        }
    }

    /// True for methods with one state per task and the task-key router.
    pub fn is_routed(self) -> bool {
        matches!(self, Method::Mose | Method::LoraPerTask)
    }

    /// The configuration this method runs with, derived from MoSE's so that
    /// every method adapts each site with the same rank a MoSE task uses
    /// there: a LoRA has rank `top_k_experts * rank`, and the scale
    /// `alpha / r` is the same for all.
    pub fn effective_config(self, mose: &MoseConfig) -> MoseConfig {
        let lora_rank = mose.top_k_experts * mose.rank;
        let scale = mose.alpha / mose.rank as f64;
        let with_rank = |config: MoseConfig, rank: usize| {
            config.with_rank(rank).with_alpha(scale * rank as f64)
        };
        // A plain LoRA: one path at weight 1, nothing reused.
        let lora = mose
            .clone()
            .with_gate(GateKind::Softmax)
            .with_reuse_familiar(false)
            .with_modulate(false);
        match self {
            Method::Mose => mose.clone(),
            Method::SeqLora => with_rank(lora, lora_rank),
            Method::LoraPerTask => with_rank(lora, lora_rank)
                .with_new_experts_per_task(1)
                .with_top_k_experts(1),
            Method::MoeLora => with_rank(lora, (lora_rank / mose.moe_experts.max(1)).max(1)),
        }
    }
}

/// Errors of the MoSE layer.
#[derive(Debug, thiserror::Error)]
pub enum MoseError {
    /// A setting is out of range for this model.
    #[error("MoSE setting {field} = {value} is invalid: {reason}")]
    InvalidConfig {
        /// The setting.
        field: &'static str,
        /// Its value.
        value: String,
        /// What is allowed.
        reason: String,
    },
    /// The device could not hand a tensor back.
    #[error("reading a tensor back from the device failed: {0}")]
    Read(String),
    /// The bytes are not a saved MoSE Lab state.
    #[error(
        "this file is not a saved MoSE Lab state ({reason}); choose a state file saved by MoSE Lab"
    )]
    NotAState {
        /// What was wrong.
        reason: String,
    },
    /// A state saved by a newer version of MoSE Lab.
    #[error(
        "this state has format version {found}, but this version of MoSE Lab reads version {expected}; update MoSE Lab to open it"
    )]
    UnsupportedVersion {
        /// The file's version.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
    /// A state that belongs to another base model.
    #[error(
        "this state was trained on a different base model ({reason}); load it with the base model it was trained on"
    )]
    WrongModel {
        /// Which dimension differs.
        reason: String,
    },
    /// A tensor is missing from the state.
    #[error("the state has no tensor {name}; the file is damaged, save it again")]
    MissingTensor {
        /// The tensor's name.
        name: String,
    },
    /// Bytes that are not the statistics of a base model's own text.
    #[error(
        "this file is not a base model's background statistics ({reason}); delete it, or write it again with `mose background --model <folder>`"
    )]
    NotABackground {
        /// What was wrong.
        reason: String,
    },
    /// A tensor of the wrong shape.
    #[error(
        "state tensor {name}: expected shape {expected:?}, found {found:?}; the file is damaged, save it again"
    )]
    WrongShape {
        /// The tensor's name.
        name: String,
        /// The shape the state's description implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
}

/// One adapted projection: where it is and its widths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteSpec {
    /// Decoder layer, 0-based.
    pub layer: usize,
    /// Which projection.
    pub site: Site,
    /// Input width.
    pub d_in: usize,
    /// Output width.
    pub d_out: usize,
}

impl SiteSpec {
    /// The shape of one sub-expert here.
    pub(crate) fn expert(&self, config: &MoseConfig) -> SubExpertConfig {
        SubExpertConfig {
            d_in: self.d_in,
            d_out: self.d_out,
            rank: config.rank,
            init_gain: config.init_gain,
        }
    }
}

/// What a method has learned so far over a sequence of tasks.
#[derive(Debug, Clone)]
pub struct Learner {
    method: Method,
    /// The configuration as given (MoSE's).
    base_config: MoseConfig,
    /// The configuration this method runs with ([`Method::effective_config`]).
    config: MoseConfig,
    sites: Vec<SiteSpec>,
    hidden: usize,
    query_layer: usize,
    /// Layer groups of the Gaussian router's feature.
    feature_groups: usize,
    seed: u64,
    state: LearnerState,
    /// The Gaussian router's statistics, one entry per learned task.
    identifier: TaskIdentifier,
}

#[derive(Debug, Clone)]
enum LearnerState {
    /// MoSE and LoRA per task: one frozen state per learned task.
    Tasks(Vec<LearnedTask>),
    /// Shared baselines: one adapter, and the tasks it has seen.
    Shared {
        lora: SharedLora,
        learned: Vec<String>,
        capacity: Vec<Capacity>,
    },
}

impl Learner {
    /// A learner that knows no task yet, for a base model of `model`.
    ///
    /// # Errors
    /// [`MoseError::InvalidConfig`] for settings this model cannot take.
    pub fn new(
        method: Method,
        config: MoseConfig,
        model: &LlamaConfig,
        seed: u64,
        device: &Device,
    ) -> Result<Self, MoseError> {
        let effective = method.effective_config(&config);
        let sites = validate(&effective, model)?;
        let query_layer = effective
            .query_layer
            .unwrap_or(model.num_hidden_layers.saturating_sub(1));
        let state = match method {
            Method::Mose | Method::LoraPerTask => LearnerState::Tasks(Vec::new()),
            Method::SeqLora | Method::MoeLora => {
                let experts = if method == Method::MoeLora {
                    effective.moe_experts
                } else {
                    1
                };
                LearnerState::Shared {
                    lora: SharedLora::init(&sites, &effective, experts, seed, device),
                    learned: Vec::new(),
                    capacity: Vec::new(),
                }
            }
        };
        let layers = model.num_hidden_layers.max(1);
        let feature_groups = (effective.route_feature_width / model.hidden_size).clamp(1, layers);
        let identifier =
            TaskIdentifier::new(feature_groups * model.hidden_size, effective.none_quantile);
        Ok(Self {
            method,
            base_config: config,
            config: effective,
            sites,
            hidden: model.hidden_size,
            query_layer,
            feature_groups,
            seed,
            state,
            identifier,
        })
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The configuration as given.
    pub fn mose_config(&self) -> &MoseConfig {
        &self.base_config
    }

    /// The configuration this method runs with.
    pub fn config(&self) -> &MoseConfig {
        &self.config
    }

    /// The adapted projections, layer by layer.
    pub fn sites(&self) -> &[SiteSpec] {
        &self.sites
    }

    /// The decoder layer whose output the query feature averages.
    pub fn query_layer(&self) -> usize {
        self.query_layer
    }

    /// The seed that drives every initialisation.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Names of the learned tasks, in the order they were learned.
    pub fn task_names(&self) -> Vec<&str> {
        match &self.state {
            LearnerState::Tasks(tasks) => tasks.iter().map(|t| t.name.as_str()).collect(),
            LearnerState::Shared { learned, .. } => learned.iter().map(String::as_str).collect(),
        }
    }

    /// How many tasks have been learned.
    pub fn tasks_learned(&self) -> usize {
        self.task_names().len()
    }

    /// Capacity after each learned task.
    pub fn capacity(&self) -> Vec<Capacity> {
        match &self.state {
            LearnerState::Tasks(tasks) => tasks.iter().map(|t| t.capacity).collect(),
            LearnerState::Shared { capacity, .. } => capacity.clone(),
        }
    }

    /// Layer groups of the Gaussian router's feature (its width is this
    /// times the hidden width).
    pub fn feature_groups(&self) -> usize {
        self.feature_groups
    }

    /// Width of the router's feature: the multi-layer feature for the
    /// Gaussian router, `q(x)` for the key router.
    pub fn feature_width(&self) -> usize {
        match self.config.router {
            RouterKind::Gaussian => self.feature_groups * self.hidden,
            RouterKind::Key => self.hidden,
        }
    }

    /// Whether the next task's run should read the base model's own texts
    /// for the router (`background_texts` of them, once, with "none of
    /// these" on the Gaussian router).
    pub fn needs_background(&self) -> bool {
        self.method.is_routed()
            && self.config.router == RouterKind::Gaussian
            && self.config.none_of_these
            && self.config.background_texts > 0
            && self.identifier.background().is_none()
    }

    /// What the statistics of the base model's own text depend on under
    /// this learner's settings (with the weights' fingerprint).
    pub fn background_recipe(&self) -> BackgroundRecipe {
        BackgroundRecipe::of(&self.config, self.feature_width())
    }

    /// Takes `background` as the router's model of the base model's own
    /// text, when the learner still [needs one](Self::needs_background) and
    /// `background` was made from the weights `fingerprint` names with this
    /// learner's recipe; says whether it did. Otherwise the learner writes
    /// the texts itself with its next task.
    pub fn adopt_background(&mut self, background: &Background, fingerprint: &str) -> bool {
        let fits = self.needs_background()
            && background.fits(fingerprint, &self.config)
            && background.recipe().feature_width == self.feature_width();
        if fits {
            self.identifier.set_background(background.stats.clone());
        }
        fits
    }

    /// The router's decision for one feature ([`feature_width`](Self::feature_width)
    /// values; a sample's windows pooled). Shared baselines have no router
    /// and return an empty route.
    pub fn route(&self, feature: &[f32]) -> Route {
        let LearnerState::Tasks(tasks) = &self.state else {
            return Route::from_scores(Vec::new(), 0, 1.0);
        };
        match self.config.router {
            RouterKind::Gaussian => {
                let Some(mut found) = self.identifier.identify(feature) else {
                    return Route::from_scores(Vec::new(), 0, 1.0);
                };
                let thresholds: Vec<f64> = match self.config.none_of_these {
                    true => self.identifier.thresholds().to_vec(),
                    false => {
                        found.background = None;
                        vec![f64::INFINITY; tasks.len()]
                    }
                };
                Route::from_identification(&found, &thresholds, self.config.top_k_tasks)
            }
            RouterKind::Key => {
                let query = unit(feature);
                let scores = tasks
                    .iter()
                    .map(|t| t.unit_key.iter().zip(&query).map(|(k, q)| k * q).sum())
                    .collect();
                Route::from_scores(
                    scores,
                    self.config.top_k_tasks,
                    self.config.route_temperature,
                )
            }
        }
    }

    /// How a new task's training features read to the router: the learned
    /// task that would take the largest share of its whole examples
    /// ([`TaskIdentifier::confusion_with`]: `features` are the rows the
    /// task's statistics will hold, `[n, width]`, the first `judged` of them
    /// whole examples). `None` before any task is learned, and for methods
    /// and routers without the Gaussian router's statistics.
    pub(crate) async fn likeness(
        &self,
        features: &[f32],
        judged: usize,
        device: &Device,
    ) -> Result<Option<Likeness>, MoseError> {
        if !(self.method == Method::Mose
            && self.config.router == RouterKind::Gaussian
            && self.tasks_learned() > 0)
        {
            return Ok(None);
        }
        let shares = self
            .identifier
            .confusion_with(features, judged, device)
            .await?;
        Ok(shares
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(task, &share)| Likeness { task, share }))
    }

    /// The earlier task a new task of `likeness` builds on: the one the
    /// router cannot tell it from (a share of at least `familiar_share`),
    /// when reuse of familiar tasks is on.
    pub(crate) fn familiar_task(&self, likeness: Option<Likeness>) -> Option<usize> {
        likeness
            .filter(|l| self.config.reuse_familiar && l.share >= self.config.familiar_share)
            .map(|l| l.task)
    }

    /// The weight `route` gives each sub-expert at each adapted site:
    /// `weights[s][e] = sum_t pi_t w_t[e]` over the global sub-experts `e`
    /// (in the order tasks added them), the mixture [`mixture`](Self::mixture)
    /// builds. Empty for the shared baselines.
    pub fn expert_weights(&self, route: &Route) -> Vec<Vec<f32>> {
        let LearnerState::Tasks(tasks) = &self.state else {
            return Vec::new();
        };
        let experts = experts_of(tasks).len();
        (0..self.sites.len())
            .map(|s| {
                let mut w = vec![0.0f32; experts];
                for &(t, pi) in &route.chosen {
                    for (pos, &id) in tasks[t].visible.iter().enumerate() {
                        w[id] += pi * tasks[t].weights[s][pos];
                    }
                }
                w
            })
            .collect()
    }

    /// For each global sub-expert, the task that added it.
    pub fn expert_owners(&self) -> Vec<usize> {
        let LearnerState::Tasks(tasks) = &self.state else {
            return Vec::new();
        };
        tasks
            .iter()
            .enumerate()
            .flat_map(|(t, task)| std::iter::repeat_n(t, task.params.experts.len()))
            .collect()
    }

    /// The oracle's decision: the true task, if learned.
    pub fn oracle_route(&self, task: usize) -> Route {
        Route::oracle(task, self.tasks_learned())
    }

    /// Unit keys of the learned tasks, `[tasks, hidden]`, for the push loss.
    pub(crate) fn unit_keys(&self, device: &Device) -> Option<Tensor<2>> {
        let LearnerState::Tasks(tasks) = &self.state else {
            return None;
        };
        if tasks.is_empty() {
            return None;
        }
        let values: Vec<f32> = tasks.iter().flat_map(|t| t.unit_key.clone()).collect();
        Some(Tensor::from_data(
            TensorData::new(values, [tasks.len(), self.hidden]),
            device,
        ))
    }

    /// The adapter one sequence routed as `route` runs with, beside the
    /// frozen projections ([`Llama::forward_adapted`](crate::model::Llama::forward_adapted)),
    /// or `None` where no task is chosen and the base model answers.
    pub fn adapter(&self, route: &Route, device: &Device) -> Option<impl Adapter + use<>> {
        self.mixture(std::slice::from_ref(route), device)
    }

    /// The adapter for sequences routed as `routes` (one per batch row), or
    /// `None` where nothing applies and the base model is the answer.
    pub(crate) fn mixture(&self, routes: &[Route], device: &Device) -> Option<Mixture> {
        match &self.state {
            LearnerState::Shared { lora, .. } => {
                Some(lora.mixture(&self.sites, &self.config, self.config.moe_top_k))
            }
            LearnerState::Tasks(tasks) => self.task_mixture(tasks, routes, device),
        }
    }

    fn task_mixture(
        &self,
        tasks: &[LearnedTask],
        routes: &[Route],
        device: &Device,
    ) -> Option<Mixture> {
        let batch = routes.len();
        let experts = experts_of(tasks);
        // w = sum_t pi_t w_t over the global sub-experts, per sequence and site.
        let per_row: Vec<Vec<Vec<f32>>> = routes.iter().map(|r| self.expert_weights(r)).collect();
        let mut mixes = Vec::with_capacity(self.sites.len());
        for (s, spec) in self.sites.iter().enumerate() {
            let w: Vec<f32> = per_row
                .iter()
                .flat_map(|row| row[s].iter().copied())
                .collect();
            // Only the sub-experts some sequence uses enter the pool.
            let used: Vec<usize> = (0..experts.len())
                .filter(|&id| (0..batch).any(|b| w[b * experts.len() + id] != 0.0))
                .collect();
            if used.is_empty() {
                continue;
            }
            let pool_experts: Vec<&SubExpert> = used.iter().map(|&id| &experts[id][s]).collect();
            let weights: Vec<f32> = (0..batch)
                .flat_map(|b| used.iter().map(move |&id| (b, id)))
                .map(|(b, id)| w[b * experts.len() + id])
                .collect();
            let weights =
                Tensor::from_data(TensorData::new(weights, [batch, 1, used.len()]), device);
            let modulation = self.config.modulate.then(|| {
                // m = sum_t pi_t m_t: [batch, tasks] x [tasks, d_out].
                let mut pi = vec![0.0f32; batch * tasks.len()];
                for (b, route) in routes.iter().enumerate() {
                    for &(t, p) in &route.chosen {
                        pi[b * tasks.len() + t] += p;
                    }
                }
                let pi = Tensor::<2>::from_data(TensorData::new(pi, [batch, tasks.len()]), device);
                let m = Tensor::stack::<2>(
                    tasks.iter().map(|t| t.params.modulation[s].val()).collect(),
                    0,
                ); // [tasks, d_out]
                pi.matmul(m).reshape([batch, 1, spec.d_out])
            });
            mixes.push((
                (spec.layer, spec.site),
                SiteMix {
                    pool: SubExpertPool::new(&pool_experts, self.config.rank, self.config.alpha),
                    weights: ExpertWeights::Sequence(weights),
                    modulation,
                },
            ));
        }
        if mixes.is_empty() {
            return None;
        }
        let (sites, mixes) = mixes.into_iter().unzip();
        Some(Mixture::new(sites, mixes))
    }

    /// The adapter while task `params` is being learned: every sub-expert
    /// visible to it (frozen earlier ones, then its own), weighted by its gate,
    /// and its modulation.
    pub(crate) fn training_mixture(
        &self,
        params: &TaskParams,
        settled: Option<&[Vec<usize>]>,
    ) -> Mixture {
        let old = self.visible_to_new_task();
        let experts = match &self.state {
            LearnerState::Tasks(tasks) => experts_of(tasks),
            LearnerState::Shared { .. } => Vec::new(),
        };
        let mixes = self
            .sites
            .iter()
            .enumerate()
            .map(|(s, spec)| {
                let pool_experts: Vec<&SubExpert> = old
                    .iter()
                    .map(|&id| &experts[id][s])
                    .chain(params.experts.iter().map(|e| &e[s]))
                    .collect();
                let settled = settled.map(|c| c[s].as_slice());
                let w = params.gate_weights(s, settled, &self.config);
                let [n] = w.dims();
                SiteMix {
                    pool: SubExpertPool::new(&pool_experts, self.config.rank, self.config.alpha),
                    weights: ExpertWeights::Sequence(w.reshape([1, 1, n])),
                    modulation: params
                        .modulation
                        .get(s)
                        .map(|m| m.val().reshape([1, 1, spec.d_out])),
                }
            })
            .collect();
        Mixture::new(
            self.sites.iter().map(|s| (s.layer, s.site)).collect(),
            mixes,
        )
    }

    /// Global ids of the earlier sub-experts a new task may reuse.
    pub(crate) fn visible_to_new_task(&self) -> Vec<usize> {
        match &self.state {
            LearnerState::Tasks(tasks) if self.method == Method::Mose => {
                (0..experts_of(tasks).len()).collect()
            }
            _ => Vec::new(),
        }
    }

    /// How the next task starts: with fresh sub-experts beside the earlier
    /// ones, or, when it is `familiar` (an earlier task's kind of text), from
    /// that task's gate weights and modulation with no new sub-expert.
    pub(crate) async fn task_start(&self, familiar: Option<usize>) -> Result<TaskStart, MoseError> {
        let old = self.visible_to_new_task();
        let fresh = TaskStart {
            old: old.len(),
            new_experts: self.config.new_experts_for(old.len()),
            logits: None,
            modulation: None,
        };
        let (Some(f), LearnerState::Tasks(tasks)) = (familiar, &self.state) else {
            return Ok(fresh);
        };
        if self.method != Method::Mose || f >= tasks.len() {
            return Ok(fresh);
        }
        let task = &tasks[f];
        let logits = (0..self.sites.len())
            .map(|s| {
                let mut logits = vec![self.config.reuse_bias as f32; old.len()];
                for (pos, &id) in task.visible.iter().enumerate() {
                    let w = task.weights[s][pos];
                    if w > 0.0 {
                        logits[id] = logit_for(w, &self.config);
                    }
                }
                logits
            })
            .collect();
        let mut modulation = Vec::with_capacity(task.params.modulation.len());
        for m in &task.params.modulation {
            modulation.push(read_vec(m.val()).await?);
        }
        Ok(TaskStart {
            old: old.len(),
            new_experts: 0,
            logits: Some(logits),
            modulation: (!modulation.is_empty()).then_some(modulation),
        })
    }

    /// A fresh state for the next task (Algorithm 1, steps 1 and 2).
    pub(crate) fn new_task(&self, key: Vec<f32>, start: TaskStart, device: &Device) -> TaskParams {
        let seed =
            self.seed ^ (self.tasks_learned() as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
        TaskParams::init(&self.sites, &self.config, start, key, seed, device)
    }

    /// Each site's settled set for `params`: the `top_k_experts` sub-experts
    /// with the largest gate logits, or, with `settle_by_contribution`, the
    /// largest contributions `w_e |B_e A_e|_F` (the gate weight times the
    /// size of the change the sub-expert makes), so that a large gate on a
    /// sub-expert that changes nothing does not win a place.
    pub(crate) async fn settle_sets(
        &self,
        params: &TaskParams,
    ) -> Result<Vec<Vec<usize>>, MoseError> {
        let top_k = self.config.top_k_experts;
        let mut logits = Vec::with_capacity(params.gates.len());
        for gate in &params.gates {
            logits.push(read_vec(gate.val()).await?);
        }
        if !self.config.settle_by_contribution {
            return Ok(logits.iter().map(|l| top_positions(l, top_k)).collect());
        }
        let old = self.visible_to_new_task();
        let experts = match &self.state {
            LearnerState::Tasks(tasks) => experts_of(tasks),
            LearnerState::Shared { .. } => Vec::new(),
        };
        let norms: Vec<Tensor<1>> = (0..self.sites.len())
            .flat_map(|s| {
                old.iter()
                    .map(|&id| &experts[id][s])
                    .chain(params.experts.iter().map(|e| &e[s]))
                    .map(SubExpert::delta_norm_sq)
                    .collect::<Vec<_>>()
            })
            .collect();
        let norms = read_vec(Tensor::cat(norms, 0)).await?;
        let visible = old.len() + params.experts.len();
        Ok(logits
            .iter()
            .zip(norms.chunks(visible.max(1)))
            .map(|(logits, norms)| {
                let weights = gate_weights_host(logits, None, &self.config);
                let contribution: Vec<f32> = weights
                    .iter()
                    .zip(norms)
                    .map(|(w, n)| w * n.max(0.0).sqrt())
                    .collect();
                top_positions(&contribution, top_k)
            })
            .collect())
    }

    /// Freezes a learned task into the state (Algorithm 1, step 5).
    ///
    /// `features` are the task's training features for the Gaussian router
    /// (`[n, feature_width]`), and `background` the statistics of the base
    /// model's own texts when [`needs_background`](Self::needs_background)
    /// asked for them; the key router ignores both.
    pub(crate) async fn add_task(
        &mut self,
        name: String,
        params: TaskParams,
        chosen: Vec<Vec<usize>>,
        features: &[f32],
        background: Option<TaskStats>,
    ) -> Result<Capacity, MoseError> {
        let old = self.visible_to_new_task();
        let LearnerState::Tasks(tasks) = &mut self.state else {
            panic!("add_task is for methods with one state per task");
        };
        let before = (
            experts_of(tasks).len(),
            tasks.iter().map(|t| t.capacity.trainable_params).sum(),
        );
        let device = params.key.val().device();
        let task = LearnedTask::consolidate(
            name,
            params.valid(),
            old,
            chosen,
            before.0,
            before,
            &self.config,
        )
        .await?;
        let capacity = task.capacity;
        tasks.push(task);
        if self.config.router == RouterKind::Gaussian {
            if let Some(background) = background {
                self.identifier.set_background(background);
            }
            self.identifier.add_task(features, &device).await?;
        }
        Ok(capacity)
    }

    /// The shared adapter of seq-lora and moe-lora.
    pub(crate) fn shared(&self) -> Option<&SharedLora> {
        match &self.state {
            LearnerState::Shared { lora, .. } => Some(lora),
            LearnerState::Tasks(_) => None,
        }
    }

    /// Replaces the shared adapter after it learned task `name`.
    pub(crate) fn set_shared(&mut self, name: String, trained: SharedLora) -> Capacity {
        let LearnerState::Shared {
            lora,
            learned,
            capacity,
        } = &mut self.state
        else {
            panic!("set_shared is for the shared baselines");
        };
        *lora = trained.valid();
        learned.push(name);
        let values = lora.num_params();
        let experts = lora.experts.len();
        let entry = Capacity {
            experts_total: experts,
            experts_new: if capacity.is_empty() { experts } else { 0 },
            experts_reused: if capacity.is_empty() { 0 } else { experts },
            trainable_params: values,
            total_params: values,
        };
        capacity.push(entry);
        entry
    }
}

/// `count` fresh sub-experts at every site: `experts[j][s]`, each drawn from
/// its own seed so that no two share values.
fn fresh_experts(
    sites: &[SiteSpec],
    config: &MoseConfig,
    count: usize,
    seed: u64,
    device: &Device,
) -> Vec<Vec<SubExpert>> {
    (0..count)
        .map(|j| {
            sites
                .iter()
                .enumerate()
                .map(|(s, spec)| {
                    let expert_seed =
                        seed ^ ((j * sites.len() + s) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    spec.expert(config).init(expert_seed, device)
                })
                .collect()
        })
        .collect()
}

/// Every kept sub-expert in global order: task by task, own experts in order.
fn experts_of(tasks: &[LearnedTask]) -> Vec<&Vec<SubExpert>> {
    tasks.iter().flat_map(|t| t.params.experts.iter()).collect()
}

/// Checks the settings against the model and lists the adapted sites.
fn validate(config: &MoseConfig, model: &LlamaConfig) -> Result<Vec<SiteSpec>, MoseError> {
    let invalid = |field, value: String, reason: String| MoseError::InvalidConfig {
        field,
        value,
        reason,
    };
    let n_layers = model.num_hidden_layers;
    let layers: Vec<usize> = config
        .layers
        .clone()
        .unwrap_or_else(|| (0..n_layers).collect());
    if let Some(&bad) = layers.iter().find(|&&l| l >= n_layers) {
        return Err(invalid(
            "layers",
            bad.to_string(),
            format!(
                "the model has {n_layers} layers (0 to {})",
                n_layers.saturating_sub(1)
            ),
        ));
    }
    if layers.is_empty() || config.sites.is_empty() {
        return Err(invalid(
            "sites",
            format!("{:?} in layers {layers:?}", config.sites),
            "name at least one projection in one layer".into(),
        ));
    }
    if let Some(q) = config.query_layer
        && q >= n_layers
    {
        return Err(invalid(
            "query_layer",
            q.to_string(),
            format!("the model has {n_layers} layers"),
        ));
    }
    let positive = [
        ("rank", config.rank),
        ("new_experts_per_task", config.new_experts_per_task),
        ("top_k_experts", config.top_k_experts),
        ("top_k_tasks", config.top_k_tasks),
        ("key_init_batches", config.key_init_batches),
        ("moe_experts", config.moe_experts),
        ("moe_top_k", config.moe_top_k),
        ("route_feature_width", config.route_feature_width),
        ("route_sample_cap", config.route_sample_cap),
        ("route_batch_size", config.route_batch_size),
    ];
    if let Some((field, value)) = positive.iter().find(|(_, v)| *v == 0) {
        return Err(invalid(
            field,
            value.to_string(),
            "must be at least 1".into(),
        ));
    }
    if !(0.0..=1.0).contains(&config.explore_fraction) {
        return Err(invalid(
            "explore_fraction",
            config.explore_fraction.to_string(),
            "must be between 0 and 1".into(),
        ));
    }
    for (field, value) in [
        ("none_quantile", config.none_quantile),
        ("familiar_share", config.familiar_share),
    ] {
        if !(value > 0.0 && value <= 1.0) {
            return Err(invalid(
                field,
                value.to_string(),
                "must be above 0 and at most 1".into(),
            ));
        }
    }
    if config.background_texts > 0 {
        if config.background_tokens == 0 {
            return Err(invalid(
                "background_tokens",
                "0".into(),
                "must be at least 1 when background_texts is above 0".into(),
            ));
        }
        if !(config.background_temperature > 0.0 && config.background_temperature.is_finite()) {
            return Err(invalid(
                "background_temperature",
                config.background_temperature.to_string(),
                "must be above 0".into(),
            ));
        }
    }
    if config.route_temperature <= 0.0 || !config.route_temperature.is_finite() {
        return Err(invalid(
            "route_temperature",
            config.route_temperature.to_string(),
            "must be above 0".into(),
        ));
    }
    let mut sites = Vec::new();
    for &layer in &layers {
        for &site in &config.sites {
            let (d_in, d_out) = site.dims(model);
            sites.push(SiteSpec {
                layer,
                site,
                d_in,
                d_out,
            });
        }
    }
    Ok(sites)
}

#[cfg(test)]
mod tests {
    use burn::tensor::Int;

    use super::*;

    fn tokens(device: &Device) -> Tensor<2, Int> {
        Tensor::from_data(
            TensorData::new(vec![1i64, 5, 9, 3, 7, 2, 8, 4], [2, 4]),
            device,
        )
    }

    #[test]
    fn a_fresh_task_state_leaves_the_base_model_unchanged() {
        // B = 0 and m = 0: every adapted projection returns W x exactly.
        let device = Device::flex();
        let model = LlamaConfig::new(16, 8, 16, 2, 2, 1).init(&device);
        let base = model.forward(tokens(&device));
        for method in Method::ALL {
            let learner =
                Learner::new(method, MoseConfig::new(), model.config(), 5, &device).unwrap();
            let mixture = match learner.shared() {
                Some(lora) => lora.mixture(
                    learner.sites(),
                    learner.config(),
                    learner.config().moe_top_k,
                ),
                None => {
                    let start = pollster::block_on(learner.task_start(None)).unwrap();
                    learner.training_mixture(&learner.new_task(vec![1.0; 8], start, &device), None)
                }
            };
            let adapted = model.forward_adapted(tokens(&device), &mixture);
            assert_eq!(
                adapted.into_data(),
                base.clone().into_data(),
                "{}: a fresh adapter changed the output",
                method.name()
            );
        }
    }

    #[test]
    fn the_first_task_fills_its_top_k_and_later_ones_add_the_set_number() {
        let config = MoseConfig::new()
            .with_new_experts_per_task(1)
            .with_top_k_experts(2);
        let fresh: Vec<usize> = [0, 1, 2, 8].map(|old| config.new_experts_for(old)).to_vec();
        assert_eq!(fresh, [2, 1, 1, 1]);
        let config = config.with_new_experts_per_task(3);
        assert_eq!(config.new_experts_for(0), 3);
        assert_eq!(config.new_experts_for(8), 3);
    }

    #[test]
    fn every_method_trains_the_same_budget_per_task() {
        // MoSE: top-2 experts of rank 4; LoRA: rank 8; MoE-LoRA: 4 experts of rank 2.
        let mose = MoseConfig::new();
        let rank_budget = |m: Method| {
            let c = m.effective_config(&mose);
            let experts = match m {
                Method::Mose => c.top_k_experts,
                Method::MoeLora => c.moe_experts,
                _ => 1,
            };
            (experts * c.rank, c.alpha / c.rank as f64)
        };
        for method in Method::ALL {
            assert_eq!(rank_budget(method), (8, 2.0), "{}", method.name());
        }
    }

    #[test]
    fn settings_saved_before_the_router_settings_read_as_legacy() {
        // A file from before the Gaussian router: its rank, nothing newer.
        let old = serde_json::json!({ "rank": 2 });
        let mut saved = serde_json::to_value(MoseConfig::legacy()).unwrap();
        saved
            .as_object_mut()
            .unwrap()
            .retain(|k, _| !["router", "gate"].contains(&k.as_str()));
        saved["rank"] = 2.into();
        for value in [old, saved] {
            let config = MoseConfig::from_json(value).unwrap();
            assert_eq!(config, MoseConfig::legacy().with_rank(2));
        }
        // A file from before the base model's own text routes without it.
        let before = serde_json::json!({ "router": "gaussian", "gate": "norga" });
        let config = MoseConfig::from_json(before).unwrap();
        let expected = MoseConfig::new().with_gate(GateKind::Norga);
        assert_eq!(config, expected.clone().with_background_texts(0));
        // A file of this version keeps what it says, defaults for the rest.
        let new =
            serde_json::json!({ "router": "gaussian", "gate": "norga", "background_texts": 64 });
        let config = MoseConfig::from_json(new).unwrap();
        assert_eq!(config, expected.with_background_texts(64));
        assert!(MoseConfig::from_json(serde_json::json!({ "router": "lda" })).is_err());
    }

    #[test]
    fn settings_the_model_cannot_take_are_refused() {
        let device = Device::flex();
        let model = LlamaConfig::new(16, 8, 16, 2, 2, 1);
        let refused = |config: MoseConfig| {
            Learner::new(Method::Mose, config, &model, 0, &device).unwrap_err()
        };
        assert!(matches!(
            refused(MoseConfig::new().with_layers(Some(vec![2]))),
            MoseError::InvalidConfig {
                field: "layers",
                ..
            }
        ));
        assert!(matches!(
            refused(MoseConfig::new().with_rank(0)),
            MoseError::InvalidConfig { field: "rank", .. }
        ));
        assert!(matches!(
            refused(MoseConfig::new().with_query_layer(Some(5))),
            MoseError::InvalidConfig {
                field: "query_layer",
                ..
            }
        ));
        assert!(matches!(
            refused(MoseConfig::new().with_sites(vec![])),
            MoseError::InvalidConfig { field: "sites", .. }
        ));
    }
}
