//! Learning the next task, on [`Lab`]: a run (`runner.rs`) in the engine's
//! worker in CPU mode, else on the page between two frames, with pause,
//! cancel and a checkpoint every few steps kept in storage, so that a run a
//! reload interrupted resumes where it was.

use leptos::prelude::*;
use leptos::task::spawn_local;
use mose_lab::mose::Method;

use super::engine::learners_of;
use super::lab::{Control, Lab, LossPoint, LostGpu, Progress, RunMeta, TrainState};
use super::runner::{
    self, ResumeBytes, RunEnd, RunEvent, RunHost, RunInput, RunJob, cannot_resume,
};
use super::worker::WorkerEnd;

/// An interrupted run, read back from storage.
struct Resume {
    meta: RunMeta,
    bytes: ResumeBytes,
}

impl Lab {
    /// Looks for a run a reload interrupted that fits the project.
    pub fn find_interrupted(self) {
        spawn_local(async move {
            let meta = self.read_meta().await;
            let fits = meta.as_ref().is_some_and(|m| {
                self.project.with_untracked(|p| {
                    p.learned() == m.next && p.tasks.get(m.next).is_some_and(|t| t.name == m.task)
                })
            });
            if fits {
                self.interrupted.set(meta);
            } else if meta.is_some() {
                self.forget_run().await;
            }
        });
    }

    /// Resumes the interrupted run from its last checkpoint.
    pub fn resume_interrupted(self) {
        let Some(meta) = self.interrupted.get_untracked() else {
            return;
        };
        if self.busy() {
            return;
        }
        self.interrupted.set(None);
        self.control.set(Control::Run);
        self.train_state.set(TrainState::Starting);
        self.error.set(None);
        spawn_local(async move {
            let checkpoint = self.read_run("checkpoint").await;
            let mut finished = Vec::with_capacity(meta.method);
            for k in 0..meta.method {
                finished.extend(self.read_run(&format!("learner.{k}")).await);
            }
            let outcome = match checkpoint {
                Some(checkpoint) if finished.len() == meta.method => {
                    let resume = Resume {
                        meta,
                        bytes: ResumeBytes {
                            checkpoint,
                            finished,
                        },
                    };
                    learn_next(self, Some(resume)).await
                }
                _ => Err(cannot_resume("part of it is no longer stored")),
            };
            self.finish_learning(outcome).await;
        });
    }

    /// Drops the interrupted run.
    pub fn discard_interrupted(self) {
        self.interrupted.set(None);
        spawn_local(async move { self.forget_run().await });
    }

    async fn read_run(self, part: &str) -> Option<Vec<u8>> {
        let engine = self.engine();
        let store = engine.store.as_ref().ok()?;
        let key = format!("{}.{part}", self.config.with_value(|c| c.run_key));
        store.get(&key).await.ok().flatten()
    }

    /// Where the stored run is, if one is stored and readable.
    async fn read_meta(self) -> Option<RunMeta> {
        let bytes = self.read_run("meta").await?;
        serde_json::from_slice(&bytes).ok()
    }

    async fn write_run(self, part: &str, bytes: &[u8]) {
        let engine = self.engine();
        let Ok(store) = &engine.store else {
            return;
        };
        let key = format!("{}.{part}", self.config.with_value(|c| c.run_key));
        // A checkpoint that cannot be kept only costs the resume after a reload.
        let _ = store.put(&key, bytes).await;
    }

    async fn forget_run(self) {
        let engine = self.engine();
        let Ok(store) = &engine.store else {
            return;
        };
        let run = self.config.with_value(|c| c.run_key);
        let parts = ["meta".to_string(), "checkpoint".to_string()]
            .into_iter()
            .chain((0..Method::ALL.len()).map(|k| format!("learner.{k}")));
        for part in parts {
            let _ = store.delete(&format!("{run}.{part}")).await;
        }
    }

    /// Shows how a learning run ended, and forgets its checkpoint.
    async fn finish_learning(self, outcome: Result<Option<String>, String>) {
        match outcome {
            Ok(Some(name)) => {
                self.train_state.set(TrainState::Idle);
                self.tell(format!(
                    "Learned {name}. Every task is scored again in Remember."
                ));
            }
            Ok(None) => {
                self.train_state.set(TrainState::Idle);
                self.tell("Cancelled: the project is as it was before this task.");
            }
            Err(why) => {
                if let Some(reason) = self.lost_gpu_after_failure().await {
                    // The run's checkpoint stays, for the CPU or for a reload.
                    return self.keep_lost_run(reason).await;
                }
                if self.engine().worker.as_ref().is_some_and(|w| !w.running()) {
                    return self.keep_stopped_run(why).await;
                }
                self.train_state.set(TrainState::Failed(why.clone()));
                self.fail(why);
            }
        }
        self.progress.set(Progress::default());
        self.forget_run().await;
    }

    /// A run the GPU's loss stopped: its last checkpoint stays stored and
    /// is offered, on the CPU now or on the GPU after a reload.
    async fn keep_lost_run(self, reason: String) {
        let task = self.project.with_untracked(|p| {
            p.tasks
                .get(p.learned())
                .map(|t| t.name.clone())
                .unwrap_or_default()
        });
        let meta = self.read_meta().await;
        let kept = match &meta {
            Some(m) => format!(
                "its last checkpoint, step {} of {}, is kept",
                m.step, m.steps
            ),
            None => "it had no checkpoint yet, so it starts again from its first step".into(),
        };
        let why = format!(
            "The GPU stopped working while learning {task}. The project is as it was \
             and {kept}: continue on the CPU now, or reload the page to continue on the GPU."
        );
        self.gpu_lost.set(Some(LostGpu {
            reason,
            task: Some(task),
        }));
        self.offer_kept_run(meta, why);
    }

