//! Saving and loading a [`Learner`] (docs/ARCHITECTURE.md, "Files that cross
//! the boundary"): one safetensors file whose metadata holds a versioned JSON
//! description (method, configuration, seed, the base model's widths, every
//! task's routing bookkeeping) and whose tensors are the task states or the
//! shared adapter, named by task, expert, layer and projection, and the
//! Gaussian router's statistics (`router.means`, `router.scatter`). Values
//! are stored as f32 (the router keeps its statistics at f32 precision), so a
//! load gives back exactly what was saved.
//!
//! Version 1 files (before the Gaussian router) still open: their settings
//! are completed with [`MoseConfig::legacy`], so they route with their keys
//! exactly as they did.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use super::lda::{TaskIdentifier, TaskStats};
use super::pool::SubExpert;
use super::task::LearnedTask;
use super::{
    Capacity, Learner, LearnerState, Method, MoseConfig, MoseError, RouterKind, SiteSpec,
    TaskParams, gate_weights_host, read_vec, unit,
};
use crate::model::LlamaConfig;
use crate::saved::{self, ReadError, TensorError};

/// The state format this build writes and reads.
pub const STATE_FORMAT_VERSION: u32 = 2;

/// The oldest state format this build still reads.
const OLDEST_STATE_FORMAT: u32 = 1;

/// The metadata key of the JSON description.
const STATE_KEY: &str = "mose_lab_state";

/// The JSON half of a saved state.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format_version: u32,
    method: Method,
    #[serde(deserialize_with = "super::deserialize_config")]
    config: MoseConfig,
    seed: u64,
    model: ModelShape,
    tasks: Vec<TaskHeader>,
    shared: Option<SharedHeader>,
    /// The Gaussian router's counts and thresholds, per task.
    #[serde(default)]
    router: Option<RouterHeader>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RouterHeader {
    width: usize,
    counts: Vec<f64>,
    ranges: Vec<f64>,
    /// How many features the base model's own texts gave, when the router
    /// models them (`router.background.mean` and `.scatter` hold the rest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    background_count: Option<f64>,
}

/// The widths of the base model a state fits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ModelShape {
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: usize,
    head_dim: usize,
    intermediate_size: usize,
}

