//! A task's state (docs/METHOD.md, "A task's state" and "Training task t", steps 1,
//! 2 and 5): its routing key, its gate logits over the sub-experts visible to
//! it, its modulation vectors and its own new sub-experts; and what remains of
//! them once the task is consolidated and frozen.

use burn::module::{Module, Param};
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::mixture::MASKED_LOGIT;
use super::pool::SubExpert;
use super::router::{ranked, softmax_at};
use super::{MoseConfig, MoseError, SiteSpec, fresh_experts};

/// How a task's gate turns its logits `g` over the visible sub-experts into
/// weights `w` (docs/METHOD.md, "Gates").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateKind {
    /// `w = softmax(g)`: the weights share a mass of 1 (the paper's gate).
    /// Two new sub-experts alone get 1/2 each, and earlier ones take a share
    /// while exploring, so a task learns at a fraction of a LoRA's scale.
    Softmax,
    /// `w = softmax(g + alpha tanh(tau g))`: NoRGa's non-linear residual gate
    /// (arXiv 2405.14124), a softmax whose slope near 0 is `1 + alpha tau`.
    Norga,
    /// `w_e = 2 sigmoid(g_e)`, each sub-expert on its own: a new one starts
    /// at weight 1, the scale of a LoRA of the same rank, whatever else is
    /// visible; an earlier one enters at `2 sigmoid(reuse_bias)` and grows
    /// only if it serves the task.
    Sigmoid,
}

/// `w` from gate logits on the host, zero outside `chosen` (when given).
pub(crate) fn gate_weights_host(
    logits: &[f32],
    chosen: Option<&[usize]>,
    config: &MoseConfig,
) -> Vec<f32> {
    let all: Vec<usize> = (0..logits.len()).collect();
    let chosen = chosen.unwrap_or(&all);
    let mut weights = vec![0.0f32; logits.len()];
    match config.gate {
        GateKind::Sigmoid => {
            for &p in chosen {
                weights[p] = 2.0 / (1.0 + (-logits[p] as f64).exp()) as f32;
            }
        }
        GateKind::Softmax | GateKind::Norga => {
            let shaped: Vec<f32> = logits
                .iter()
                .map(|&g| norga(g as f64, config) as f32)
                .collect();
            for (&p, w) in chosen.iter().zip(softmax_at(&shaped, chosen, 1.0)) {
                weights[p] = w;
            }
        }
    }
    weights
}

/// The logit that gives weight `w` under the gate (the inverse of
/// [`gate_weights_host`] for one sub-expert; for the softmax gates, up to
/// the shared constant).
pub(crate) fn logit_for(w: f32, config: &MoseConfig) -> f32 {
    let w = w as f64;
    match config.gate {
        GateKind::Sigmoid => {
            let half = (w / 2.0).clamp(1e-4, 1.0 - 1e-4);
            (half / (1.0 - half)).ln() as f32
        }
        // The residual is monotone: the logit of the plain softmax is close
        // enough for a starting point.
        GateKind::Softmax | GateKind::Norga => w.max(1e-4).ln() as f32,
    }
}

/// `g + alpha tanh(tau g)` for NoRGa, `g` otherwise.
fn norga(g: f64, config: &MoseConfig) -> f64 {
    match config.gate {
        GateKind::Norga => g + config.norga_alpha * (config.norga_tau * g).tanh(),
        _ => g,
    }
}

/// What task `t` trains: handed to the optimizer while the task is learned,
/// frozen for good afterwards.
#[derive(Module, Debug)]
pub struct TaskParams {
    /// `key_t`: `[hidden]`.
    pub(crate) key: Param<Tensor<1>>,
    /// The task's own sub-experts: `experts[j][s]` is sub-expert `j` at adapted site `s`.
    pub(crate) experts: Vec<Vec<SubExpert>>,
    /// `gate_t` at each adapted site: logits over the visible sub-experts, `[visible]`.
    pub(crate) gates: Vec<Param<Tensor<1>>>,
    /// `m_t` at each adapted site, `[d_out]`; empty without modulation.
    pub(crate) modulation: Vec<Param<Tensor<1>>>,
}

impl TaskParams {
    /// Step 1 and 2 of Algorithm 1: `new` fresh sub-experts with gate logits
    /// at 0, the `old` ones visible to the task at `start.logits` (or
    /// `reuse_bias`), `m_t` at `start.modulation` (or 0), and the key given.
    pub(crate) fn init(
        sites: &[SiteSpec],
        config: &MoseConfig,
        start: TaskStart,
        key: Vec<f32>,
        seed: u64,
        device: &Device,
    ) -> Self {
        let new = start.new_experts;
        let old = start.old;
        let experts = fresh_experts(sites, config, new, seed, device);
        let gates = sites
            .iter()
            .enumerate()
            .map(|(s, _)| {
                let mut logits = match &start.logits {
                    Some(logits) => logits[s].clone(),
                    None => vec![config.reuse_bias as f32; old],
                };
                logits.extend(std::iter::repeat_n(0.0f32, new));
                Param::from_data(TensorData::new(logits, [old + new]), device)
            })
            .collect();
        let modulation = if config.modulate {
            sites
                .iter()
                .enumerate()
                .map(|(s, spec)| match &start.modulation {
                    Some(m) => {
                        Param::from_data(TensorData::new(m[s].clone(), [spec.d_out]), device)
                    }
                    None => Param::from_tensor(Tensor::zeros([spec.d_out], device)),
                })
                .collect()
        } else {
            Vec::new()
        };
        let hidden = key.len();
        Self {
            key: Param::from_data(TensorData::new(key, [hidden]), device),
            experts,
            gates,
            modulation,
        }
    }

