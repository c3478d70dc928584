//! Task identification from frozen features (docs/METHOD.md, "Router"): one
//! Gaussian per learned task with a covariance shared by all tasks, i.e.
//! linear discriminant analysis, which comes close to oracle task identity
//! in class-incremental learning.
//!
//! For each task `t` the router keeps the mean `mu_t` of its training
//! features, how many there were, and their scatter
//! `S_t = sum_{x in t} (x - mu_t)(x - mu_t)^T`; nothing else of the training
//! text is kept. `S = sum_t S_t` is the pooled within-task scatter, and the
//! covariance is
//! `C = S / n`, shrunk towards `(tr C / d) I` by the Oracle Approximating
//! Shrinkage estimate (Chen et al., 2010), so it stays invertible with fewer
//! samples than dimensions. With `C = L L^T` (Cholesky), the squared
//! Mahalanobis distance of a feature `x` to task `t` is
//! `d_t(x)^2 = |L^-1 x - L^-1 mu_t|^2`; the nearest task wins and the
//! posterior over tasks is `softmax(-d^2 / 2)` (equal priors).
//!
//! "None of these": each task also has a threshold, the `quantile` of its
//! own training features' distances to it, cross-fitted (each half of them
//! measured against a fit without it, as held-out text would be). A feature
//! beyond the nearest task's threshold belongs to no learned task. Each later
//! task changes the shared covariance and so every distance; a task keeps
//! its threshold as a ratio to its features' mean distance
//! `tr(C^-1 S_t) / n_t`, which its scatter gives under any covariance, so the
//! range follows the covariance exactly as the distances do.
//!
//! The base model's own text: optionally the router also keeps the same
//! statistics of texts the frozen model wrote by itself (its "background",
//! what it already does without any adapter). The background's scatter joins
//! the pooled covariance, which so counts the spread of generic text too and
//! weighs the directions that set a task apart from it; and a feature nearer
//! the background's mean than every task's belongs to no learned task. This
//! is the relative-distance idea of Ren et al. (2021) for near
//! out-of-distribution text: a long passage of any prose sits near the
//! centre of the model's features, inside every task's absolute range, but
//! it is nearer the model's own prose than a task unlike it.
//!
//! The statistics are f64 on the host (`d` is a few hundred); the products
//! over a task's training features run on the device.

use burn::tensor::{Device, Tensor, TensorData};

use super::{MoseError, read_vec};

/// What the router keeps of one task.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TaskStats {
    /// Training features seen.
    pub count: f64,
    /// Their mean, `[d]`.
    pub mean: Vec<f64>,
    /// Their scatter `S_t`, `[d, d]` row-major.
    pub scatter: Vec<f64>,
    /// The threshold over the mean distance `tr(C^-1 S_t) / n_t`.
    pub range: f64,
}

impl TaskStats {
    /// The count, mean and scatter of `features` (`[n, d]` row-major, at
    /// least one row), the products run on `device`; the range is 1 until
    /// a router sets it.
    ///
    /// # Panics
    /// On no rows or rows of another width (programmer errors).
    pub async fn of_features(
        features: &[f32],
        d: usize,
        device: &Device,
    ) -> Result<Self, MoseError> {
        assert!(
            !features.is_empty() && features.len().is_multiple_of(d),
            "features must be whole rows of width {d}"
        );
        let (mean, scatter) = moments(features, d, device).await?;
        // Kept at f32 precision, as a saved file holds them: a router read
        // back from a file decides exactly as this one.
        Ok(Self {
            count: (features.len() / d) as f64,
            mean: mean.iter().map(|&m| m as f64).collect(),
            scatter: scatter.iter().map(|&s| s as f64).collect(),
            range: 1.0,
        })
    }
}

