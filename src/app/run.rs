//! Learning the next task, on [`Lab`]: the step loop of the library's
//! [`LearnNext`] driven between two frames, with pause, cancel and a
//! checkpoint every few steps kept in storage, so that a run a reload
//! interrupted resumes where it was.

use leptos::prelude::*;
use leptos::task::spawn_local;
use mose_lab::mose::{Learner, Method};
use mose_lab::session::{LearnNext, Ran, SessionError, start_methods};
use mose_lab::train::{Flow, StepReport};

use super::actions::data_message;
use super::base_model::gpu_failed;
use super::lab::{Control, Lab, LossPoint, LostGpu, Progress, RunMeta, TrainState};

/// An interrupted run, read back from storage.
struct Resume {
    meta: RunMeta,
    checkpoint: Vec<u8>,
    finished: Vec<Vec<u8>>,
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
                        checkpoint,
                        finished,
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
        self.interrupted.set(meta);
        self.gpu_lost.set(Some(LostGpu {
            reason,
            task: Some(task),
        }));
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
/// `Ok(None)` when cancelled.
async fn learn_next(lab: Lab, resume: Option<Resume>) -> Result<Option<String>, String> {
    let engine = lab.engine();
    let device = &engine.compute.device;
    let settings = match &resume {
        Some(resume) => resume.meta.settings.clone(),
        None => lab.settings.get_untracked(),
    };
    let mut project = lab.project.get_untracked();
    let next = project.learned();
    let Some(task) = project.tasks.get(next).cloned() else {
        return Err("Every task is learned: add a task to learn next.".into());
    };
    let mut learners = lab.learners.get_value();
    project.train = project
        .train
        .clone()
        .with_steps_per_task(settings.steps)
        .with_learning_rate(settings.learning_rate)
        .with_batch_size(settings.batch_size);
    if project.trained.is_empty() {
        project.data.max_seq_len = settings.max_seq_len;
        project.mose = project
            .mose
            .clone()
            .with_rank(settings.rank)
            .with_new_experts_per_task(settings.experts_per_task)
            .with_top_k_experts(settings.experts_per_task);
        let mut methods = vec![Method::Mose];
        if settings.compare_lora {
            methods.push(Method::SeqLora);
        }
        learners = start_methods(&mut project, &methods, &engine.base.model_config, device)
            .map_err(|e| match e {
                SessionError::Settings(e) => format!("These settings do not fit the model: {e}"),
                other => other.to_string(),
            })?;
    }
    // Tasks scored for the first time keep at most the held-out setting's samples.
    let scored = project.trained[0].report.base.len();
    for later in project.tasks.iter_mut().skip(scored) {
        later.split.heldout.truncate(settings.heldout.max(1));
    }
    let base = engine.frozen();
    let method_of: Vec<Method> = learners.iter().map(Learner::method).collect();
    let methods = learners.len();
    let tokenizer = &engine.base.tokenizer;
    if let Some(r) = &resume {
        // The methods that finished the task before the reload.
        for (k, bytes) in r.finished.iter().enumerate() {
            learners[k] = Learner::from_bytes(bytes, &engine.base.model_config, device)
                .map_err(|e| cannot_resume(&e.to_string()))?;
        }
    }
    if let Some(background) = &engine.base.background {
        for learner in &mut learners {
            learner.adopt_background(background, &engine.base.identity.fingerprint);
        }
    }
    let mut learning = match &resume {
        Some(r) => LearnNext::resume(
            base,
            &project,
            tokenizer,
            &learners,
            r.meta.method,
            &r.checkpoint,
        )
        .await
        .map_err(|e| cannot_resume(&e.to_string()))?,
        None => LearnNext::new(&project, tokenizer).map_err(|e| session_message(&e))?,
    };

    // A resumed run's chart starts with the losses before the reload.
    let (_, losses) = learning.progress();
    let method = method_of[learning.method()];
    lab.losses.set(
        losses
            .iter()
            .enumerate()
            .map(|(i, &loss)| LossPoint {
                method,
                step: i + 1,
                loss,
            })
            .collect(),
    );
    let every = lab.config.with_value(|c| c.checkpoint_every).max(1);
    let total = project.train.steps_per_task;
    let meta = |method: usize, step: usize| RunMeta {
        next,
        task: task.name.clone(),
        settings: settings.clone(),
        method,
        step,
        steps: total,
    };
    // The method shown, when it started here, and its steps since.
    let mut started: Option<(usize, web_time::Instant, usize)> = None;
    lab.train_state.set(TrainState::Running);
    loop {
        let k = learning.method();
        if k >= methods {
            // Every method has learned the task: this call says so.
        } else if started.is_none_or(|(shown, _, _)| shown != k) {
            started = Some((k, web_time::Instant::now(), 0));
            lab.progress.set(Progress {
                task: task.name.clone(),
                method: Some(method_of[k]),
                steps_left: total * (methods - k) - learning.progress().0,
                ..Progress::default()
            });
        }
        let mut checkpoint_due = false;
        let mut on_step = |k: usize, report: &StepReport| {
            let (_, since, steps) = started.get_or_insert((k, web_time::Instant::now(), 0));
            *steps += 1;
            checkpoint_due = report.step.is_multiple_of(every) && report.step < report.steps;
            let per_step = since.elapsed().as_secs_f64() / *steps as f64;
            let method = method_of[k];
            lab.losses.update(|l| {
                l.push(LossPoint {
                    method,
                    step: report.step,
                    loss: report.loss,
                })
            });
            lab.progress.update(|p| {
                p.step = Some(report.clone());
                p.seconds_per_step = per_step;
                p.steps_left = (report.steps - report.step) + total * (methods - k - 1);
            });
            match lab.control.get_untracked() {
                Control::Run if !checkpoint_due => Flow::Continue,
                _ => Flow::Stop,
            }
        };
        let ran = learning
            .run(base, &project, &mut learners, &mut on_step)
            .await
            .map_err(|e| train_failed(&task.name, &e.to_string()))?;
        match ran {
            Ran::Learned => break,
            Ran::MethodLearned(k) if k + 1 < methods => {
                // Kept for a reload: the next method starts from scratch.
                if let Ok(bytes) = learners[k].to_bytes(&engine.base.model_config).await {
                    lab.write_run(&format!("learner.{k}"), &bytes).await;
                }
            }
            Ran::MethodLearned(_) => {}
            Ran::Stopped => {
                if lab.control.get_untracked() != Control::Cancel {
                    // Stopped for a checkpoint, or paused: keep the place, so a
                    // reload can resume from here.
                    if let Ok(Some(bytes)) = learning.checkpoint().await {
                        lab.write_run("checkpoint", &bytes).await;
                        let at = meta(learning.method(), learning.progress().0);
                        let meta = serde_json::to_vec(&at).unwrap_or_default();
                        lab.write_run("meta", &meta).await;
                    }
                }
                if lab.control.get_untracked() == Control::Pause {
                    lab.train_state.set(TrainState::Paused);
                    while lab.control.get_untracked() == Control::Pause {
                        gloo_timers::future::TimeoutFuture::new(100).await;
                    }
                    lab.train_state.set(TrainState::Running);
                }
                if lab.control.get_untracked() == Control::Cancel {
                    return Ok(None);
                }
            }
        }
    }

    lab.train_state.set(TrainState::Scoring);
    let eval_batch = lab.config.with_value(|c| c.eval_batch);
    let mut on_method = |k: usize| {
        lab.progress.update(|p| {
            p.method = Some(method_of[k]);
            p.scoring = Some((k, methods));
        });
    };
    learning
        .score(base, &mut project, &learners, eval_batch, &mut on_method)
        .await
        .map_err(|e| gpu_failed(&e.to_string()))?;
    if lab.control.get_untracked() == Control::Cancel {
        return Ok(None);
    }

    lab.train_state.set(TrainState::Saving);
    // Tasks added while this one was learned stay; the rest is this run's.
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
    Ok(Some(task.name))
}

/// A session error as the page says it: a task's data error names the task.
fn session_message(e: &SessionError) -> String {
    match e {
        SessionError::Data { task, source } => data_message(task, source),
        other => other.to_string(),
    }
}

fn cannot_resume(e: &str) -> String {
    format!("The interrupted run cannot resume ({e}); learn the task again")
}

fn train_failed(task: &str, e: &str) -> String {
    format!(
        "Learning {task} stopped: {e}. The project is as it was before. If the device ran out of memory, \
         lower the batch size or the steps in the settings and try again"
    )
}
