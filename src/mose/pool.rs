//! Sub-experts and the pool a site mixes them in (docs/METHOD.md, "Sub-experts").
//!
//! Sub-expert `j` is a low-rank pair `A_j (r x d_in)`, `B_j (d_out x r)`; a
//! site's output for expert weights `w` is
//! `y = W x + (alpha / r) * sum_j w_j * B_j (A_j x)`, a parallel path beside the
//! frozen projection. Held in burn's `[in, out]` layout: `a` is `[d_in, r]`,
//! `b` is `[r, d_out]`, so `B_j (A_j x)` is `(x a_j) b_j`.
//!
//! The pool concatenates the experts a forward pass uses so that any number of
//! them costs two matrix products: `x [a_1 .. a_E]` gives every expert's `r`
//! features at once, the weights scale each expert's block, and
//! `[b_1; ..; b_E]` sums them back. Checked against burn's own LoRA
//! (`Module::apply_lora`) with one expert at weight 1 (tests/mose.rs).

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The shape and initialisation of one sub-expert at one site.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SubExpertConfig {
    /// Input width of the projection.
    pub d_in: usize,
    /// Output width of the projection.
    pub d_out: usize,
    /// Rank `r` of the pair.
    pub rank: usize,
    /// `A` starts uniform in `±gain / sqrt(d_in)` (PEFT's kaiming-uniform
    /// with `a = sqrt(5)` is gain 1); `B` starts at 0.
    pub init_gain: f64,
}

impl SubExpertConfig {
    /// A fresh sub-expert: `A` small random, `B` zero, so it changes nothing
    /// until trained. `A` is drawn on the host from `seed`, so every device
    /// (CPU, Vulkan, the browser's WebGPU) starts from the same values.
    pub fn init(&self, seed: u64, device: &Device) -> SubExpert {
        let bound = (self.init_gain / (self.d_in as f64).sqrt()) as f32;
        let mut rng = StdRng::seed_from_u64(seed);
        let a: Vec<f32> = (0..self.d_in * self.rank)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        SubExpert {
            a: Param::from_data(TensorData::new(a, [self.d_in, self.rank]), device),
            b: Param::from_tensor(Tensor::zeros([self.rank, self.d_out], device)),
        }
    }
}

/// One sub-expert at one site.
#[derive(Module, Debug)]
pub struct SubExpert {
    /// `[d_in, r]`: the transpose of the paper's `A_j`.
    pub(crate) a: Param<Tensor<2>>,
    /// `[r, d_out]`: the transpose of the paper's `B_j`.
    pub(crate) b: Param<Tensor<2>>,
}

impl SubExpert {
    /// `|a b|_F^2 = tr((a^T a)(b b^T))`, the size of the change the pair
    /// makes (before its scale and gate), without forming `a b`.
    ///
    /// # Shapes
    /// - output: `[1]`
    pub(crate) fn delta_norm_sq(&self) -> Tensor<1> {
        let (a, b) = (self.a.val(), self.b.val());
        let gram_a = a.clone().transpose().matmul(a); // [r, r]
        let gram_b = b.clone().matmul(b.transpose()); // [r, r]
        (gram_a * gram_b).sum() // both symmetric: the trace of the product
    }
}

/// The sub-experts one forward pass mixes at one site, side by side.
#[derive(Debug, Clone)]
pub(crate) struct SubExpertPool {
    /// `[d_in, experts * r]`
    a: Tensor<2>,
    /// `[experts * r, d_out]`
    b: Tensor<2>,
    experts: usize,
    rank: usize,
    /// `alpha / r`
    scale: f64,
}

impl SubExpertPool {
    /// The pool of `experts` (all of rank `rank`), scaled by `alpha / rank`.
    pub fn new(experts: &[&SubExpert], rank: usize, alpha: f64) -> Self {
        assert!(!experts.is_empty(), "a sub-expert pool needs an expert");
        let a = Tensor::cat(experts.iter().map(|e| e.a.val()).collect(), 1);
        let b = Tensor::cat(experts.iter().map(|e| e.b.val()).collect(), 0);
        Self {
            a,
            b,
            experts: experts.len(),
            rank,
            scale: alpha / rank as f64,
        }
    }