/// The shared-covariance Gaussian router.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TaskIdentifier {
    dim: usize,
    tasks: Vec<TaskStats>,
    /// `L^-1` for the shrunk covariance `L L^T`, `[d, d]` row-major, lower triangle.
    inverse_factor: Vec<f64>,
    /// `L^-1 mu_t` per task.
    whitened_means: Vec<Vec<f64>>,
    /// The base model's own text, when the router models it.
    background: Option<TaskStats>,
    /// `L^-1 mu_b` for the background.
    whitened_background: Option<Vec<f64>>,
    /// Per task, the squared distance beyond which a feature is not its.
    thresholds: Vec<f64>,
    /// The share of a task's own features its range and its margin over
    /// the background keep (`none_quantile`).
    quantile: f64,
    /// Per task, how much nearer the background than the task a feature
    /// must be to go to the base model (0 with no background).
    margins: Vec<f64>,
}

/// Where a feature lands: squared distances to every task, nearest first.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Identification {
    /// `d_t(x)^2` in task order.
    pub distances: Vec<f64>,
    /// `softmax(-d^2 / 2)` in task order.
    pub posterior: Vec<f64>,
    /// `d_b(x)^2` to the base model's own text, when the router models it.
    pub background: Option<f64>,
    /// The nearest task's margin: the feature is the base model's when
    /// `background + margin` is below that task's distance.
    pub margin: f64,
}

impl TaskIdentifier {
    /// A router for features of width `dim` that knows no task, whose
    /// ranges keep `quantile` of each task's own features.
    pub fn new(dim: usize, quantile: f64) -> Self {
        Self {
            dim,
            quantile,
            ..Self::default()
        }
    }

    /// Rebuilds a saved router; `None` when the parts do not fit together.
    pub fn from_parts(
        dim: usize,
        quantile: f64,
        tasks: Vec<TaskStats>,
        background: Option<TaskStats>,
    ) -> Option<Self> {
        if tasks
            .iter()
            .chain(&background)
            .any(|t| t.mean.len() != dim || t.scatter.len() != dim * dim)
        {
            return None;
        }
        let mut router = Self {
            dim,
            quantile,
            tasks,
            background,
            ..Self::default()
        };
        router.solve();
        Some(router)
    }

    /// Feature width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The tasks' statistics, in task order.
    pub fn tasks(&self) -> &[TaskStats] {
        &self.tasks
    }

    /// The statistics of the base model's own text, when the router models it.
    pub fn background(&self) -> Option<&TaskStats> {
        self.background.as_ref()
    }

    /// Models the base model's own text by `stats` (of features of this
    /// router's width, [`TaskStats::of_features`]); every task's threshold
    /// follows the new covariance.
    pub fn set_background(&mut self, stats: TaskStats) {
        self.background = Some(stats);
        self.solve();
    }

    /// Each task's threshold under the present covariance.
    pub fn thresholds(&self) -> &[f64] {
        &self.thresholds
    }

    /// Adds a task from its training features (`[n, d]` row-major), with the
    /// threshold at the router's quantile of their cross-fitted distances. The heavy
    /// products (the scatters, every feature's distance) run on `device`.
    ///
    /// # Panics
    /// On no rows or rows of another width (programmer errors).
    pub async fn add_task(&mut self, features: &[f32], device: &Device) -> Result<(), MoseError> {
        let quantile = self.quantile;
        let stats = TaskStats::of_features(features, self.dim, device).await?;
        let mut own = self.held_out_distances(features, device).await?;
        self.tasks.push(stats);
        self.solve();
        let t = self.tasks.len() - 1;
        // thresholds[t] is the mean distance while the range is 1.
        let mean_distance = self.thresholds[t].max(f64::MIN_POSITIVE);
        self.tasks[t].range = match own.is_empty() {
            true => f64::MAX / mean_distance.max(1.0),
            false => quantile_of(&mut own, quantile) / mean_distance,
        };
        self.thresholds[t] = self.tasks[t].range * mean_distance;
        Ok(())
    }

