//! The router (docs/METHOD.md, "Router"): which learned task a sequence
//! belongs to, from the frozen model's reading of it, or none of them.
//!
//! Two routers, chosen by [`RouterKind`]:
//! - [`RouterKind::Gaussian`] (the default): the feature is the mean hidden
//!   state of the query positions after each decoder layer (layers averaged
//!   in groups when the concatenation would be wider than
//!   `route_feature_width`), concatenated; tasks are identified by a
//!   Gaussian per task with a shared covariance (`lda.rs`), and a feature
//!   beyond the nearest task's own range, or nearer the base model's own
//!   text than to that task (when the router models it), goes to no task:
//!   the base model answers.
//! - [`RouterKind::Key`]: Algorithm 2 of arXiv 2511.06237 (after L2P's
//!   prompt-pool matching). `q(x)` is the L2-normalised mean hidden state
//!   after `query_layer`; each task learns a key (`L_pull`, `L_push`);
//!   scores are `s_t = cos(q(x), key_t)`.
//!
//! The `top_k_tasks` best are mixed with `softmax(s / route_temperature)`
//! (the key router) or by their posterior (the Gaussian one). Decisions are
//! per sample (a long text's windows are pooled), never a vote over a batch.

use burn::tensor::activation::relu;
use burn::tensor::{Int, Tensor};

use serde::{Deserialize, Serialize};

use super::lda::Identification;
use crate::model::Llama;

/// How the router identifies a sequence's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouterKind {
    /// Cosine to a learned key per task (the paper's router).
    Key,
    /// A Gaussian per task over multi-layer features, with one shared
    /// covariance, and "none of these" beyond a task's own range.
    Gaussian,
}

/// Added to norms before dividing, so a zero vector stays finite.
const NORM_EPS: f64 = 1e-12;

/// `q(x)`, computed without any adapter.
///
/// # Shapes
/// - tokens: `[batch, seq]`, query_mask: `[batch, seq]` (1 on query positions)
/// - output: `[batch, hidden]`, each row of unit length
pub(crate) fn query_features(
    model: &Llama,
    tokens: Tensor<2, Int>,
    query_mask: Tensor<2>,
    layer: usize,
) -> Tensor<2> {
    let hidden = model.hidden_after(tokens, layer); // [b, t, d]
    let mask = query_mask.unsqueeze_dim::<3>(2); // [b, t, 1]
    let sum = (hidden * mask.clone()).sum_dim(1).squeeze_dim::<2>(1); // [b, d]
    let count = mask.sum_dim(1).squeeze_dim::<2>(1).clamp_min(1.0); // [b, 1]
    normalize_rows(sum / count)
}

/// The Gaussian router's feature: per group of consecutive layers, the mean
/// over the group of each layer's mean hidden state on the mask's positions;
/// the groups concatenated. One pass gives the feature for every mask.
///
/// # Shapes
/// - tokens: `[batch, seq]`, masks: each `[batch, seq]`
/// - output: one `[batch, groups * hidden]` per mask
pub(crate) fn layer_features(
    model: &Llama,
    tokens: Tensor<2, Int>,
    masks: &[Tensor<2>],
    groups: usize,
) -> Vec<Tensor<2>> {
    let layers = model.layer_outputs(tokens); // each [b, t, d]
    let n = layers.len();
    masks
        .iter()
        .map(|mask| {
            let mask = mask.clone().unsqueeze_dim::<3>(2); // [b, t, 1]
            let count = mask.clone().sum_dim(1).squeeze_dim::<2>(1).clamp_min(1.0); // [b, 1]
            let parts = (0..groups)
                .map(|g| {
                    let group = &layers[g * n / groups..(g + 1) * n / groups];
                    let sum = group
                        .iter()
                        .map(|h| (h.clone() * mask.clone()).sum_dim(1).squeeze_dim::<2>(1))
                        .reduce(|a, b| a + b)
                        .expect("every group holds a layer"); // [b, d]
                    sum / count.clone().mul_scalar(group.len() as f64)
                })
                .collect();
            Tensor::cat(parts, 1)
        })
        .collect()
}

