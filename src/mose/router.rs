//! The task-key router (MOSE.md, "Query feature and routing"; Algorithm 2 of
//! arXiv 2511.06237, after L2P's prompt-pool matching).
//!
//! `q(x)` is the mean of the frozen model's hidden state after `query_layer`
//! over the query positions (padding masked out), L2-normalised. Each task
//! `t` has a key; scores are `s_t = cos(q(x), key_t)`; the `top_k_tasks`
//! largest are mixed with `softmax(s / route_temperature)`. Decisions are per
//! sequence, never a vote over a batch.

use burn::tensor::activation::relu;
use burn::tensor::{Int, Tensor};

use crate::model::Llama;

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
    /// `cos(q(x), key_t)` for every learned task, in task order.
    pub scores: Vec<f32>,
    /// The chosen tasks and their weights `pi` (summing to 1), best first.
    pub chosen: Vec<(usize, f32)>,
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
        Self { scores, chosen }
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
    fn top_one_has_weight_one_and_ties_go_to_the_earlier_task() {
        let route = Route::from_scores(vec![0.5, 0.5], 1, 0.1);
        assert_eq!(route.chosen, vec![(0, 1.0)]);
        assert_eq!(Route::from_scores(Vec::new(), 1, 0.1).top(), None);
        assert_eq!(Route::oracle(2, 2).chosen, Vec::new());
        assert_eq!(Route::oracle(1, 2).chosen, vec![(1, 1.0)]);
    }
}