    /// Each feature's distance to its task as held-out text would have it:
    /// the rows are split in two halves, and each half is measured against
    /// the mean and the pooled covariance fitted without it (the other
    /// tasks' scatter and the other half's). Distances measured with the
    /// same rows in the fit would be too small, and the range too tight, for
    /// a task with few samples. Empty with fewer than 4 rows.
    async fn held_out_distances(
        &self,
        features: &[f32],
        device: &Device,
    ) -> Result<Vec<f64>, MoseError> {
        let d = self.dim;
        let rows: Vec<&[f32]> = features.chunks_exact(d).collect();
        if rows.len() < 4 {
            return Ok(Vec::new());
        }
        let others = Pooled::of(self, true);
        let mut distances = Vec::with_capacity(rows.len());
        for (fit, held) in folds(rows.len()) {
            let fold = others.fit(&gather(&rows, &fit), d, device).await?;
            let m = held.len();
            let held =
                Tensor::<2>::from_data(TensorData::new(gather(&rows, &held), [m, d]), device);
            let mean = Tensor::<2>::from_data(TensorData::new(fold.mean, [1, d]), device);
            // z = L^-1 (x - mu) for every row: (x - mu) L^-T.
            let z = (held - mean).matmul(fold.inverse.transpose()); // [m, d]
            let found = read_vec(z.square().sum_dim(1).reshape([m])).await?;
            distances.extend(found.iter().map(|&v| v as f64));
        }
        Ok(distances)
    }

    /// How often the router would take a new task's training features
    /// (`[n, d]` row-major) for each learned task: the share of the first
    /// `judged` rows (whole examples) nearer to that task's mean than to the
    /// new task's own mean. A high share means the router cannot tell the
    /// new text from that task's. Like for like, as the router will hold
    /// both once the new task is learned, and as held-out text would be
    /// judged (two folds: each half of the rows against a mean and a
    /// covariance fitted on the other half; fitted on the rows it judges, a
    /// covariance of many directions and few rows takes them for its own):
    ///
    /// - the own mean is of every row (whole examples and their prefixes),
    ///   as each learned task's mean is; the prefixes are not judged (the
    ///   first tokens of unlike texts are alike more often);
    /// - the covariance is the one pooled over the learned tasks and the new
    ///   one (not the background, whose broad spread is there to set tasks
    ///   apart from the base model's own text, and would part a small task's
    ///   two halves on directions a few samples fix). Without the new task's
    ///   own spread, its text is measured on the earlier tasks' directions
    ///   alone, which a different text does not follow: 30% of the Bible's
    ///   passages were nearer Shakespeare's mean than their own, against
    ///   1.6% with it.
    ///
    /// The related sequence's two halves of the Bible (odd and even
    /// chapters) share 44%; its two halves of Shakespeare's plays 18%; the
    /// starter packs, at most 2.9%. The products run on `device`.
    pub async fn confusion_with(
        &self,
        features: &[f32],
        judged: usize,
        device: &Device,
    ) -> Result<Vec<f64>, MoseError> {
        let d = self.dim;
        let rows: Vec<&[f32]> = features.chunks_exact(d.max(1)).collect();
        let judged = judged.min(rows.len());
        if self.tasks.is_empty() || rows.len() < 4 || judged < 2 {
            return Ok(vec![0.0; self.tasks.len()]);
        }
        // Two folds: each half's rows are judged against a mean and a
        // covariance fitted on the other half, as held-out text would be.
        let others = Pooled::of(self, false);
        let mut nearer = vec![0usize; self.tasks.len()];
        for (fit, held) in folds(rows.len()) {
            let fold = others.fit(&gather(&rows, &fit), d, device).await?;
            let own = whiten_with(&fold.factor, &fold.mean, d);
            let means: Vec<Vec<f64>> = self
                .tasks
                .iter()
                .map(|t| whiten_with(&fold.factor, &t.mean, d))
                .collect();
            let held: Vec<usize> = held.into_iter().filter(|&i| i < judged).collect();
            let m = held.len();
            let held =
                Tensor::<2>::from_data(TensorData::new(gather(&rows, &held), [m, d]), device);
            let z = read_vec(held.matmul(fold.inverse.transpose())).await?; // [m, d]: L^-1 x
            for row in z.chunks_exact(d) {
                let own = squared_distance_f32(row, &own);
                let (t, best) = means
                    .iter()
                    .map(|mean| squared_distance_f32(row, mean))
                    .enumerate()
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .expect("tasks are learned");
                if best < own {
                    nearer[t] += 1;
                }
            }
        }
        Ok(nearer.iter().map(|&c| c as f64 / judged as f64).collect())
    }