/// Each row divided by its L2 norm.
///
/// # Shapes
/// - x: `[n, d]` -> `[n, d]`
pub(crate) fn normalize_rows(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum_dim(1).sqrt().add_scalar(NORM_EPS); // [n, 1]
    x / norm
}

/// Cosine similarity of each query with a key.
///
/// # Shapes
/// - queries: `[batch, d]` (unit rows), key: `[d]` -> `[batch]`
fn cosine_to(queries: Tensor<2>, key: Tensor<1>) -> Tensor<1> {
    let [d] = key.dims();
    let key = normalize_rows(key.reshape([1, d])); // [1, d]
    queries.matmul(key.transpose()).squeeze_dim::<1>(1) // [batch]
}

/// `L_pull = mean(1 - cos(q(x), key_t))`: draws the task's key towards the
/// queries of its own data.
///
/// # Shapes
/// - queries: `[batch, d]` (unit rows), key: `[d]` -> `[1]`
pub(crate) fn pull_loss(queries: Tensor<2>, key: Tensor<1>) -> Tensor<1> {
    cosine_to(queries, key).neg().add_scalar(1.0).mean()
}

/// The optional push hinge, `mean max(0, cos(q, key_o) - cos(q, key_t) + margin)`
/// over the batch and every other task's key `o` (the other keys are frozen).
///
/// # Shapes
/// - queries: `[batch, d]` (unit rows), key: `[d]`, others: `[tasks, d]` -> `[1]`
pub(crate) fn push_loss(
    queries: Tensor<2>,
    key: Tensor<1>,
    others: Tensor<2>,
    margin: f64,
) -> Tensor<1> {
    let own = cosine_to(queries.clone(), key).unsqueeze_dim::<2>(1); // [batch, 1]
    let other = queries.matmul(normalize_rows(others).transpose()); // [batch, tasks]
    relu(other - own + margin).mean()
}

/// The tasks one sequence is routed to, with their mixing weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Every learned task's score, in task order: the posterior probability
    /// (Gaussian router) or `cos(q(x), key_t)` (key router).
    pub scores: Vec<f32>,
    /// The chosen tasks and their weights `pi` (summing to 1), best first;
    /// empty when no task applies and the base model answers.
    pub chosen: Vec<(usize, f32)>,
    /// True when tasks are learned but the sequence is beyond the nearest
    /// one's own range ("none of these": the base model answers).
    pub none_of_these: bool,
}

impl Route {
    /// The best-scoring task (`None` when no task is learned).
    pub fn top(&self) -> Option<usize> {
        self.chosen.first().map(|&(task, _)| task)
    }

    /// Picks the `top_k` largest scores and mixes them with
    /// `softmax(score / temperature)`. Ties go to the earlier task.
    pub(crate) fn from_scores(scores: Vec<f32>, top_k: usize, temperature: f64) -> Self {
        let order = ranked(&scores, top_k);
        let weights = softmax_at(&scores, &order, temperature);
        let chosen = order.into_iter().zip(weights).collect();
        Self {
            scores,
            chosen,
            none_of_these: false,
        }
    }

    /// The Gaussian router's decision: the `top_k` likeliest tasks mixed by
    /// their renormalised posterior, or no task when the likeliest one's
    /// distance is beyond its threshold, or when the base model's own text
    /// (the background, if the router models it) is nearer than that task
    /// by more than the task's margin.
    pub(crate) fn from_identification(
        identification: &Identification,
        thresholds: &[f64],
        top_k: usize,
    ) -> Self {
        let scores: Vec<f32> = identification.posterior.iter().map(|&p| p as f32).collect();
        let order = ranked(&scores, top_k);
        let outside = order.first().is_some_and(|&t| {
            let distance = identification.distances[t];
            distance > thresholds[t]
                || identification
                    .background
                    .is_some_and(|b| b + identification.margin < distance)
        });
        if outside {
            return Self {
                scores,
                chosen: Vec::new(),
                none_of_these: true,
            };
        }
        let total: f32 = order.iter().map(|&t| scores[t]).sum();
        let chosen = order
            .into_iter()
            .map(|t| (t, scores[t] / total.max(f32::MIN_POSITIVE)))
            .collect();
        Self {
            scores,
            chosen,
            none_of_these: false,
        }
    }

