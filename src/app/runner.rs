//! One learning run, wherever it computes: the library's [`LearnNext`]
//! step loop with its checkpoints, pause and cancel, then the scores. The
//! page runs it on its own thread when the model is on the GPU; in CPU mode
//! the engine's Web Worker runs it (`worker.rs`), so the page keeps
//! painting. Either way it reports through a [`RunHost`]: the events that
//! move the train panel, the bytes to keep for a resume, and what the
//! person asked (run, pause, cancel).

use burn::tensor::Device;
use mose_lab::mose::{Learner, Method};
use mose_lab::project::Project;
use mose_lab::session::{LearnNext, Ran, SessionError, start_methods};
use mose_lab::train::{Flow, StepReport};
use serde::{Deserialize, Serialize};

use super::actions::data_message;
use super::base_model::{Base, gpu_failed};
use super::config::Settings;
use super::lab::{Control, LossPoint, RunMeta, TrainState};

/// What a run is asked to do, besides the project it starts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunJob {
    /// The settings it learns with (a resumed run's own).
    pub settings: Settings,
    /// Where an interrupted run stood, when this one resumes it.
    pub resume: Option<RunMeta>,
    /// Steps between two checkpoints.
    pub checkpoint_every: usize,
    /// Sequences per forward pass when scoring.
    pub eval_batch: usize,
    /// How often a paused run looks whether it may go on, in milliseconds.
    pub pause_poll_ms: u32,
}

/// A stored run's bytes, to resume it: the checkpoint of the method that
/// was learning, and the states of the methods that had finished.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumeBytes {
    /// [`LearnNext::checkpoint`]'s bytes.
    pub checkpoint: Vec<u8>,
    /// One [`Learner::to_bytes`] per finished method, in order.
    pub finished: Vec<Vec<u8>>,
}

/// A run's input.
pub struct RunInput {
    /// What to do.
    pub job: RunJob,
    /// The project as it stands; the run learns its first unlearned task.
    pub project: Project,
    /// The stored run it resumes, with `job.resume`.
    pub resume: Option<ResumeBytes>,
}

/// What a run tells the page as it goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RunEvent {
    /// The train panel's state: running, paused or scoring.
    State(TrainState),
    /// The losses so far, in place of the chart's (a resumed run's).
    Losses(Vec<LossPoint>),
    /// A method starts (or goes on with) the task.
    Method {
        /// The task's name.
        task: String,
        /// Which method.
        method: Method,
        /// Steps left over every method.
        steps_left: usize,
    },
    /// A step is done.
    Step {
        /// Which method took it.
        method: Method,
        /// What it did.
        report: StepReport,
        /// Seconds one step takes, averaged since the method started here.
        seconds_per_step: f64,
        /// Steps left over every method.
        steps_left: usize,
    },
    /// Scoring with method `k` of `of` starts.
    Scoring {
        /// Which method.
        method: Method,
        /// Its index.
        k: usize,
        /// How many.
        of: usize,
    },
}

/// Where a run reports, and whom it asks whether to go on.
pub trait RunHost {
    /// Shows `event`.
    fn event(&self, event: RunEvent);
    /// What the person asks now.
    fn control(&self) -> Control;
    /// Keeps `bytes` as `part` of the stored run (`meta`, `checkpoint`,
    /// `learner.<k>`), so that a reload can resume from here.
    async fn keep(&self, part: String, bytes: Vec<u8>);
}

/// How a run ended, when it did not fail.
pub enum RunEnd {
    /// Every method learned the task and every task was scored.
    Learned {
        /// The task's name.
        task: String,
        /// The run's project, with the new scores and states.
        project: Box<Project>,
        /// What each method has learned, in `project.trained`'s order.
        learners: Vec<Learner>,
    },
    /// The person cancelled: the project is as it was.
    Cancelled,
}