    /// Squared distances and posterior of one feature `[d]`; `None` before
    /// any task is learned.
    pub fn identify(&self, feature: &[f32]) -> Option<Identification> {
        if self.tasks.is_empty() || feature.len() != self.dim {
            return None;
        }
        let z = self.whiten(feature);
        let distances: Vec<f64> = (0..self.tasks.len())
            .map(|t| self.distance_to(&z, t))
            .collect();
        let background = self
            .whitened_background
            .as_ref()
            .map(|mean| squared_distance(&z, mean));
        let (nearest, best) = distances
            .iter()
            .copied()
            .enumerate()
            .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
        let exp: Vec<f64> = distances
            .iter()
            .map(|d| (-(d - best) / 2.0).exp())
            .collect();
        let total: f64 = exp.iter().sum();
        let posterior = exp.iter().map(|e| e / total).collect();
        Some(Identification {
            distances,
            posterior,
            background,
            margin: self.margins.get(nearest).copied().unwrap_or(0.0),
        })
    }

    /// `|z - L^-1 mu_t|^2`.
    fn distance_to(&self, z: &[f64], t: usize) -> f64 {
        squared_distance(z, &self.whitened_means[t])
    }

    /// `L^-1 x`.
    fn whiten<T: Copy + Into<f64>>(&self, x: &[T]) -> Vec<f64> {
        whiten_with(&self.inverse_factor, x, self.dim)
    }

    /// Features behind the pooled covariance: every task's and the background's.
    fn features_counted(&self, background: bool) -> f64 {
        self.pooled(background).map(|t| t.count).sum()
    }

    /// The statistics the covariance pools: every task's, and the
    /// background's with `background`.
    fn pooled(&self, background: bool) -> impl Iterator<Item = &TaskStats> {
        self.tasks
            .iter()
            .chain(self.background.as_ref().filter(|_| background))
    }

    /// `S = sum_t S_t` (and the background's with `background`), `[d, d]` row-major.
    fn pooled_scatter(&self, background: bool) -> Vec<f64> {
        let mut pooled = vec![0.0f64; self.dim * self.dim];
        for task in self.pooled(background) {
            for (p, s) in pooled.iter_mut().zip(&task.scatter) {
                *p += s;
            }
        }
        pooled
    }

    /// Shrinks the pooled covariance, factors it, whitens the means and
    /// scales each task's range to the new covariance: its threshold is
    /// `range * tr(C^-1 S_t) / n_t`.
    fn solve(&mut self) {
        let d = self.dim;
        let n = self.features_counted(true);
        self.inverse_factor = shrunk_inverse_factor(&self.pooled_scatter(true), n, d);
        self.whitened_means = self.tasks.iter().map(|t| self.whiten(&t.mean)).collect();
        self.whitened_background = self.background.as_ref().map(|b| self.whiten(&b.mean));
        // C^-1 = L^-T L^-1, lower triangle (both factors are triangular).
        let l = &self.inverse_factor;
        let mut precision = vec![0.0f64; d * d];
        for k in 0..d {
            let row = &l[k * d..k * d + k + 1];
            for i in 0..=k {
                let lki = row[i];
                let out = &mut precision[i * d..i * d + i + 1];
                for (p, &lkj) in out.iter_mut().zip(row) {
                    *p += lki * lkj;
                }
            }
        }
        self.thresholds = self
            .tasks
            .iter()
            .map(|t| {
                // tr(C^-1 S_t) over the lower triangle, off-diagonal twice.
                let mut trace = 0.0f64;
                for i in 0..d {
                    let (p, s) = (
                        &precision[i * d..i * d + i + 1],
                        &t.scatter[i * d..i * d + i + 1],
                    );
                    let off: f64 = p[..i].iter().zip(&s[..i]).map(|(a, b)| a * b).sum();
                    trace += 2.0 * off + p[i] * s[i];
                }
                t.range * (trace / t.count.max(1.0))
            })
            .collect();
        self.margins = self.background_margins();
    }

