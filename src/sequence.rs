//! A continual sequence: learn tasks one after another and score every task
//! after each, routed and with the oracle, to fill the R matrices of MOSE.md
//! ("Metrics"). The CLI, the app and the tests all run sequences through here.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use web_time::Instant;

use crate::data::Example;
use crate::eval::metrics::{Confusion, Summary, summarize};
use crate::eval::{Routing, TaskScore, score_task};
use crate::model::Llama;
use crate::mose::{Capacity, Learner, Method};
use crate::train::{Flow, RunEnd, StepReport, TaskRun, TrainConfig, TrainError};

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

/// What happened, for progress displays.
#[derive(Debug, Clone, PartialEq)]
pub enum SequenceEvent {
    /// A training step of task `task`.
    Step {
        /// The task's position in the sequence.
        task: usize,
        /// The step.
        report: StepReport,
    },
    /// Task `task` is learned.
    Learned {
        /// The task's position.
        task: usize,
        /// Capacity after it.
        capacity: Capacity,
    },
    /// Every task has been scored after learning task `after`.
    Scored {
        /// The task just learned.
        after: usize,
    },
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

    /// Where the router sent each held-out sample after the last task, or
    /// `None` for methods without a router.
    pub fn confusion(&self) -> Option<Confusion> {
        if !self.method.is_routed() {
            return None;
        }
        let last = self.routed.last()?;
        let mut confusion = Confusion::new(self.tasks.len());
        for (truth, score) in last.iter().enumerate() {
            for chosen in score.routed_to.iter().flatten() {
                confusion.add(truth, *chosen);
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

/// Learns `tasks` in order with `learner`, scoring every task after each.
/// Returns `None` when `on_event` stopped it.
#[allow(clippy::too_many_arguments)]
pub async fn run_sequence(
    model: &Llama,
    learner: &mut Learner,
    tasks: &[SequenceTask<'_>],
    pad_id: u32,
    config: &TrainConfig,
    eval_batch: usize,
    device: &Device,
    on_event: &mut dyn FnMut(SequenceEvent) -> Flow,
) -> Result<Option<SequenceReport>, TrainError> {
    let started = Instant::now();
    let mut base = Vec::with_capacity(tasks.len());
    for (j, task) in tasks.iter().enumerate() {
        base.push(
            score_task(
                model,
                None,
                j,
                task.heldout,
                pad_id,
                Routing::Oracle,
                eval_batch,
                device,
            )
            .await?,
        );
    }
    let mut routed = Vec::new();
    let mut oracle = Vec::new();
    let mut capacity = Vec::new();
    for (i, task) in tasks.iter().enumerate() {
        let mut run = TaskRun::start(
            model, learner, task.name, task.train, pad_id, config, device,
        )
        .await?;
        let mut on_step = |report: &StepReport| {
            on_event(SequenceEvent::Step {
                task: i,
                report: report.clone(),
            })
        };
        if run
            .run(model, learner, task.train, pad_id, device, &mut on_step)
            .await?
            == RunEnd::Stopped
        {
            return Ok(None);
        }
        let learned = run.finish(learner).await?;
        capacity.push(learned);
        if on_event(SequenceEvent::Learned {
            task: i,
            capacity: learned,
        }) == Flow::Stop
        {
            return Ok(None);
        }
        let mut routed_row = Vec::with_capacity(tasks.len());
        let mut oracle_row = Vec::with_capacity(tasks.len());
        for (j, other) in tasks.iter().enumerate() {
            let score = |routing| {
                score_task(
                    model,
                    Some(learner),
                    j,
                    other.heldout,
                    pad_id,
                    routing,
                    eval_batch,
                    device,
                )
            };
            let routed_score = score(Routing::Routed).await?;
            // Without a router both modes run the same adapter.
            let oracle_score = match learner.method().is_routed() {
                true => score(Routing::Oracle).await?,
                false => routed_score.clone(),
            };
            routed_row.push(routed_score);
            oracle_row.push(oracle_score);
        }
        routed.push(routed_row);
        oracle.push(oracle_row);
        if on_event(SequenceEvent::Scored { after: i }) == Flow::Stop {
            return Ok(None);
        }
    }
    Ok(Some(SequenceReport {
        method: learner.method(),
        tasks: tasks.iter().map(|t| t.name.to_string()).collect(),
        base,
        routed,
        oracle,
        capacity,
        seconds: started.elapsed().as_secs_f64(),
    }))
}