/// Learns the project's next task with MoSE (and plain LoRA when the
/// settings compare it) on `base`, from `learners` (the project's, opened
/// on `device`), and scores every task after it.
///
/// # Errors
/// What failed and what to do, in words; the caller's project is untouched.
pub async fn learn(
    base: &Base,
    device: &Device,
    input: RunInput,
    mut learners: Vec<Learner>,
    host: &impl RunHost,
) -> Result<RunEnd, String> {
    let RunInput {
        job,
        mut project,
        resume,
    } = input;
    let settings = &job.settings;
    let next = project.learned();
    let Some(task) = project.tasks.get(next).cloned() else {
        return Err("Every task is learned: add a task to learn next.".into());
    };
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
        learners = start_methods(&mut project, &methods, &base.model_config, device).map_err(
            |e| match e {
                SessionError::Settings(e) => format!("These settings do not fit the model: {e}"),
                other => other.to_string(),
            },
        )?;
    }
    // Tasks scored for the first time keep at most the held-out setting's samples.
    let scored = project.trained[0].report.base.len();
    for later in project.tasks.iter_mut().skip(scored) {
        later.split.heldout.truncate(settings.heldout.max(1));
    }
    let frozen = base.frozen(device);
    let method_of: Vec<Method> = learners.iter().map(Learner::method).collect();
    let methods = learners.len();
    let tokenizer = &base.tokenizer;
    let resumed = match (&job.resume, &resume) {
        (Some(meta), Some(bytes)) => Some((meta, bytes)),
        _ => None,
    };
    if let Some((_, bytes)) = resumed {
        // The methods that finished the task before the reload.
        for (k, state) in bytes.finished.iter().enumerate() {
            learners[k] = Learner::from_bytes(state, &base.model_config, device)
                .map_err(|e| cannot_resume(&e.to_string()))?;
        }
    }
    if let Some(background) = &base.background {
        for learner in &mut learners {
            learner.adopt_background(background, &base.identity.fingerprint);
        }
    }
    let mut learning = match resumed {
        Some((meta, bytes)) => LearnNext::resume(
            frozen,
            &project,
            tokenizer,
            &learners,
            meta.method,
            &bytes.checkpoint,
        )
        .await
        .map_err(|e| cannot_resume(&e.to_string()))?,
        None => LearnNext::new(&project, tokenizer).map_err(|e| session_message(&e))?,
    };

    // A resumed run's chart starts with the losses before the reload.
    let (_, losses) = learning.progress();
    let method = method_of[learning.method()];
    host.event(RunEvent::Losses(
        losses
            .iter()
            .enumerate()
            .map(|(i, &loss)| LossPoint {
                method,
                step: i + 1,
                loss,
            })
            .collect(),
    ));
    let every = job.checkpoint_every.max(1);
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
    host.event(RunEvent::State(TrainState::Running));
    loop {
        let k = learning.method();
        if k >= methods {
            // Every method has learned the task: this call says so.
        } else if started.is_none_or(|(shown, _, _)| shown != k) {
            started = Some((k, web_time::Instant::now(), 0));
            host.event(RunEvent::Method {
                task: task.name.clone(),
                method: method_of[k],
                steps_left: total * (methods - k) - learning.progress().0,
            });
        }
        let mut checkpoint_due = false;
        let mut on_step = |k: usize, report: &StepReport| {
            let (_, since, steps) = started.get_or_insert((k, web_time::Instant::now(), 0));
            *steps += 1;
            checkpoint_due = report.step.is_multiple_of(every) && report.step < report.steps;
            host.event(RunEvent::Step {
                method: method_of[k],
                report: report.clone(),
                seconds_per_step: since.elapsed().as_secs_f64() / *steps as f64,
                steps_left: (report.steps - report.step) + total * (methods - k - 1),
            });
            match host.control() {
                Control::Run if !checkpoint_due => Flow::Continue,
                _ => Flow::Stop,
            }
        };
        let ran = learning
            .run(frozen, &project, &mut learners, &mut on_step)
            .await
            .map_err(|e| train_failed(&task.name, &e.to_string()))?;
        match ran {
            Ran::Learned => break,
            Ran::MethodLearned(k) if k + 1 < methods => {
                // Kept for a reload: the next method starts from scratch.
                if let Ok(bytes) = learners[k].to_bytes(&base.model_config).await {
                    host.keep(format!("learner.{k}"), bytes).await;
                }
            }
            Ran::MethodLearned(_) => {}
            Ran::Stopped => {
                if host.control() != Control::Cancel {
                    // Stopped for a checkpoint, or paused: keep the place, so a
                    // reload can resume from here.
                    if let Ok(Some(bytes)) = learning.checkpoint().await {
                        host.keep("checkpoint".into(), bytes).await;
                        let at = meta(learning.method(), learning.progress().0);
                        let meta = serde_json::to_vec(&at).unwrap_or_default();
                        host.keep("meta".into(), meta).await;
                    }
                }
                if host.control() == Control::Pause {
                    host.event(RunEvent::State(TrainState::Paused));
                    while host.control() == Control::Pause {
                        gloo_timers::future::TimeoutFuture::new(job.pause_poll_ms).await;
                    }
                    host.event(RunEvent::State(TrainState::Running));
                }
                if host.control() == Control::Cancel {
                    return Ok(RunEnd::Cancelled);
                }
            }
        }
    }

    host.event(RunEvent::State(TrainState::Scoring));
    let mut on_method = |k: usize| {
        host.event(RunEvent::Scoring {
            method: method_of[k],
            k,
            of: methods,
        })
    };
    learning
        .score(
            frozen,
            &mut project,
            &learners,
            job.eval_batch,
            &mut on_method,
        )
        .await
        .map_err(|e| gpu_failed(&e.to_string()))?;
    if host.control() == Control::Cancel {
        return Ok(RunEnd::Cancelled);
    }
    Ok(RunEnd::Learned {
        task: task.name,
        project: Box::new(project),
        learners,
    })
}

/// A session error as the page says it: a task's data error names the task.
fn session_message(e: &SessionError) -> String {
    match e {
        SessionError::Data { task, source } => data_message(task, source),
        other => other.to_string(),
    }
}

/// Why a stored run cannot go on.
pub fn cannot_resume(e: &str) -> String {
    format!("The interrupted run cannot resume ({e}); learn the task again")
}

fn train_failed(task: &str, e: &str) -> String {
    format!(
        "Learning {task} stopped: {e}. The project is as it was before. If the device ran out of memory, \
         lower the batch size or the steps in the settings and try again"
    )
}