    /// Each task's margin over the background. Between task `t` and the
    /// background the router decides by `r(x) = d_t(x)^2 - d_b(x)^2`, which
    /// is linear in `x`: over the task's own features its mean is
    /// `-|L^-1 (mu_t - mu_b)|^2` and its variance `4 v^T (S_t / n_t) v`
    /// with `v = L^-T L^-1 (mu_b - mu_t)`, both from the statistics under
    /// the present covariance. The margin is that distribution's quantile
    /// (a normal one: `r` sums hundreds of features' terms), and never
    /// below 0: the nearer of the two still wins unless the task's own
    /// features spread past the midpoint, where the margin keeps the
    /// quantile of them with the task.
    fn background_margins(&self) -> Vec<f64> {
        let (Some(b), d) = (&self.whitened_background, self.dim) else {
            return vec![0.0; self.tasks.len()];
        };
        let z = normal_quantile(self.quantile);
        self.tasks
            .iter()
            .zip(&self.whitened_means)
            .map(|(task, a)| {
                let u: Vec<f64> = b.iter().zip(a).map(|(b, a)| b - a).collect();
                // v = (L^-1)^T u: row k of L^-1 adds u_k times its entries.
                let mut v = vec![0.0f64; d];
                for (k, &uk) in u.iter().enumerate() {
                    let row = &self.inverse_factor[k * d..k * d + k + 1];
                    for (vj, l) in v.iter_mut().zip(row) {
                        *vj += l * uk;
                    }
                }
                let spread: f64 = task
                    .scatter
                    .chunks_exact(d)
                    .zip(&v)
                    .map(|(row, vi)| vi * row.iter().zip(&v).map(|(s, vj)| s * vj).sum::<f64>())
                    .sum();
                let sd = 2.0 * (spread.max(0.0) / task.count.max(1.0)).sqrt();
                let mean = -u.iter().map(|x| x * x).sum::<f64>();
                (mean + z * sd).max(0.0)
            })
            .collect()
    }
}

/// `L^-1 x` for the lower-triangular `L^-1` (`inverse_factor`, `[d, d]` row-major).
fn whiten_with<T: Copy + Into<f64>>(inverse_factor: &[f64], x: &[T], d: usize) -> Vec<f64> {
    (0..d)
        .map(|i| {
            let row = &inverse_factor[i * d..i * d + i + 1];
            row.iter().zip(x).map(|(l, &x)| l * x.into()).sum()
        })
        .collect()
}

/// The standard normal's `p`-quantile (Acklam's rational approximation,
/// relative error below 1.2e-9), for `p` in (0, 1); clamped to +-8 outside.
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.024_25;
    if p.is_nan() || p <= 0.0 {
        return -8.0;
    }
    if p >= 1.0 {
        return 8.0;
    }
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The mean `[d]` and scatter `[d, d]` of `features` (`[n, d]` row-major),
/// computed on `device`.
async fn moments(
    features: &[f32],
    d: usize,
    device: &Device,
) -> Result<(Vec<f32>, Vec<f32>), MoseError> {
    let n = features.len() / d;
    let rows = Tensor::<2>::from_data(TensorData::new(features.to_vec(), [n, d]), device);
    let mean = rows.clone().mean_dim(0); // [1, d]
    let centred = rows - mean.clone(); // [n, d]
    let scatter = centred.clone().transpose().matmul(centred); // [d, d]
    let mut values = read_vec(Tensor::cat(
        vec![mean.reshape([d]), scatter.reshape([d * d])],
        0,
    ))
    .await?;
    let scatter = values.split_off(d);
    Ok((values, scatter))
}

