//! The adapter one forward pass uses: at each adapted site, a pool of
//! sub-experts, their weights and the modulation (docs/METHOD.md, "Sub-experts" and
//! "Query feature and routing").
//!
//! `y = (1 + m) * (W x) + (alpha / r) * sum_j w_j * B_j (A_j x)`. The weights
//! are per sequence (MoSE, LoRA per task, plain LoRA) or per token (the
//! MoE-LoRA baseline's learned router, top-k of a softmax).

use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

use super::pool::SubExpertPool;
use crate::model::{Adapter, Site};

/// Large enough to silence a logit in a softmax without producing infinities
/// on any backend.
pub(crate) const MASKED_LOGIT: f64 = -1.0e9;

/// How a site weighs its sub-experts.
#[derive(Debug, Clone)]
pub(crate) enum ExpertWeights {
    /// Fixed for the whole sequence: `[batch or 1, 1, experts]`.
    Sequence(Tensor<3>),
    /// A token router `[d_in, experts]`: each token mixes the `top_k`
    /// experts its logits rank highest, with a softmax over those.
    Tokens { router: Tensor<2>, top_k: usize },
}

/// Everything one adapted site needs for a forward pass.
#[derive(Debug, Clone)]
pub(crate) struct SiteMix {
    pub pool: SubExpertPool,
    pub weights: ExpertWeights,
    /// `m`: `[batch or 1, 1, d_out]`, or `None` without modulation.
    pub modulation: Option<Tensor<3>>,
}

/// The sites of a model and what each one adds.
#[derive(Debug, Clone)]
pub(crate) struct Mixture {
    /// `(layer, site)` of every adapted projection, in `mixes` order.
    sites: Vec<(usize, Site)>,
    mixes: Vec<SiteMix>,
}

impl Mixture {
    /// One mix per entry of `sites`.
    pub fn new(sites: Vec<(usize, Site)>, mixes: Vec<SiteMix>) -> Self {
        assert_eq!(sites.len(), mixes.len(), "one mix per adapted site");
        Self { sites, mixes }
    }

    /// What `site` of `layer` adds, or `None` where it is not adapted.
    fn mix(&self, layer: usize, site: Site) -> Option<&SiteMix> {
        let i = self.sites.iter().position(|&s| s == (layer, site))?;
        Some(&self.mixes[i])
    }
}

impl Adapter for Mixture {
    fn project(&self, layer: usize, site: Site, x: Tensor<3>, wx: Tensor<3>) -> Tensor<3> {
        let Some(mix) = self.mix(layer, site) else {
            return wx;
        };
        let weights = match &mix.weights {
            ExpertWeights::Sequence(w) => w.clone(),
            ExpertWeights::Tokens { router, top_k } => token_weights(x.clone(), router, *top_k),
        };
        let frozen = match &mix.modulation {
            Some(m) => wx.clone() + wx * m.clone(), // (1 + m) * (W x)
            None => wx,
        };
        frozen + mix.pool.forward(x, weights)
    }

    /// `W' = W diag(1 + m) + (alpha / r) sum_j w_j A_j B_j`: exact when the
    /// weights and the modulation are one set for the whole sequence (a
    /// routed task's, or plain LoRA's), as they are when a single prompt is
    /// generated. Per-token routing (the MoE-LoRA baseline) or several batch
    /// rows cannot be merged.
    fn merge(&self, layer: usize, site: Site, weight: Tensor<2>) -> Option<Tensor<2>> {
        let Some(mix) = self.mix(layer, site) else {
            return Some(weight);
        };
        let ExpertWeights::Sequence(w) = &mix.weights else {
            return None;
        };
        let [rows, _, experts] = w.dims();
        if rows != 1 {
            return None;
        }
        let frozen = match &mix.modulation {
            Some(m) if m.dims()[0] != 1 => return None,
            Some(m) => {
                let [_, _, d_out] = m.dims();
                weight.clone() + weight * m.clone().reshape([1, d_out])
            }
            None => weight,
        };
        Some(frozen + mix.pool.delta(w.clone().reshape([experts])))
    }
}

/// A token router's weights: softmax over each token's `top_k` largest logits,
/// zero elsewhere.
///
/// # Shapes
/// - x: `[batch, seq, d_in]`, router: `[d_in, experts]` -> `[batch, seq, experts]`
pub(crate) fn token_weights(x: Tensor<3>, router: &Tensor<2>, top_k: usize) -> Tensor<3> {
    let logits = x.matmul(router.clone().unsqueeze_dim(0)); // [b, t, e]
    let [b, t, e] = logits.dims();
    if top_k >= e {
        return softmax(logits, 2);
    }
    let kth = logits
        .clone()
        .topk(top_k, 2)
        .narrow(2, top_k - 1, 1) // [b, t, 1]
        .expand([b, t, e]);
    let below = logits.clone().lower(kth); // [b, t, e]
    softmax(logits.mask_fill(below, MASKED_LOGIT), 2)
}