impl ModelShape {
    fn of(config: &LlamaConfig) -> Self {
        Self {
            hidden_size: config.hidden_size,
            num_hidden_layers: config.num_hidden_layers,
            num_attention_heads: config.num_attention_heads,
            num_key_value_heads: config.kv_heads(),
            head_dim: config.head_width(),
            intermediate_size: config.intermediate_size,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct TaskHeader {
    name: String,
    experts: usize,
    visible: Vec<usize>,
    chosen: Vec<Vec<usize>>,
    capacity: Capacity,
}

#[derive(Debug, Serialize, Deserialize)]
struct SharedHeader {
    learned: Vec<String>,
    capacity: Vec<Capacity>,
    experts: usize,
}

/// `layers.{layer}.{projection}`, the name of a site inside a state.
fn site_name(spec: &SiteSpec) -> String {
    format!("layers.{}.{}", spec.layer, spec.site.hf_name())
}

/// A tensor of the file: name, shape, values.
type Entry = (String, Vec<usize>, Vec<f32>);

async fn entry<const D: usize>(name: String, tensor: Tensor<D>) -> Result<Entry, MoseError> {
    let shape = tensor.dims().to_vec();
    Ok((name, shape, read_vec(tensor).await?))
}

/// Every expert's pair at site `s`, as `{prefix}.experts.{j}.{site}.a` and `.b`.
async fn expert_entries(
    prefix: &str,
    experts: &[Vec<SubExpert>],
    s: usize,
    site: &str,
    out: &mut Vec<Entry>,
) -> Result<(), MoseError> {
    for (j, expert) in experts.iter().enumerate() {
        let e = &expert[s];
        out.push(entry(format!("{prefix}.experts.{j}.{site}.a"), e.a.val()).await?);
        out.push(entry(format!("{prefix}.experts.{j}.{site}.b"), e.b.val()).await?);
    }
    Ok(())
}

impl Learner {
    /// The whole learned state as one file.
    pub async fn to_bytes(&self, model: &LlamaConfig) -> Result<Vec<u8>, MoseError> {
        let mut tensors: Vec<Entry> = Vec::new();
        let (tasks, shared) = match &self.state {
            LearnerState::Tasks(tasks) => {
                let mut headers = Vec::with_capacity(tasks.len());
                for (t, task) in tasks.iter().enumerate() {
                    let p = &task.params;
                    tensors.push(entry(format!("tasks.{t}.key"), p.key.val()).await?);
                    for (s, spec) in self.sites.iter().enumerate() {
                        let site = site_name(spec);
                        let prefix = format!("tasks.{t}");
                        expert_entries(&prefix, &p.experts, s, &site, &mut tensors).await?;
                        let gates = p.gates[s].val();
                        tensors.push(entry(format!("{prefix}.gates.{site}"), gates).await?);
                        if let Some(m) = p.modulation.get(s) {
                            let name = format!("{prefix}.modulation.{site}");
                            tensors.push(entry(name, m.val()).await?);
                        }
                    }
                    headers.push(TaskHeader {
                        name: task.name.clone(),
                        experts: p.experts.len(),
                        visible: task.visible.clone(),
                        chosen: task.chosen.clone(),
                        capacity: task.capacity,
                    });
                }
                (headers, None)
            }
            LearnerState::Shared {
                lora,
                learned,
                capacity,
            } => {
                for (s, spec) in self.sites.iter().enumerate() {
                    let site = site_name(spec);
                    expert_entries("shared", &lora.experts, s, &site, &mut tensors).await?;
                    if let Some(router) = lora.routers.get(s) {
                        tensors.push(entry(format!("shared.routers.{site}"), router.val()).await?);
                    }
                }
                let header = SharedHeader {
                    learned: learned.clone(),
                    capacity: capacity.clone(),
                    experts: lora.experts.len(),
                };
                (Vec::new(), Some(header))
            }
        };
        let router = match (&self.state, self.config.router) {
            (LearnerState::Tasks(tasks), RouterKind::Gaussian) if !tasks.is_empty() => {
                let id = &self.identifier;
                let (width, stats) = (id.dim(), id.tasks());
                let means = stats.iter().flat_map(|t| t.mean.iter().map(|&m| m as f32));
                tensors.push((
                    "router.means".into(),
                    vec![stats.len(), width],
                    means.collect(),
                ));
                for (t, task) in stats.iter().enumerate() {
                    let scatter = task.scatter.iter().map(|&v| v as f32).collect();
                    tensors.push((format!("router.scatter.{t}"), vec![width, width], scatter));
                }
                if let Some(background) = id.background() {
                    let mean = background.mean.iter().map(|&m| m as f32).collect();
                    tensors.push(("router.background.mean".into(), vec![width], mean));
                    let scatter = background.scatter.iter().map(|&v| v as f32).collect();
                    tensors.push((
                        "router.background.scatter".into(),
                        vec![width, width],
                        scatter,
                    ));
                }
                Some(RouterHeader {
                    width,
                    counts: stats.iter().map(|t| t.count).collect(),
                    ranges: stats.iter().map(|t| t.range).collect(),
                    background_count: id.background().map(|b| b.count),
                })
            }
            _ => None,
        };
        let header = Header {
            format_version: STATE_FORMAT_VERSION,
            method: self.method,
            config: self.base_config.clone(),
            seed: self.seed,
            model: ModelShape::of(model),
            tasks,
            shared,
            router,
        };
        saved::write(&tensors, STATE_KEY, &header).map_err(|reason| MoseError::NotAState { reason })
    }

    /// A state saved by [`to_bytes`](Self::to_bytes), for the base model `model`.
    ///
    /// # Errors
    /// [`MoseError::NotAState`] for anything but a saved state,
    /// [`MoseError::UnsupportedVersion`] for a newer format,
    /// [`MoseError::WrongModel`] for a state of another base model,
    /// [`MoseError::MissingTensor`] and [`MoseError::WrongShape`] for a damaged one.
    pub fn from_bytes(
        bytes: &[u8],
        model: &LlamaConfig,
        device: &Device,
    ) -> Result<Self, MoseError> {
        let not_a_state = |reason: String| MoseError::NotAState { reason };
        let header: Header =
            saved::read_description(bytes, STATE_KEY, OLDEST_STATE_FORMAT..=STATE_FORMAT_VERSION)
                .map_err(|e| match e {
                ReadError::NotSafetensors(reason) | ReadError::Json(reason) => not_a_state(reason),
                ReadError::NoDescription => not_a_state("it has no MoSE Lab description".into()),
                ReadError::Version(found) => MoseError::UnsupportedVersion {
                    found: found.unwrap_or(0) as u32,
                    expected: STATE_FORMAT_VERSION,
                },
            })?;
        let expected = ModelShape::of(model);
        if header.model != expected {
            return Err(MoseError::WrongModel {
                reason: format!("saved for {:?}, loading into {:?}", header.model, expected),
            });
        }
        let file = SafeTensors::deserialize(bytes).map_err(|e| not_a_state(e.to_string()))?;
        // Values on the host first: a state is read without any device round trip.
        let host = |name: String, shape: Vec<usize>| -> Result<Vec<f32>, MoseError> {
            saved::f32_tensor(&file, &name, &shape).map_err(|e| match e {
                TensorError::Missing => MoseError::MissingTensor { name },
                TensorError::Mismatch(found) => MoseError::WrongShape {
                    name,
                    expected: shape,
                    found,
                },
            })
        };
        let vector = |values: Vec<f32>| -> Tensor<1> {
            let n = values.len();
            Tensor::from_data(TensorData::new(values, [n]), device)
        };
        let tensor = |name: String, shape: Vec<usize>| -> Result<Tensor<1>, MoseError> {
            Ok(vector(host(name, shape)?))
        };
        let matrix =
            |name: String, rows: usize, cols: usize| -> Result<Param<Tensor<2>>, MoseError> {
                Ok(Param::from_tensor(
                    tensor(name, vec![rows, cols])?.reshape([rows, cols]),
                ))
            };
        let mut learner = Learner::new(header.method, header.config, model, header.seed, device)?;
        let rank = learner.config.rank;
        let sites = learner.sites.clone();
        let expert = |prefix: &str, spec: &SiteSpec| -> Result<SubExpert, MoseError> {
            Ok(SubExpert {
                a: matrix(format!("{prefix}.{}.a", site_name(spec)), spec.d_in, rank)?,
                b: matrix(format!("{prefix}.{}.b", site_name(spec)), rank, spec.d_out)?,
            })
        };
        match &mut learner.state {
            LearnerState::Tasks(tasks) => {
                let mut experts_before = 0;
                for (t, th) in header.tasks.into_iter().enumerate() {
                    let bad = |reason: String| not_a_state(format!("task {}: {reason}", th.name));
                    if th.chosen.len() != sites.len()
                        || th.visible.len() > experts_before + th.experts
                    {
                        return Err(bad("its routing bookkeeping does not fit its sites".into()));
                    }
                    if th
                        .visible
                        .iter()
                        .any(|&id| id >= experts_before + th.experts)
                        || th.chosen.iter().flatten().any(|&p| p >= th.visible.len())
                    {
                        return Err(bad("it names sub-experts that do not exist".into()));
                    }
                    let experts = (0..th.experts)
                        .map(|j| {
                            sites
                                .iter()
                                .map(|spec| expert(&format!("tasks.{t}.experts.{j}"), spec))
                                .collect()
                        })
                        .collect::<Result<Vec<Vec<_>>, _>>()?;
                    let mut gates = Vec::with_capacity(sites.len());
                    let mut weights = Vec::with_capacity(sites.len());
                    let mut modulation = Vec::new();
                    for (s, spec) in sites.iter().enumerate() {
                        let logits = host(
                            format!("tasks.{t}.gates.{}", site_name(spec)),
                            vec![th.visible.len()],
                        )?;
                        weights.push(gate_weights_host(
                            &logits,
                            Some(&th.chosen[s]),
                            &learner.config,
                        ));
                        gates.push(Param::from_tensor(vector(logits)));
                        if learner.config.modulate {
                            modulation.push(Param::from_tensor(tensor(
                                format!("tasks.{t}.modulation.{}", site_name(spec)),
                                vec![spec.d_out],
                            )?));
                        }
                    }
                    let key = host(format!("tasks.{t}.key"), vec![learner.hidden])?;
                    let unit_key = unit(&key);
                    let key = vector(key);
                    tasks.push(LearnedTask {
                        name: th.name,
                        params: TaskParams {
                            key: Param::from_tensor(key),
                            experts,
                            gates,
                            modulation,
                        },
                        visible: th.visible,
                        chosen: th.chosen,
                        weights,
                        unit_key,
                        capacity: th.capacity,
                    });
                    experts_before += th.experts;
                }
            }
            LearnerState::Shared {
                lora,
                learned,
                capacity,
            } => {
                let sh = header
                    .shared
                    .ok_or_else(|| not_a_state("a shared baseline without its adapter".into()))?;
                if sh.experts != lora.experts.len() {
                    return Err(not_a_state(format!(
                        "{} shared experts, the method has {}",
                        sh.experts,
                        lora.experts.len()
                    )));
                }
                lora.experts = (0..sh.experts)
                    .map(|j| {
                        sites
                            .iter()
                            .map(|spec| expert(&format!("shared.experts.{j}"), spec))
                            .collect()
                    })
                    .collect::<Result<Vec<Vec<_>>, _>>()?;
                if !lora.routers.is_empty() {
                    lora.routers = sites
                        .iter()
                        .map(|spec| {
                            matrix(
                                format!("shared.routers.{}", site_name(spec)),
                                spec.d_in,
                                sh.experts,
                            )
                        })
                        .collect::<Result<_, _>>()?;
                }
                *learned = sh.learned;
                *capacity = sh.capacity;
            }
        }
        let learned = learner.tasks_learned();
        if learner.config.router == RouterKind::Gaussian
            && learner.method.is_routed()
            && learned > 0
        {
            let router = header
                .router
                .ok_or_else(|| not_a_state("its router statistics are missing".into()))?;
            let width = learner.identifier.dim();
            if router.width != width
                || router.counts.len() != learned
                || router.ranges.len() != learned
            {
                return Err(not_a_state(format!(
                    "its router statistics are for {} tasks of width {}, it has {learned} tasks of width {width}",
                    router.counts.len(),
                    router.width
                )));
            }
            let means = host("router.means".into(), vec![learned, width])?;
            let mut stats = Vec::with_capacity(learned);
            for (t, mean) in means.chunks_exact(width).enumerate() {
                let scatter = host(format!("router.scatter.{t}"), vec![width, width])?;
                stats.push(TaskStats {
                    count: router.counts[t],
                    mean: mean.iter().map(|&m| m as f64).collect(),
                    scatter: scatter.into_iter().map(|v| v as f64).collect(),
                    range: router.ranges[t],
                });
            }
            let background = match router.background_count {
                Some(count) => Some(TaskStats {
                    count,
                    mean: host("router.background.mean".into(), vec![width])?
                        .into_iter()
                        .map(|m| m as f64)
                        .collect(),
                    scatter: host("router.background.scatter".into(), vec![width, width])?
                        .into_iter()
                        .map(|v| v as f64)
                        .collect(),
                    range: 1.0,
                }),
                None => None,
            };
            learner.identifier =
                TaskIdentifier::from_parts(width, learner.config.none_quantile, stats, background)
                    .ok_or_else(|| not_a_state("its router statistics do not fit".into()))?;
        }
        Ok(learner)
    }
}
