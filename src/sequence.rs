//! A continual sequence: learn tasks one after another and score every task
//! after each, routed and with the oracle, to fill the R matrices of docs/METHOD.md
//! ("Metrics"): the reports and the scoring. The session (`session.rs`)
//! learns each task and calls the scoring here, for the CLI and the app alike.

use serde::{Deserialize, Serialize};

use crate::data::Example;
use crate::eval::metrics::{Confusion, Summary, summarize};
use crate::eval::{Routing, TaskScore, score_task};
use crate::model::FrozenBase;
use crate::mose::{Capacity, Learner, Method, MoseError};

/// One task of a sequence: its name and its tokenized splits.
#[derive(Debug, Clone, Copy)]
pub struct SequenceTask<'a> {
    /// The task's name.
    pub name: &'a str,
    /// Examples to learn from.
    pub train: &'a [Example],
    /// Examples to score.
    pub heldout: &'a [Example],
}

/// The scores of one method over a sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceReport {
    /// The method.
    pub method: Method,
    /// Task names, in learning order.
    pub tasks: Vec<String>,
    /// The frozen base model on each task.
    pub base: Vec<TaskScore>,
    /// `routed[i][j]`: task `j` after learning tasks `0..=i`, routed.
    pub routed: Vec<Vec<TaskScore>>,
    /// The same with the true task id.
    pub oracle: Vec<Vec<TaskScore>>,
    /// Capacity after each task.
    pub capacity: Vec<Capacity>,
    /// Wall-clock seconds for the whole sequence.
    pub seconds: f64,
}

impl SequenceReport {
    /// The R matrix of mean log-likelihoods.
    pub fn r_matrix(&self, routing: Routing) -> Vec<Vec<f64>> {
        self.scores(routing)
            .iter()
            .map(|row| row.iter().map(|s| s.log_likelihood).collect())
            .collect()
    }

    /// ACC, BWT, FWT and forgetting.
    pub fn summary(&self, routing: Routing) -> Summary {
        let base: Vec<f64> = self.base.iter().map(|s| s.log_likelihood).collect();
        summarize(&self.r_matrix(routing), &base)
    }

    /// Where the router sent each held-out sample of the learned tasks after
    /// the last one, or `None` for methods without a router. Tasks not
    /// learned yet are left out: for them no task is the right answer.
    pub fn confusion(&self) -> Option<Confusion> {
        if !self.method.is_routed() {
            return None;
        }
        let last = self.routed.last()?;
        let mut confusion = Confusion::new(self.tasks.len());
        for (truth, score) in last.iter().enumerate().take(self.routed.len()) {
            for &chosen in &score.routed_to {
                confusion.add(truth, chosen);
            }
        }
        Some(confusion)
    }

    fn scores(&self, routing: Routing) -> &[Vec<TaskScore>] {
        match routing {
            Routing::Routed => &self.routed,
            Routing::Oracle => &self.oracle,
        }
    }
}

impl SequenceReport {
    /// The report of `method` before it has learned anything.
    pub fn new(method: Method) -> Self {
        Self {
            method,
            tasks: Vec::new(),
            base: Vec::new(),
            routed: Vec::new(),
            oracle: Vec::new(),
            capacity: Vec::new(),
            seconds: 0.0,
        }
    }

    /// Checks that the report's parts fit together (a report read from a
    /// file), so that nothing computed from it can go out of bounds.
    ///
    /// # Errors
    /// What does not fit, in words.
    pub fn check(&self) -> Result<(), String> {
        let (learned, tasks) = (self.learned(), self.tasks.len());
        if self.oracle.len() != learned || self.capacity.len() != learned {
            return Err("its rows of scores and capacities differ in number".into());
        }
        if learned > tasks || self.base.len() > tasks || self.base.len() < learned {
            return Err("it scores more or fewer tasks than it names".into());
        }
        for (i, (routed, oracle)) in self.routed.iter().zip(&self.oracle).enumerate() {
            if routed.len() != oracle.len() || routed.len() <= i || routed.len() > tasks {
                return Err(format!("its row {i} has {} scores", routed.len()));
            }
            let chosen = routed
                .iter()
                .flat_map(|score| score.routed_to.iter().flatten());
            if chosen.clone().any(|&t| t > i) {
                return Err(format!("its row {i} routes to a task not learned then"));
            }
        }
        Ok(())
    }

