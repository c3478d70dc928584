//! AdamW with global-norm clipping over every parameter of one module, its
//! state held as two flat vectors.
//!
//! The update is PyTorch's `AdamW` after `clip_grad_norm_`: the gradients are
//! scaled by `min(1, max_norm / (|g| + 1e-6))`, `|g|` the L2 norm of all of
//! them together; then
//! `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
//! `p = p (1 - lr wd) - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)`.
//!
//! Why not burn's `ModuleOptimizer`: its saved state is read back from the
//! device synchronously, which WebGPU cannot do, so a training run in the
//! browser could not be checkpointed; and it updates each parameter with its
//! own dozen kernels, where on WebGPU every kernel launch costs time. Here the
//! gradients are joined into one vector, the whole update is a handful of
//! kernels on it, and the state is a step count and two vectors that any
//! device can read back asynchronously.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// AdamW's constants.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWSettings {
    /// Decay of the first moment.
    pub beta_1: f64,
    /// Decay of the second moment.
    pub beta_2: f64,
    /// Added to the root of the second moment.
    pub epsilon: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Gradients are scaled down when their global L2 norm exceeds this.
    pub clip_norm: f64,
}

/// The optimizer of one module whose parameters never change shape.
#[derive(Debug, Clone)]
pub struct FlatAdamW {
    settings: AdamWSettings,
    /// Steps taken.
    time: usize,
    /// The moments, `[values]` in the module's visiting order; `None` before
    /// the first step.
    moments: Option<(Tensor<1>, Tensor<1>)>,
}

impl FlatAdamW {
    /// A fresh optimizer.
    pub fn new(settings: AdamWSettings) -> Self {
        Self {
            settings,
            time: 0,
            moments: None,
        }
    }

    /// An optimizer that goes on from `time` steps with the moments given,
    /// `[values]` each in the module's visiting order.
    pub fn resume(
        settings: AdamWSettings,
        time: usize,
        first: Tensor<1>,
        second: Tensor<1>,
    ) -> Self {
        Self {
            settings,
            time,
            moments: Some((first, second)),
        }
    }

    /// Steps taken.
    pub fn time(&self) -> usize {
        self.time
    }

    /// The first and second moments, `None` before the first step.
    pub fn moments(&self) -> Option<&(Tensor<1>, Tensor<1>)> {
        self.moments.as_ref()
    }

    /// One clipped AdamW step of `module` at `learning_rate`. A parameter the
    /// loss did not reach counts as having a zero gradient.
    pub fn step<M: Module>(
        &mut self,
        learning_rate: f64,
        module: M,
        mut grads: GradientsParams,
    ) -> M {
        let mut gather = Gather {
            grads: &mut grads,
            parts: Vec::new(),
        };
        module.visit(&mut gather);
        if gather.parts.is_empty() {
            return module;
        }
        let grad = Tensor::cat(gather.parts, 0);
        let s = self.settings;
        let factor = grad
            .clone()
            .square()
            .sum()
            .sqrt()
            .add_scalar(1e-6)
            .recip()
            .mul_scalar(s.clip_norm)
            .clamp_max(1.0);
        let grad = grad * factor;
        let (first, second) = match self.moments.take() {
            Some((m, v)) => (
                m.mul_scalar(s.beta_1) + grad.clone().mul_scalar(1.0 - s.beta_1),
                v.mul_scalar(s.beta_2) + grad.square().mul_scalar(1.0 - s.beta_2),
            ),
            None => (
                grad.clone().mul_scalar(1.0 - s.beta_1),
                grad.square().mul_scalar(1.0 - s.beta_2),
            ),
        };
        self.time += 1;
        let t = self.time as i32;
        let delta = first
            .clone()
            .div_scalar(1.0 - s.beta_1.powi(t))
            .div(
                second
                    .clone()
                    .div_scalar(1.0 - s.beta_2.powi(t))
                    .sqrt()
                    .add_scalar(s.epsilon),
            )
            .mul_scalar(learning_rate);
        self.moments = Some((first, second));
        let mut values = flatten(&module);
        if s.weight_decay != 0.0 {
            values = values.mul_scalar(1.0 - learning_rate * s.weight_decay);
        }
        unflatten(module, values - delta, true)
    }
}

/// Every parameter's gradient, flattened, in visiting order.
struct Gather<'a> {
    grads: &'a mut GradientsParams,
    parts: Vec<Tensor<1>>,
}

impl ModuleVisitor for Gather<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let n = param.shape().num_elements();
        let part = match self.grads.remove::<D>(param.id) {
            Some(grad) => grad.reshape([n]),
            None => Tensor::zeros([n], &param.val().inner().device()),
        };
        self.parts.push(part);
    }
}

/// Every parameter of `module` flattened and joined in visiting order,
/// `[values]`, without autodiff.
pub fn flatten<M: Module>(module: &M) -> Tensor<1> {
    struct Join(Vec<Tensor<1>>);
    impl ModuleVisitor for Join {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let n = param.shape().num_elements();
            self.0.push(param.val().inner().reshape([n]));
        }
    }
    let mut join = Join(Vec::new());
    module.visit(&mut join);
    Tensor::cat(join.0, 0)
}

/// The shape of every parameter of `module`, in visiting order.
pub fn shapes<M: Module>(module: &M) -> Vec<Vec<usize>> {
    struct Shapes(Vec<Vec<usize>>);
    impl ModuleVisitor for Shapes {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.shape().to_vec());
        }
    }
    let mut shapes = Shapes(Vec::new());
    module.visit(&mut shapes);
    shapes.0
}

