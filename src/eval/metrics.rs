//! Continual-learning metrics over an R matrix (docs/METHOD.md, "Metrics"), after
//! GEM (Lopez-Paz and Ranzato, 2017) and TRACE (Wang et al., 2023).
//!
//! `R[i][j]` is the score on task `j` after learning tasks `0..=i` (0-based
//! here; docs/METHOD.md counts from 1). The score is the mean per-token
//! log-likelihood on the held-out split, in nats (higher is better), so a
//! negative BWT is forgetting in nats per token.

use serde::{Deserialize, Serialize};

/// ACC, BWT, FWT and forgetting of one R matrix.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `mean_j R[T][j]`: the score on every task after the last.
    pub acc: f64,
    /// GEM's backward transfer, `mean_{j<T} (R[T][j] - R[j][j])` (normalised
    /// by `T - 1`); `None` with one task.
    pub bwt: Option<f64>,
    /// TRACE's form, the same sum normalised by `T`.
    pub bwt_trace: f64,
    /// Forward transfer, `mean_{j>1} (R[j-1][j] - R_base[j])`; `None` with one task.
    pub fwt: Option<f64>,
    /// Forgetting, `mean_{j<T} (max_{l<T} R[l][j] - R[T][j])`; `None` with one task.
    pub forgetting: Option<f64>,
}

/// The metrics of `r` given the base model's scores `base`.
///
/// Row `i` of `r` holds the scores after learning tasks `0..=i`: at least
/// `i + 1` of them, and those of later tasks when they existed then (a task
/// a person adds after some learning has no score in the earlier rows).
/// Forward transfer averages over the tasks that were scored just before
/// they were learned; it is `None` when there is none.
///
/// # Panics
/// If `r` is empty, a row is shorter than its learned tasks, or `base` has
/// fewer scores than `r` has rows: these are programmer errors.
pub fn summarize(r: &[Vec<f64>], base: &[f64]) -> Summary {
    let t = r.len();
    assert!(t > 0, "an R matrix needs at least one task");
    assert!(
        r.iter().enumerate().all(|(i, row)| row.len() > i),
        "row i of the R matrix scores at least tasks 0..=i"
    );
    assert!(base.len() >= t, "one base score per learned task");
    let last = &r[t - 1][..t];
    let acc = mean(last.iter().copied());
    let backward: f64 = (0..t - 1).map(|j| last[j] - r[j][j]).sum();
    let earlier = t > 1;
    let forward: Vec<f64> = (1..t)
        .filter(|&j| r[j - 1].len() > j)
        .map(|j| r[j - 1][j] - base[j])
        .collect();
    Summary {
        acc,
        bwt: earlier.then(|| backward / (t - 1) as f64),
        bwt_trace: backward / t as f64,
        fwt: (!forward.is_empty()).then(|| mean(forward.into_iter())),
        forgetting: earlier.then(|| {
            mean((0..t - 1).map(|j| {
                let best = (0..t - 1)
                    .map(|l| r[l][j])
                    .fold(f64::NEG_INFINITY, f64::max);
                best - last[j]
            }))
        }),
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    sum / n.max(1) as f64
}

/// Per-sample routing decisions against the true task: `counts[true][chosen]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Confusion {
    /// `counts[i][j]`: samples of task `i` routed to task `j`.
    pub counts: Vec<Vec<usize>>,
    /// `none[i]`: samples of task `i` the router sent to no task ("none of
    /// these": the base model answered them).
    #[serde(default)]
    pub none: Vec<usize>,
}

impl Confusion {
    /// An empty `tasks x tasks` matrix.
    pub fn new(tasks: usize) -> Self {
        Self {
            counts: vec![vec![0; tasks]; tasks],
            none: vec![0; tasks],
        }
    }

    /// Records one sample of task `truth` routed to `chosen`, or to no task.
    pub fn add(&mut self, truth: usize, chosen: Option<usize>) {
        match chosen {
            Some(chosen) => self.counts[truth][chosen] += 1,
            None => self.none[truth] += 1,
        }
    }