    /// How many tasks have been learned and scored.
    pub fn learned(&self) -> usize {
        self.routed.len()
    }

    /// Drops every score of a task not learned yet (the columns after the
    /// learned ones, and their base scores), for when such tasks are
    /// removed or reordered: they are scored afresh before the next task is
    /// learned.
    pub fn forget_unlearned(&mut self) {
        let learned = self.learned();
        self.tasks.truncate(learned);
        self.base.truncate(learned);
        for row in self.routed.iter_mut().chain(self.oracle.iter_mut()) {
            row.truncate(learned);
        }
    }
}

/// Scores the frozen base model on each task of `tasks` that `report` has
/// no base score for yet.
///
/// # Errors
/// [`MoseError`] when the device cannot hand the scores back.
pub async fn score_base(
    base: FrozenBase<'_>,
    report: &mut SequenceReport,
    tasks: &[SequenceTask<'_>],
    eval_batch: usize,
) -> Result<(), MoseError> {
    for (j, task) in tasks.iter().enumerate().skip(report.base.len()) {
        let score = score_task(base, None, j, task.heldout, Routing::Oracle, eval_batch).await?;
        report.base.push(score);
    }
    report.tasks = tasks.iter().map(|t| t.name.to_string()).collect();
    Ok(())
}

/// Scores every task of `tasks` with `learner`, which has just learned one
/// more of them (adding `capacity`), routed and with the oracle, and adds the
/// row to `report`.
///
/// # Errors
/// [`MoseError`] when the device cannot hand the scores back.
pub async fn score_learned(
    base: FrozenBase<'_>,
    learner: &Learner,
    report: &mut SequenceReport,
    tasks: &[SequenceTask<'_>],
    capacity: Capacity,
    eval_batch: usize,
) -> Result<(), MoseError> {
    let mut routed_row = Vec::with_capacity(tasks.len());
    let mut oracle_row = Vec::with_capacity(tasks.len());
    for (j, task) in tasks.iter().enumerate() {
        let score = |routing| score_task(base, Some(learner), j, task.heldout, routing, eval_batch);
        let routed_score = score(Routing::Routed).await?;
        // Without a router both modes run the same adapter.
        let oracle_score = match learner.method().is_routed() {
            true => score(Routing::Oracle).await?,
            false => routed_score.clone(),
        };
        routed_row.push(routed_score);
        oracle_row.push(oracle_score);
    }
    report.routed.push(routed_row);
    report.oracle.push(oracle_row);
    report.capacity.push(capacity);
    report.tasks = tasks.iter().map(|t| t.name.to_string()).collect();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed_to(tasks: &[Option<usize>]) -> TaskScore {
        TaskScore {
            log_likelihood: -1.0,
            perplexity: 1.0_f64.exp(),
            tokens: 1,
            exact_match: None,
            routed_to: tasks.to_vec(),
        }
    }

    #[test]
    fn routing_accuracy_counts_only_the_learned_tasks() {
        let mut report = SequenceReport::new(Method::Mose);
        report.tasks = vec!["a".into(), "b".into(), "c".into()];
        // One task learned: its samples went home; the two tasks not learned
        // yet went to no task, as they should.
        report.routed.push(vec![
            routed_to(&[Some(0), Some(0)]),
            routed_to(&[None, None]),
            routed_to(&[None]),
        ]);
        let confusion = report.confusion().expect("MoSE routes");
        assert_eq!(confusion.accuracy(), Some(1.0));
        assert_eq!(confusion.none, vec![0, 0, 0]);
    }
}