/// `L^-1` for the covariance `scatter / n` shrunk by OAS towards
/// `(tr C / d) I`, `[d, d]` row-major.
fn shrunk_inverse_factor(scatter: &[f64], n: f64, d: usize) -> Vec<f64> {
    let n = n.max(1.0);
    let cov: Vec<f64> = scatter.iter().map(|s| s / n).collect();
    let trace: f64 = (0..d).map(|i| cov[i * d + i]).sum();
    let mu = trace / d as f64;
    // OAS: alpha = mean of the squared entries; rho = (alpha + mu^2) /
    // ((n + 1)(alpha - mu^2 / d)), at most 1.
    let alpha = cov.iter().map(|c| c * c).sum::<f64>() / (d * d) as f64;
    let denominator = (n + 1.0) * (alpha - mu * mu / d as f64);
    let rho = if denominator > 0.0 {
        ((alpha + mu * mu) / denominator).min(1.0)
    } else {
        1.0
    };
    // A floor keeps a router of identical features (mu = 0) finite.
    let diagonal = (rho * mu).max(f64::MIN_POSITIVE.sqrt());
    let mut shrunk: Vec<f64> = cov.iter().map(|c| (1.0 - rho) * c).collect();
    for i in 0..d {
        shrunk[i * d + i] += diagonal;
    }
    lower_inverse(&cholesky(shrunk, d), d)
}

/// The lower Cholesky factor of a symmetric positive-definite `[d, d]`
/// matrix (a pivot that rounding makes non-positive is clamped small).
fn cholesky(mut a: Vec<f64>, d: usize) -> Vec<f64> {
    for j in 0..d {
        let pivot: f64 = a[j * d + j] - (0..j).map(|k| a[j * d + k].powi(2)).sum::<f64>();
        let pivot = pivot.max(f64::MIN_POSITIVE.sqrt()).sqrt();
        a[j * d + j] = pivot;
        for i in j + 1..d {
            let dot: f64 = (0..j).map(|k| a[i * d + k] * a[j * d + k]).sum();
            a[i * d + j] = (a[i * d + j] - dot) / pivot;
        }
        for k in j + 1..d {
            a[j * d + k] = 0.0;
        }
    }
    a
}

/// The inverse of a lower-triangular `[d, d]` matrix (lower triangular too),
/// by forward substitution on each column of the identity.
fn lower_inverse(l: &[f64], d: usize) -> Vec<f64> {
    let mut inverse = vec![0.0f64; d * d];
    for j in 0..d {
        inverse[j * d + j] = 1.0 / l[j * d + j];
        for i in j + 1..d {
            let dot: f64 = (j..i).map(|k| l[i * d + k] * inverse[k * d + j]).sum();
            inverse[i * d + j] = -dot / l[i * d + i];
        }
    }
    inverse
}

/// `|a - b|^2`.
/// The two folds of `n` rows, as `(fit, held)` index lists: the even rows
/// fitted and the odd ones held out, then the other way round.
fn folds(n: usize) -> [(Vec<usize>, Vec<usize>); 2] {
    let half = |parity: usize| -> Vec<usize> { (parity..n).step_by(2).collect() };
    [(half(0), half(1)), (half(1), half(0))]
}

/// The rows `indices` of `rows`, as one row-major vector.
fn gather(rows: &[&[f32]], indices: &[usize]) -> Vec<f32> {
    indices
        .iter()
        .flat_map(|&i| rows[i].iter().copied())
        .collect()
}

/// The learned statistics a new task's rows are pooled with: the tasks'
/// scatter (and the background's, where asked) and how many rows it sums.
struct Pooled {
    scatter: Vec<f64>,
    count: f64,
}

/// What one fold of a new task's rows is measured against.
struct Fold {
    /// The fitted rows' mean, `[d]`.
    mean: Vec<f32>,
    /// `L^-1` of the covariance pooled with the fitted rows' scatter, `[d, d]` row-major.
    factor: Vec<f64>,
    /// `factor` on the device.
    inverse: Tensor<2>,
}

impl Pooled {
    fn of(identifier: &TaskIdentifier, background: bool) -> Self {
        Self {
            scatter: identifier.pooled_scatter(background),
            count: identifier.features_counted(background),
        }
    }