    /// Fraction of all samples routed to their own task (`None` without samples).
    pub fn accuracy(&self) -> Option<f64> {
        let total: usize = self.counts.iter().flatten().chain(&self.none).sum();
        let right: usize = (0..self.counts.len()).map(|i| self.counts[i][i]).sum();
        (total > 0).then(|| right as f64 / total as f64)
    }

    /// Per task, the fraction of its samples routed to it (`None` for a task without samples).
    pub fn per_task(&self) -> Vec<Option<f64>> {
        self.counts
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let total: usize = row.iter().sum::<usize>() + self.none.get(i).unwrap_or(&0);
                (total > 0).then(|| row[i] as f64 / total as f64)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn metrics_of_a_three_task_matrix_match_the_hand_computed_values() {
        // R (rows: after task 0, 1, 2; columns: task 0, 1, 2), base scores b.
        let r = vec![
            vec![-1.0, -3.0, -4.0],
            vec![-1.5, -1.2, -3.5],
            vec![-2.0, -1.4, -0.8],
        ];
        let base = vec![-3.0, -3.2, -3.9];
        let s = summarize(&r, &base);
        // ACC = (-2.0 - 1.4 - 0.8) / 3 = -1.4
        close(s.acc, -1.4);
        // BWT sum = (R20 - R00) + (R21 - R11) = (-2.0 + 1.0) + (-1.4 + 1.2) = -1.2
        // GEM: -1.2 / 2 = -0.6; TRACE: -1.2 / 3 = -0.4
        close(s.bwt.unwrap(), -0.6);
        close(s.bwt_trace, -0.4);
        // FWT = ((R01 - b1) + (R12 - b2)) / 2 = ((-3.0 + 3.2) + (-3.5 + 3.9)) / 2 = 0.3
        close(s.fwt.unwrap(), 0.3);
        // Forgetting: task 0: max(R00, R10) - R20 = -1.0 + 2.0 = 1.0;
        // task 1: max(R01, R11) - R21 = -1.2 + 1.4 = 0.2; mean 0.6.
        close(s.forgetting.unwrap(), 0.6);
    }

    #[test]
    fn a_task_added_after_learning_began_has_no_forward_transfer() {
        // Task 2 was added after task 0 was learned, so row 0 never scored
        // it; task 1 was there from the start. A fourth task is not learned.
        let r = vec![
            vec![-1.0, -3.0],
            vec![-1.5, -1.2, -3.5, -4.0],
            vec![-2.0, -1.4, -0.8, -3.9],
        ];
        let base = vec![-3.0, -3.2, -3.9, -4.1];
        let s = summarize(&r, &base);
        close(s.acc, -1.4);
        close(s.bwt.unwrap(), -0.6);
        // Only R01 - b1 and R12 - b2 exist: the same as the square case.
        close(s.fwt.unwrap(), 0.3);
        let r = vec![vec![-1.0], vec![-1.5, -1.2]];
        assert_eq!(summarize(&r, &base).fwt, None);
    }

    #[test]
    fn one_task_has_accuracy_but_no_transfer() {
        let s = summarize(&[vec![-2.5]], &[-3.0]);
        close(s.acc, -2.5);
        close(s.bwt_trace, 0.0);
        assert_eq!((s.bwt, s.fwt, s.forgetting), (None, None, None));
    }

    #[test]
    fn confusion_counts_and_accuracies() {
        let mut c = Confusion::new(3);
        for (truth, chosen) in [(0, 0), (0, 0), (0, 1), (1, 1), (2, 2), (2, 0)] {
            c.add(truth, Some(chosen));
        }
        c.add(1, None);
        // 4 of 7 right; task 0: 2/3, task 1: 1/2 (one sent to no task), task 2: 1/2.
        close(c.accuracy().unwrap(), 4.0 / 7.0);
        assert_eq!(c.none, vec![0, 1, 0]);
        let per_task = c.per_task();
        close(per_task[0].unwrap(), 2.0 / 3.0);
        close(per_task[1].unwrap(), 0.5);
        close(per_task[2].unwrap(), 0.5);
        assert_eq!(Confusion::new(2).accuracy(), None);
    }
}