/// `module` with its parameters replaced, in visiting order, by the slices
/// of `values` (`[values]`, as [`flatten`] gives), on `values`' device and
/// requiring gradients when `trainable`.
///
/// # Panics
/// When `values` does not have exactly as many values as the module; check
/// [`shapes`] first.
pub fn unflatten<M: Module>(module: M, values: Tensor<1>, trainable: bool) -> M {
    struct Fill {
        values: Tensor<1>,
        offset: usize,
        trainable: bool,
    }
    impl ModuleMapper for Fill {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, tensor, mapper) = param.consume();
            let dims = tensor.dims();
            let n: usize = dims.iter().product();
            let value = self
                .values
                .clone()
                .slice(self.offset..self.offset + n)
                .reshape(dims);
            self.offset += n;
            let value = match self.trainable {
                true => Tensor::from_inner(value).require_grad(),
                false => value,
            };
            Param::from_mapped_value(id, value, mapper)
        }
    }
    let [total] = values.dims();
    let mut fill = Fill {
        values,
        offset: 0,
        trainable,
    };
    let module = module.map(&mut fill);
    assert_eq!(fill.offset, total, "values for every parameter, no more");
    module
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, TensorData};

    use super::*;

    #[derive(Module, Debug)]
    struct Two {
        a: Param<Tensor<1>>,
        b: Param<Tensor<2>>,
    }

    fn values(p: &Param<Tensor<1>>) -> Vec<f32> {
        p.val().into_data().try_to_vec().unwrap()
    }

    /// Three steps whose gradients are chosen (the loss is `sum(p * c)`, so
    /// the gradient is `c`), the first far above the clipping norm, against
    /// AdamW with clipping computed on the host in f64.
    #[test]
    fn steps_as_clipped_adamw_computed_on_the_host() {
        let device = Device::flex().autodiff();
        let settings = AdamWSettings {
            beta_1: 0.9,
            beta_2: 0.99,
            epsilon: 1e-6,
            weight_decay: 0.1,
            clip_norm: 1.0,
        };
        let start = [0.5f64, -1.0, 0.25, 2.0, -0.5, 1.5];
        let grads = [
            [30.0f64, -40.0, 10.0, 0.0, 20.0, -5.0],
            [0.1, 0.2, -0.3, 0.05, 0.0, -0.1],
            [-0.4, 0.1, 0.2, 0.3, -0.2, 0.6],
        ];
        let lrs = [0.1f64, 0.05, 0.02];
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let mut module = Two {
            a: Param::from_data(TensorData::new(f32s(&start[..2]), [2]), &device),
            b: Param::from_data(TensorData::new(f32s(&start[2..]), [2, 2]), &device),
        };
        let mut optimizer = FlatAdamW::new(settings);
        let (mut p, mut m, mut v) = (start.to_vec(), vec![0.0; 6], vec![0.0; 6]);
        for (t, (g, lr)) in grads.iter().zip(lrs).enumerate() {
            let ca = Tensor::<1>::from_data(TensorData::new(f32s(&g[..2]), [2]), &device);
            let cb = Tensor::<2>::from_data(TensorData::new(f32s(&g[2..]), [2, 2]), &device);
            let loss = (module.a.val() * ca).sum() + (module.b.val() * cb).sum();
            let gradients = GradientsParams::from_grads(loss.backward(), &module);
            module = optimizer.step(lr, module, gradients);

            let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
            let factor = (1.0 / (norm + 1e-6)).min(1.0);
            let t = t as i32 + 1;
            for i in 0..6 {
                let g = g[i] * factor;
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.99 * v[i] + 0.01 * g * g;
                let step = (m[i] / (1.0 - 0.9f64.powi(t)))
                    / ((v[i] / (1.0 - 0.99f64.powi(t))).sqrt() + 1e-6);
                p[i] = p[i] * (1.0 - lr * 0.1) - lr * step;
            }
        }
        let mut found = values(&module.a);
        found.extend(module.b.val().into_data().try_to_vec::<f32>().unwrap());
        assert_eq!(optimizer.time(), 3);
        for (i, (f, e)) in found.iter().zip(&p).enumerate() {
            assert!((*f as f64 - e).abs() < 1e-5, "value {i}: {f} vs {e}");
        }
    }

    #[test]
    fn flatten_and_unflatten_round_trip_in_visiting_order() {
        let device = Device::flex();
        let module = Two {
            a: Param::from_data(TensorData::new(vec![1.0f32, 2.0], [2]), &device),
            b: Param::from_data(
                TensorData::new(vec![3.0f32, 4.0, 5.0, 6.0], [2, 2]),
                &device,
            ),
        };
        assert_eq!(shapes(&module), vec![vec![2], vec![2, 2]]);
        let flat: Vec<f32> = flatten(&module).into_data().try_to_vec().unwrap();
        assert_eq!(flat, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let doubled = Tensor::<1>::from_data(
            TensorData::new(flat.iter().map(|x| 2.0 * x).collect(), [6]),
            &device,
        );
        let module = unflatten(module, doubled, false);
        assert_eq!(values(&module.a), [2.0, 4.0]);
        assert_eq!(
            module.b.val().into_data().try_to_vec::<f32>().unwrap(),
            [6.0, 8.0, 10.0, 12.0]
        );
    }
}
