//! The baselines that share one adapter across every task (docs/METHOD.md,
//! "Baselines"): `seq-lora`, one LoRA at the same sites fine-tuned task after
//! task (the forgetting baseline), and `moe-lora`, a fixed pool of LoRA
//! experts per site with a learned softmax token router, top-k, trained end to
//! end task after task. `lora-per-task` is the MoSE engine with one private
//! expert per task and no reuse (see [`super::Method`]).
//!
//! Budgets match the rank a MoSE task uses at a site: a LoRA of rank
//! `top_k_experts * rank`, or `moe_experts` experts sharing that rank between
//! them.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::mixture::{ExpertWeights, Mixture, SiteMix};
use super::pool::{SubExpert, SubExpertPool};
use super::{MoseConfig, SiteSpec, fresh_experts};

/// One adapter shared by every task.
#[derive(Module, Debug)]
pub struct SharedLora {
    /// `experts[j][s]`: expert `j` at adapted site `s` (one expert for seq-lora).
    pub(crate) experts: Vec<Vec<SubExpert>>,
    /// The token router at each adapted site, `[d_in, experts]`; empty for seq-lora.
    pub(crate) routers: Vec<Param<Tensor<2>>>,
}

impl SharedLora {
    /// `experts` fresh experts per site (B = 0, so the model starts as the
    /// base), with a token router when there is more than one.
    pub(crate) fn init(
        sites: &[SiteSpec],
        config: &MoseConfig,
        experts: usize,
        seed: u64,
        device: &Device,
    ) -> Self {
        let experts_per_site = fresh_experts(sites, config, experts, seed, device);
        let routers = if experts > 1 {
            let mut rng = StdRng::seed_from_u64(seed ^ 0x005E_ED0F_C0DE);
            sites
                .iter()
                .map(|spec| {
                    let bound = (config.init_gain / (spec.d_in as f64).sqrt()) as f32;
                    let values: Vec<f32> = (0..spec.d_in * experts)
                        .map(|_| rng.random_range(-bound..bound))
                        .collect();
                    Param::from_data(TensorData::new(values, [spec.d_in, experts]), device)
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            experts: experts_per_site,
            routers,
        }
    }

    /// The adapter for a forward pass: weight 1 on the single LoRA, or the
    /// token router's top-k mixture.
    pub(crate) fn mixture(&self, sites: &[SiteSpec], config: &MoseConfig, top_k: usize) -> Mixture {
        let mixes = sites
            .iter()
            .enumerate()
            .map(|(s, _)| {
                let experts: Vec<&SubExpert> = self.experts.iter().map(|e| &e[s]).collect();
                let pool = SubExpertPool::new(&experts, config.rank, config.alpha);
                let weights = match self.routers.get(s) {
                    Some(router) => ExpertWeights::Tokens {
                        router: router.val(),
                        top_k,
                    },
                    None => {
                        let device = self.experts[0][s].a.val().device();
                        ExpertWeights::Sequence(Tensor::ones([1, 1, 1], &device))
                    }
                };
                SiteMix {
                    pool,
                    weights,
                    modulation: None,
                }
            })
            .collect();
        Mixture::new(sites.iter().map(|s| (s.layer, s.site)).collect(), mixes)
    }
}