    /// `w_t` at site `s` over every visible sub-expert while exploring, over
    /// the settled set only (zero elsewhere) once it is fixed.
    ///
    /// # Shapes
    /// - output: `[visible]`
    pub(crate) fn gate_weights(
        &self,
        s: usize,
        settled: Option<&[usize]>,
        config: &MoseConfig,
    ) -> Tensor<1> {
        let logits = self.gates[s].val();
        let [n] = logits.dims();
        let device = logits.device();
        let in_set = |i: usize| settled.is_none_or(|chosen| chosen.contains(&i));
        match config.gate {
            GateKind::Sigmoid => {
                let mask: Vec<f32> = (0..n).map(|i| if in_set(i) { 2.0 } else { 0.0 }).collect();
                let mask = Tensor::from_data(TensorData::new(mask, [n]), &device);
                sigmoid(logits) * mask
            }
            GateKind::Softmax | GateKind::Norga => {
                let shaped = match config.gate {
                    GateKind::Norga => {
                        let residual = logits.clone().mul_scalar(config.norga_tau).tanh();
                        logits + residual.mul_scalar(config.norga_alpha)
                    }
                    _ => logits,
                };
                let mask: Vec<f32> = (0..n)
                    .map(|i| if in_set(i) { 0.0 } else { MASKED_LOGIT as f32 })
                    .collect();
                let mask = Tensor::from_data(TensorData::new(mask, [n]), &device);
                softmax(shaped + mask, 0)
            }
        }
    }
}

/// How a new task's state starts: how many sub-experts are visible to it and
/// how many it adds, and, when it builds on an earlier task the router
/// already counts its text as, that task's gate logits and modulation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TaskStart {
    /// Earlier sub-experts visible to the task.
    pub old: usize,
    /// Fresh sub-experts it adds.
    pub new_experts: usize,
    /// Per site, starting logits over the `old` sub-experts.
    pub logits: Option<Vec<Vec<f32>>>,
    /// Per site, the starting modulation.
    pub modulation: Option<Vec<Vec<f32>>>,
}

/// How a new task read to the router before it trained: the learned task
/// it is most like, and the share of its whole training samples the router
/// would have sent there rather than keep (judged on text it had not
/// fitted). At `familiar_share` or more the task builds on that task's
/// sub-experts (docs/METHOD.md, "Reuse").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Likeness {
    /// The learned task it is most like, in learning order.
    pub task: usize,
    /// The share of its samples nearer that task's mean than its own.
    pub share: f64,
}

/// The sub-experts, reuse and parameters a task added (docs/METHOD.md, "Metrics":
/// capacity), or the state of a shared baseline after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// Sub-experts in the whole state after this task.
    pub experts_total: usize,
    /// Sub-experts this task added and kept.
    pub experts_new: usize,
    /// Earlier sub-experts this task uses at some site.
    pub experts_reused: usize,
    /// Values this task trained and kept (its new experts, gates, modulation, key).
    pub trainable_params: usize,
    /// Adapter values in the whole state after this task.
    pub total_params: usize,
}

/// A learned task, frozen.
#[derive(Debug, Clone)]
pub(crate) struct LearnedTask {
    pub name: String,
    pub params: TaskParams,
    /// Global ids of the sub-experts its gates index, in gate order.
    pub visible: Vec<usize>,
    /// Per adapted site: positions in `visible` of its settled top-k.
    pub chosen: Vec<Vec<usize>>,
    /// Per adapted site: `w_t` over `visible` (zero outside `chosen`), from the gates.
    pub weights: Vec<Vec<f32>>,
    /// `key_t / |key_t|`, for routing on the host.
    pub unit_key: Vec<f32>,
    pub capacity: Capacity,
}