    /// The mean of `fit` (`[n, d]` rows) and the inverse factor of the
    /// covariance pooled with its scatter.
    async fn fit(&self, fit: &[f32], d: usize, device: &Device) -> Result<Fold, MoseError> {
        let (mean, scatter) = moments(fit, d, device).await?;
        let pooled: Vec<f64> = self
            .scatter
            .iter()
            .zip(&scatter)
            .map(|(a, &b)| a + b as f64)
            .collect();
        let factor = shrunk_inverse_factor(&pooled, self.count + (fit.len() / d) as f64, d);
        let inverse: Vec<f32> = factor.iter().map(|&v| v as f32).collect();
        let inverse = Tensor::<2>::from_data(TensorData::new(inverse, [d, d]), device);
        Ok(Fold {
            mean,
            factor,
            inverse,
        })
    }
}

fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// [`squared_distance`] from a row read back from the device.
fn squared_distance_f32(a: &[f32], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(&x, y)| (x as f64 - y).powi(2)).sum()
}

/// The `q` quantile of `values` (nearest rank, rounding up), reordering them.
fn quantile_of(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((q.clamp(0.0, 1.0) * values.len() as f64).ceil() as usize).max(1);
    values[rank.min(values.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(router: &mut TaskIdentifier, features: &[f32]) {
        pollster::block_on(router.add_task(features, &Device::flex())).unwrap();
    }

    #[test]
    fn the_lower_inverse_inverts() {
        let l = [2.0, 0.0, 1.0, 4.0];
        let inverse = lower_inverse(&l, 2);
        // [[2, 0], [1, 4]]^-1 = [[1/2, 0], [-1/8, 1/4]].
        assert_eq!(inverse, vec![0.5, 0.0, -0.125, 0.25]);
    }

    #[test]
    fn cholesky_factors_a_known_matrix() {
        // [[4, 2], [2, 3]] = L L^T with L = [[2, 0], [1, sqrt 2]].
        let l = cholesky(vec![4.0, 2.0, 2.0, 3.0], 2);
        let expected = [2.0, 0.0, 1.0, 2f64.sqrt()];
        for (a, b) in l.iter().zip(expected) {
            assert!((a - b).abs() < 1e-12, "{l:?}");
        }
    }

    /// Two tasks in 2-D around (0, 0) and (10, 0), spread 1 along x.
    fn two_clusters() -> TaskIdentifier {
        let mut router = TaskIdentifier::new(2, 1.0);
        add(&mut router, &[-1.0, 0.5, 1.0, -0.5, 0.0, 0.0, 0.5, 0.2]);
        add(&mut router, &[9.0, 0.5, 11.0, -0.5, 10.0, 0.0, 10.5, 0.2]);
        router
    }

    #[test]
    fn the_nearest_task_wins_and_far_features_are_no_task() {
        let router = two_clusters();
        let near = router.identify(&[9.5, 0.1]).unwrap();
        assert!(near.distances[1] < near.distances[0]);
        assert!(near.posterior[1] > 0.99);
        assert!(near.distances[1] <= router.thresholds()[1]);
        let far = router.identify(&[5.0, 40.0]).unwrap();
        let best = far.distances.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(best > router.thresholds()[0] && best > router.thresholds()[1]);
    }

    #[test]
    fn a_feature_like_the_base_models_own_text_is_nearest_the_background() {
        // The base model's own text around (5, 10): a point near (5, 9) is
        // nearer it than either task; one near (9.5, 0) stays with task 1.
        let mut router = two_clusters();
        let before = router.thresholds().to_vec();
        let own = [4.0f32, 10.5, 6.0, 9.5, 5.0, 10.0, 5.5, 10.2];
        let stats = pollster::block_on(TaskStats::of_features(&own, 2, &Device::flex())).unwrap();
        router.set_background(stats);
        assert_ne!(
            router.thresholds(),
            &before[..],
            "the ranges follow the new covariance"
        );
        let generic = router.identify(&[5.0, 9.0]).unwrap();
        let nearest = generic
            .distances
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        assert!(generic.background.unwrap() < nearest, "{generic:?}");
        let task = router.identify(&[9.5, 0.1]).unwrap();
        assert!(task.distances[1] < task.background.unwrap(), "{task:?}");
    }

    #[test]
    fn a_task_keeps_its_own_features_that_spread_past_the_background() {
        // A task spread widely along x around 0, the base model's own text
        // tight around (4, 0): (3, 0) is nearer the background, yet a point
        // the task's own features reach; the margin keeps it the task's.
        let mut router = TaskIdentifier::new(2, 0.99);
        add(
            &mut router,
            &[-3.0, 0.1, -1.0, -0.1, 0.0, 0.0, 1.0, 0.1, 3.0, -0.1],
        );
        let own = [3.5f32, 0.05, 4.0, -0.05, 4.5, 0.0];
        let stats = pollster::block_on(TaskStats::of_features(&own, 2, &Device::flex())).unwrap();
        router.set_background(stats);
        let edge = router.identify(&[3.0, 0.0]).unwrap();
        let background = edge.background.unwrap();
        assert!(background < edge.distances[0], "{edge:?}");
        assert!(background + edge.margin > edge.distances[0], "{edge:?}");
        // Past the background, the task's spread no longer reaches.
        let beyond = router.identify(&[7.0, 0.0]).unwrap();
        assert!(
            beyond.background.unwrap() + beyond.margin < beyond.distances[0],
            "{beyond:?}"
        );
        // Tight tasks far from the background need no margin.
        let mut tight = two_clusters();
        let own = [4.0f32, 10.5, 6.0, 9.5, 5.0, 10.0, 5.5, 10.2];
        let stats = pollster::block_on(TaskStats::of_features(&own, 2, &Device::flex())).unwrap();
        tight.set_background(stats);
        assert_eq!(tight.margins, vec![0.0, 0.0]);
    }

    #[test]
    fn the_normal_quantile_matches_known_values() {
        for (p, z) in [
            (0.5, 0.0),
            (0.975, 1.959_964),
            (0.99, 2.326_348),
            (0.01, -2.326_348),
        ] {
            assert!(
                (normal_quantile(p) - z).abs() < 1e-5,
                "{p}: {}",
                normal_quantile(p)
            );
        }
    }

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let mut v = vec![5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(quantile_of(&mut v, 0.99), 5.0);
        assert_eq!(quantile_of(&mut v, 0.5), 3.0);
        assert_eq!(quantile_of(&mut v, 0.0), 1.0);
    }

    #[test]
    fn a_rebuilt_router_identifies_exactly_as_the_original() {
        let mut router = TaskIdentifier::new(3, 0.9);
        add(&mut router, &[1.0, 0.0, 0.5, 0.8, 0.1, 0.4, 1.2, -0.1, 0.6]);
        add(&mut router, &[0.0, 1.0, 0.5, 0.1, 0.9, 0.7, -0.2, 1.1, 0.3]);
        let copy = TaskIdentifier::from_parts(3, 0.9, router.tasks().to_vec(), None).unwrap();
        assert_eq!(copy, router);
        assert!(TaskIdentifier::from_parts(2, 0.9, router.tasks().to_vec(), None).is_none());
        let background = [0.5f32, 0.5, 0.0, 0.4, 0.6, 0.1, 0.6, 0.4, -0.1];
        let stats =
            pollster::block_on(TaskStats::of_features(&background, 3, &Device::flex())).unwrap();
        router.set_background(stats);
        let stats = router.background().cloned();
        let copy = TaskIdentifier::from_parts(3, 0.9, router.tasks().to_vec(), stats).unwrap();
        assert_eq!(copy, router);
    }

    #[test]
    fn a_later_task_rescales_an_earlier_range_with_the_covariance() {
        // Task 0's features spread 1 along x; task 1's spread 10: the pooled
        // covariance grows, task 0's distances shrink, and so must its range.
        let mut router = TaskIdentifier::new(2, 1.0);
        add(
            &mut router,
            &[-1.0, 0.1, 1.0, -0.1, 0.5, 0.0, -0.5, 0.05, 0.8, -0.05],
        );
        let alone = router.thresholds()[0];
        add(
            &mut router,
            &[40.0, 1.0, 60.0, -1.0, 45.0, 0.5, 55.0, -0.5, 50.0, 0.0],
        );
        assert!(
            router.thresholds()[0] < alone,
            "{} !< {alone}",
            router.thresholds()[0]
        );
    }
}