    /// The oracle's decision: the true task, weight 1 (or nothing, for a task
    /// not learned yet).
    pub(crate) fn oracle(task: usize, learned: usize) -> Self {
        Self {
            scores: Vec::new(),
            chosen: if task < learned {
                vec![(task, 1.0)]
            } else {
                Vec::new()
            },
            none_of_these: false,
        }
    }
}

/// Positions of the `top_k` largest values, largest first; ties go to the
/// earlier position. Ranks tasks for the router and sub-experts for a gate.
pub(crate) fn ranked(values: &[f32], top_k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    order.truncate(top_k);
    order
}

/// `softmax(values[p] / temperature)` over the positions `at`, in that order
/// (computed in f64 from the largest value down, so it never overflows).
pub(crate) fn softmax_at(values: &[f32], at: &[usize], temperature: f64) -> Vec<f32> {
    let best = at
        .iter()
        .map(|&p| values[p] as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = at
        .iter()
        .map(|&p| ((values[p] as f64 - best) / temperature).exp())
        .collect();
    let total: f64 = exp.iter().sum();
    exp.iter().map(|e| (e / total) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_to_the_top_scores_with_a_tempered_softmax() {
        // Scores 0.2, 0.9, 0.5 with top-2 at temperature 0.1: tasks 1 and 2;
        // weights softmax([0.9, 0.5] / 0.1) = [1, e^-4] / (1 + e^-4).
        let route = Route::from_scores(vec![0.2, 0.9, 0.5], 2, 0.1);
        let e = (-4.0f64).exp();
        assert_eq!(route.top(), Some(1));
        assert_eq!(route.chosen.len(), 2);
        assert_eq!(route.chosen[1].0, 2);
        assert!((route.chosen[0].1 as f64 - 1.0 / (1.0 + e)).abs() < 1e-6);
        assert!((route.chosen[1].1 as f64 - e / (1.0 + e)).abs() < 1e-6);
    }

    #[test]
    fn the_base_model_answers_what_is_nearer_its_own_text_than_any_task() {
        let found = |background, margin| Identification {
            distances: vec![9.0, 4.0],
            posterior: vec![0.1, 0.9],
            background,
            margin,
        };
        let thresholds = [10.0, 10.0];
        let within = Route::from_identification(&found(None, 0.0), &thresholds, 1);
        assert_eq!(within.chosen, vec![(1, 1.0)]);
        let farther = Route::from_identification(&found(Some(5.0), 0.0), &thresholds, 1);
        assert_eq!(farther.chosen, vec![(1, 1.0)]);
        let nearer = Route::from_identification(&found(Some(3.0), 0.0), &thresholds, 1);
        assert!(nearer.none_of_these && nearer.chosen.is_empty());
        // Nearer the background by less than the task's margin: still the task's.
        let within_margin = Route::from_identification(&found(Some(3.0), 1.5), &thresholds, 1);
        assert_eq!(within_margin.chosen, vec![(1, 1.0)]);
    }

    #[test]
    fn top_one_has_weight_one_and_ties_go_to_the_earlier_task() {
        let route = Route::from_scores(vec![0.5, 0.5], 1, 0.1);
        assert_eq!(route.chosen, vec![(0, 1.0)]);
        assert_eq!(Route::from_scores(Vec::new(), 1, 0.1).top(), None);
        assert_eq!(Route::oracle(2, 2).chosen, Vec::new());
        assert_eq!(Route::oracle(1, 2).chosen, vec![(1, 1.0)]);
    }
}