impl LearnedTask {
    /// Step 5 of Algorithm 1: keeps only the new sub-experts some site chose,
    /// drops their gate entries elsewhere, and records the capacity.
    ///
    /// `visible` lists the global ids of the old sub-experts the task saw
    /// followed by one placeholder per new expert; `first_new_id` is the
    /// global id the first kept new expert receives.
    pub(crate) async fn consolidate(
        name: String,
        params: TaskParams,
        old_visible: Vec<usize>,
        chosen: Vec<Vec<usize>>,
        first_new_id: usize,
        total_before: (usize, usize),
        config: &MoseConfig,
    ) -> Result<Self, MoseError> {
        let old = old_visible.len();
        let TaskParams {
            key,
            experts,
            gates,
            modulation,
        } = params;
        let kept: Vec<usize> = (0..experts.len())
            .filter(|j| chosen.iter().any(|c| c.contains(&(old + j))))
            .collect();
        // Position in the old gate order -> position in the consolidated one.
        let remap = |pos: usize| -> usize {
            if pos < old {
                pos
            } else {
                old + kept
                    .iter()
                    .position(|&j| j == pos - old)
                    .unwrap_or(usize::MAX)
            }
        };
        let keep_positions: Vec<usize> = (0..old).chain(kept.iter().map(|j| old + j)).collect();
        let chosen: Vec<Vec<usize>> = chosen
            .iter()
            .map(|c| c.iter().map(|&p| remap(p)).collect())
            .collect();
        let device = key.val().device();
        let mut new_gates = Vec::with_capacity(gates.len());
        let mut weights = Vec::with_capacity(gates.len());
        for (gate, chosen) in gates.into_iter().zip(&chosen) {
            let logits = read_vec(gate.val()).await?;
            let kept_logits: Vec<f32> = keep_positions.iter().map(|&p| logits[p]).collect();
            weights.push(gate_weights_host(&kept_logits, Some(chosen), config));
            let n = kept_logits.len();
            new_gates.push(Param::from_data(TensorData::new(kept_logits, [n]), &device));
        }
        let mut experts: Vec<Option<Vec<SubExpert>>> = experts.into_iter().map(Some).collect();
        let experts: Vec<Vec<SubExpert>> = kept.iter().filter_map(|&j| experts[j].take()).collect();
        let unit_key = unit(&read_vec(key.val()).await?);
        let reused = (0..old)
            .filter(|p| chosen.iter().any(|c| c.contains(p)))
            .count();
        let visible: Vec<usize> = old_visible
            .into_iter()
            .chain(first_new_id..first_new_id + kept.len())
            .collect();
        let params = TaskParams {
            key,
            experts,
            gates: new_gates,
            modulation,
        };
        let trainable = params.num_params();
        let (experts_before, params_before) = total_before;
        let capacity = Capacity {
            experts_total: experts_before + kept.len(),
            experts_new: kept.len(),
            experts_reused: reused,
            trainable_params: trainable,
            total_params: params_before + trainable,
        };
        Ok(Self {
            name,
            params,
            visible,
            chosen,
            weights,
            unit_key,
            capacity,
        })
    }
}

/// The `top_k` largest logits' positions in ascending order, ties to the
/// earlier position.
pub(crate) fn top_positions(logits: &[f32], top_k: usize) -> Vec<usize> {
    let mut order = ranked(logits, top_k);
    order.sort_unstable();
    order
}

/// `v / |v|` (zero stays zero).
pub(crate) fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    if norm == 0.0 {
        return v.to_vec();
    }
    v.iter().map(|x| (*x as f64 / norm) as f32).collect()
}

/// A tensor's values on the host.
pub(crate) async fn read_vec<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, MoseError> {
    tensor
        .into_data_async()
        .await
        .map_err(|e| MoseError::Read(format!("{e:?}")))?
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| MoseError::Read(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_weights_follow_the_gate_kind() {
        // Softmax: logits [0, ln 3, 5] with positions 0 and 1 chosen give
        // softmax([0, ln 3]) = [1/4, 3/4]; position 2 is outside the set.
        let softmax = MoseConfig::new().with_gate(GateKind::Softmax);
        let w = gate_weights_host(&[0.0, 3.0f32.ln(), 5.0], Some(&[0, 1]), &softmax);
        assert!((w[0] - 0.25).abs() < 1e-6 && (w[1] - 0.75).abs() < 1e-6);
        assert_eq!(w[2], 0.0);
        // Sigmoid: 2 sigmoid(0) = 1 for a fresh logit, on its own.
        let sigmoid = MoseConfig::new().with_gate(GateKind::Sigmoid);
        let w = gate_weights_host(&[0.0, 0.0, 5.0], Some(&[0, 1]), &sigmoid);
        assert_eq!(w, vec![1.0, 1.0, 0.0]);
        assert!(
            (gate_weights_host(&[logit_for(0.3, &sigmoid)], None, &sigmoid)[0] - 0.3).abs() < 1e-6
        );
        // NoRGa at alpha = tau = 1: logits 0 and 1 become 0 and 1 + tanh 1.
        let norga = MoseConfig::new().with_gate(GateKind::Norga);
        let w = gate_weights_host(&[0.0, 1.0], None, &norga);
        let e = (1.0f64 + 1f64.tanh()).exp();
        assert!((w[1] as f64 - e / (1.0 + e)).abs() < 1e-6);
    }

    #[test]
    fn top_positions_are_sorted_and_break_ties_early() {
        assert_eq!(top_positions(&[0.1, 0.7, 0.7, 0.3], 2), vec![1, 2]);
        assert_eq!(top_positions(&[-1.0, -1.0, 0.0], 2), vec![0, 2]);
        assert_eq!(top_positions(&[1.0], 2), vec![0]);
    }
}