    /// `(alpha / r) * sum_j w_j * B_j (A_j x)`.
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_in]`
    /// - weights: `[batch or 1, seq or 1, experts]` (per token, or per sequence)
    /// - output: `[batch, seq, d_out]`
    pub fn forward(&self, x: Tensor<3>, weights: Tensor<3>) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let [wb, wt, we] = weights.dims();
        assert!(
            (wb == b || wb == 1) && (wt == t || wt == 1) && we == self.experts,
            "sub-expert weights of shape [{wb}, {wt}, {we}] for x of [{b}, {t}, _] and {} experts",
            self.experts
        );
        let (e, r) = (self.experts, self.rank);
        let features = x.matmul(self.a.clone().unsqueeze_dim(0)); // [b, t, e * r]
        let weighted = features.reshape([b, t, e, r]) * weights.unsqueeze_dim::<4>(3); // [b, t, e, r]
        weighted
            .reshape([b, t, e * r])
            .matmul(self.b.clone().unsqueeze_dim(0)) // [b, t, d_out]
            .mul_scalar(self.scale)
    }

    /// The pool as one matrix for fixed `weights`:
    /// `(alpha / r) sum_j w_j A_j B_j`, so that `x delta` is
    /// [`forward`](Self::forward)'s output for every token.
    ///
    /// # Shapes
    /// - weights: `[experts]` -> `[d_in, d_out]`
    pub fn delta(&self, weights: Tensor<1>) -> Tensor<2> {
        let [d_in, _] = self.a.dims();
        let (e, r) = (self.experts, self.rank);
        let weighted = self.a.clone().reshape([d_in, e, r]) * weights.reshape([1, e, 1]);
        weighted
            .reshape([d_in, e * r])
            .matmul(self.b.clone())
            .mul_scalar(self.scale)
    }
}

#[cfg(test)]
mod tests {
    use burn::module::{LoraAdapter, Reparameterizer};
    use burn::nn::LinearConfig;

    use super::*;

    /// Attaches burn's own LoRA adapter with given factors.
    struct GivenLora {
        a: Tensor<2>,
        b: Tensor<2>,
        scale: f64,
    }

    impl Reparameterizer for GivenLora {
        type Reparam = LoraAdapter;
        fn reparameterize<const D: usize>(
            &mut self,
            path: &str,
            param: Param<Tensor<D>>,
        ) -> (Param<Tensor<D>>, Option<LoraAdapter>) {
            let adapter = (path == "weight").then(|| LoraAdapter {
                a: Param::from_tensor(self.a.clone()),
                b: Param::from_tensor(self.b.clone()),
                scale: self.scale,
            });
            (param.set_require_grad(false), adapter)
        }
    }

    #[test]
    fn one_sub_expert_at_weight_one_is_burns_lora() {
        let device = Device::flex();
        let (d_in, d_out, rank, alpha) = (6, 5, 2, 8.0);
        let linear = LinearConfig::new(d_in, d_out)
            .with_bias(false)
            .init(&device);
        let mut expert = SubExpertConfig {
            d_in,
            d_out,
            rank,
            init_gain: 1.0,
        }
        .init(3, &device);
        // A trained B: B = 0 would make both sides trivially W x.
        let b: Vec<f32> = (0..rank * d_out).map(|i| (i as f32 - 4.0) * 0.1).collect();
        expert.b = Param::from_data(TensorData::new(b, [rank, d_out]), &device);
        let x = Tensor::<3>::from_data(
            TensorData::new(
                (0..2 * 3 * d_in)
                    .map(|i| (i as f32 * 0.37).sin())
                    .collect::<Vec<_>>(),
                [2, 3, d_in],
            ),
            &device,
        );
        let pool = SubExpertPool::new(&[&expert], rank, alpha);
        let ours =
            linear.forward(x.clone()) + pool.forward(x.clone(), Tensor::ones([1, 1, 1], &device));
        let lora = linear.apply_reparameterization(GivenLora {
            a: expert.a.val(),
            b: expert.b.val(),
            scale: alpha / rank as f64,
        });
        let burns = lora.forward(x);
        let diff = (ours - burns).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-6, "max abs diff {diff}");
    }

    #[test]
    fn the_merged_delta_is_the_pool_for_every_token() {
        let device = Device::flex();
        let (d_in, d_out, rank) = (6, 5, 2);
        let experts: Vec<SubExpert> = (0..3)
            .map(|seed| {
                let mut e = SubExpertConfig {
                    d_in,
                    d_out,
                    rank,
                    init_gain: 1.0,
                }
                .init(seed, &device);
                let b: Vec<f32> = (0..rank * d_out)
                    .map(|i| ((i as u64 + seed) as f32 * 0.71).cos())
                    .collect();
                e.b = Param::from_data(TensorData::new(b, [rank, d_out]), &device);
                e
            })
            .collect();
        let pool = SubExpertPool::new(&experts.iter().collect::<Vec<_>>(), rank, 8.0);
        let w = [0.7f32, 0.0, 0.3];
        let x = Tensor::<3>::from_data(
            TensorData::new(
                (0..4 * d_in).map(|i| (i as f32 * 0.37).sin()).collect(),
                [1, 4, d_in],
            ),
            &device,
        );
        let weights = Tensor::<1>::from_data(TensorData::new(w.to_vec(), [3]), &device);
        let merged = x
            .clone()
            .matmul(pool.delta(weights.clone()).unsqueeze_dim(0));
        let side = pool.forward(x, weights.reshape([1, 1, 3]));
        let diff = (merged - side).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-5, "max abs diff {diff}");
    }

    #[test]
    fn a_fresh_sub_expert_adds_exactly_zero() {
        let device = Device::flex();
        let expert = SubExpertConfig {
            d_in: 4,
            d_out: 3,
            rank: 2,
            init_gain: 1.0,
        }
        .init(1, &device);
        let pool = SubExpertPool::new(&[&expert, &expert], 2, 8.0);
        let x = Tensor::<3>::ones([1, 2, 4], &device);
        let y = pool.forward(x, Tensor::ones([1, 1, 2], &device));
        assert_eq!(y.abs().max().into_scalar::<f32>(), 0.0);
    }
}