    /// A run the engine's worker died in (`why` says how): its last
    /// checkpoint stays and is offered; the page learns from here on.
    async fn keep_stopped_run(self, why: String) {
        let meta = self.read_meta().await;
        let why = match &meta {
            Some(m) => format!(
                "{why}. Its last checkpoint, step {} of {}, is kept: resume it (this page computes it \
                 from now on), or reload the page.",
                m.step, m.steps
            ),
            None => {
                self.forget_run().await;
                format!(
                    "{why}. Learn the task again (this page computes it from now on), or reload the page."
                )
            }
        };
        self.offer_kept_run(meta, why);
    }

    /// Shows a run that failed with `why` and offers its kept place, if any,
    /// for resuming.
    fn offer_kept_run(self, meta: Option<RunMeta>, why: String) {
        self.interrupted.set(meta);
        self.train_state.set(TrainState::Failed(why.clone()));
        self.error.set(Some(why));
        self.progress.set(Progress::default());
    }

    /// Learns the next task with MoSE (and plain LoRA when compared), scores
    /// every task after it and saves the project.
    pub fn learn_next(self) {
        if self.busy() {
            return;
        }
        self.control.set(Control::Run);
        self.train_state.set(TrainState::Starting);
        self.error.set(None);
        self.interrupted.set(None);
        spawn_local(async move {
            self.forget_run().await;
            self.finish_learning(learn_next(self, None).await).await;
        });
    }
}

/// The body of [`Lab::learn_next`]: `Ok(Some(task))` when learned,
/// `Ok(None)` when cancelled. In CPU mode the engine's worker learns the
/// task (the page only shows its progress); on the GPU, or when the worker
/// cannot take it, the page does.
async fn learn_next(lab: Lab, resume: Option<Resume>) -> Result<Option<String>, String> {
    let engine = lab.engine();
    let (meta, resume) = resume.map(|r| (r.meta, r.bytes)).unzip();
    let job = lab.config.with_value(|c| RunJob {
        settings: meta
            .as_ref()
            .map_or_else(|| lab.settings.get_untracked(), |m| m.settings.clone()),
        resume: meta,
        checkpoint_every: c.checkpoint_every,
        eval_batch: c.eval_batch,
        pause_poll_ms: c.pause_poll_ms,
    });
    let input = RunInput {
        job,
        project: lab.project.get_untracked(),
        resume,
    };
    let host = LabHost(lab);
    let in_worker = match engine.worker.as_ref().filter(|w| w.usable()) {
        Some(worker) => match worker.learn(&input, &host).await {
            WorkerEnd::Learned(task, project) => {
                let learners = learners_of(&project, &engine)?;
                Some(RunEnd::Learned {
                    task,
                    project,
                    learners,
                })
            }
            WorkerEnd::Cancelled => Some(RunEnd::Cancelled),
            WorkerEnd::Failed(why) => return Err(why),
            WorkerEnd::Unavailable => None,
        },
        None => None,
    };
    let end = match in_worker {
        Some(end) => end,
        None => {
            let learners = lab.learners.get_value();
            let device = &engine.compute.device;
            runner::learn(&engine.base, device, input, learners, &host).await?
        }
    };
    let RunEnd::Learned {
        task,
        project,
        learners,
    } = end
    else {
        return Ok(None);
    };

    lab.train_state.set(TrainState::Saving);
    // Tasks added while this one was learned stay; the rest is this run's.
    let project = *project;
    let trained = project.trained;
    let (train_config, mose_config, data) = (project.train, project.mose, project.data);
    let splits: Vec<_> = project.tasks.into_iter().map(|t| t.split).collect();
    lab.project.update(|p| {
        p.trained = trained;
        p.train = train_config;
        p.mose = mose_config;
        p.data = data;
        for (task, split) in p.tasks.iter_mut().zip(splits) {
            task.split = split;
        }
    });
    lab.learners.set_value(learners);
    lab.undo.set(None);
    lab.save();
    Ok(Some(task))
}

/// A run on the page: its events move the train panel, its parts go to
/// storage, and it does what the person asks.
struct LabHost(Lab);

impl RunHost for LabHost {
    fn event(&self, event: RunEvent) {
        let lab = self.0;
        match event {
            RunEvent::State(state) => lab.train_state.set(state),
            RunEvent::Losses(losses) => lab.losses.set(losses),
            RunEvent::Method {
                task,
                method,
                steps_left,
            } => lab.progress.set(Progress {
                task,
                method: Some(method),
                steps_left,
                ..Progress::default()
            }),
            RunEvent::Step {
                method,
                report,
                seconds_per_step,
                steps_left,
            } => {
                lab.losses.update(|l| {
                    l.push(LossPoint {
                        method,
                        step: report.step,
                        loss: report.loss,
                    })
                });
                lab.progress.update(|p| {
                    p.step = Some(report);
                    p.seconds_per_step = seconds_per_step;
                    p.steps_left = steps_left;
                });
            }
            RunEvent::Scoring { method, k, of } => lab.progress.update(|p| {
                p.method = Some(method);
                p.scoring = Some((k, of));
            }),
        }
    }

    fn control(&self) -> Control {
        self.0.control.get_untracked()
    }

    async fn keep(&self, part: String, bytes: Vec<u8>) {
        self.0.write_run(&part, &bytes).await;
    }
}
