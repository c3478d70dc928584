//! `mose train`: a continual sequence of tasks on a base model, learned by
//! each method from the same start and saved as a project file; or more
//! tasks learned on a saved project (`--continue`, one from the app too).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use mose_lab::data::DataConfig;
use mose_lab::model::FrozenBase;
use mose_lab::mose::Method;
use mose_lab::project::{Project, ProjectTask};
use mose_lab::session::{LearnNext, Ran, open_learners, project_examples, start_methods};
use mose_lab::train::{Flow, StepReport, TrainConfig};

use crate::common::{
    CliError, Context, DEFAULT_MODEL, MethodArg, base_model, compute, load_project, mose_config,
    read_background, read_file,
};
use crate::record::{RecordArgs, record_runs};
use crate::results::{MethodResult, heldout_samples, results_text, robustness};

/// Arguments of `mose train`.
#[derive(clap::Args, Debug)]
pub(crate) struct TrainArgs {
    /// The tasks, in learning order: a starter pack folder (train.txt and
    /// test.txt, a fixed split), a text file (split at random), or
    /// NAME=PATH to name either.
    #[arg(required = true)]
    tasks: Vec<String>,
    /// Learn the tasks after those of this project (written by the app or
    /// the CLI): its tasks not learned yet first, then TASKS, with its
    /// methods and settings. The project is written back in place unless
    /// --out names another file.
    #[arg(long = "continue", value_name = "PROJECT", conflicts_with_all = ["methods", "max_seq_len", "mose_settings"])]
    continue_from: Option<PathBuf>,
    /// The project file to write.
    #[arg(long, required_unless_present = "continue_from")]
    out: Option<PathBuf>,
    /// The base model folder.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
    /// Methods to run on the same tasks, comma-separated: mose,
    /// lora-per-task, seq-lora, moe-lora [default: mose,seq-lora].
    #[arg(long, value_delimiter = ',')]
    methods: Option<Vec<MethodArg>>,
    /// Optimiser steps per task [default: 200, or the continued project's].
    #[arg(long)]
    steps: Option<usize>,
    /// Sequences per step [default: 8, or the continued project's].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate [default: 0.003, or the continued project's].
    #[arg(long)]
    learning_rate: Option<f64>,
    /// Token ids per example; a longer sample is split (text) or cut (a
    /// pair keeps its answer) [default: 128].
    #[arg(long)]
    max_seq_len: Option<usize>,
    /// Hold out at most this many samples of each task (all of its held-out split when absent).
    #[arg(long)]
    max_heldout: Option<usize>,
    /// Train on at most this many samples of each task, the first of its
    /// training split (all of it when absent): a large base model on a small
    /// machine reads every training sample once for the router's statistics.
    #[arg(long)]
    max_train: Option<usize>,
    /// Drives splits, initialisation and order [default: 0, or the continued project's].
    #[arg(long)]
    seed: Option<u64>,
    /// A MoSE setting, NAME=VALUE (repeatable), e.g. `--mose router=key`
    /// or `--mose gate=softmax` (docs/METHOD.md lists them).
    #[arg(long = "mose", value_name = "NAME=VALUE")]
    mose_settings: Vec<String>,
    #[command(flatten)]
    record: RecordArgs,
}

/// The methods `mose train` runs when --methods is absent.
const DEFAULT_METHODS: [Method; 2] = [Method::Mose, Method::SeqLora];

/// One task argument read into a project task.
fn read_task(arg: &str, data: &DataConfig, seed: u64) -> Result<ProjectTask, CliError> {
    let (name, path) = match arg.split_once('=') {
        Some((name, path)) if !name.is_empty() => (name.to_string(), PathBuf::from(path)),
        _ => {
            let path = PathBuf::from(arg);
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            (stem.unwrap_or_else(|| arg.to_string()), path)
        }
    };
    let bad = |e: mose_lab::data::DataError| {
        CliError::Input(format!("task {name} ({}): {e}", path.display()))
    };
    if path.is_dir() {
        let (train, test) = (path.join("train.txt"), path.join("test.txt"));
        if !train.exists() || !test.exists() {
            return Err(CliError::Input(format!(
                "{} is a folder without train.txt and test.txt; give a starter pack folder or a text file",
                path.display()
            )));
        }
        ProjectTask::from_split_texts(&name, &read_file(&train)?, &read_file(&test)?, data)
            .map_err(bad)
    } else {
        ProjectTask::from_text(&name, &read_file(&path)?, data, seed).map_err(bad)
    }
}

pub(crate) fn run(context: &Context, args: TrainArgs) -> Result<(), CliError> {
    let compute = compute(context.backend)?;
    let device = compute.device.clone();
    let (model, tokenizer, identity) = base_model(&args.model, &device)?;
    let background = read_background(&args.model)?;
    let (mut project, mut learners) = match &args.continue_from {
        Some(path) => {
            let project = load_project(path, &identity)?;
            let learners = open_learners(&project, model.config(), &device)
                .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
            (project, learners)
        }
        None => {
            let data = DataConfig {
                max_seq_len: args
                    .max_seq_len
                    .unwrap_or(DataConfig::default().max_seq_len),
                ..DataConfig::default()
            };
            let seed = args.seed.unwrap_or_default();
            let mut project = Project::new(
                identity.clone(),
                data,
                TrainConfig::new().with_seed(seed),
                mose_config(&args.mose_settings)?,
                seed,
            );
            let methods: Vec<Method> = match &args.methods {
                Some(methods) => methods.iter().map(|&m| Method::from(m)).collect(),
                None => DEFAULT_METHODS.to_vec(),
            };
            let learners = start_methods(&mut project, &methods, model.config(), &device)
                .map_err(CliError::input)?;
            (project, learners)
        }
    };
    let seed = args.seed.unwrap_or(project.seed);
    let mut train_config = project.train.clone().with_seed(seed);
    if let Some(steps) = args.steps {
        train_config = train_config.with_steps_per_task(steps);
    }
    if let Some(batch_size) = args.batch_size {
        train_config = train_config.with_batch_size(batch_size);
    }
    if let Some(learning_rate) = args.learning_rate {
        train_config = train_config.with_learning_rate(learning_rate);
    }
    project.train = train_config;
    let first_new = project.tasks.len();
    for arg in &args.tasks {
        let mut task = read_task(arg, &project.data, seed)?;
        if project.tasks.iter().any(|t| t.name == task.name) {
            return Err(CliError::Input(format!(
                "the project already has a task {}; name this one NAME=PATH",
                task.name
            )));
        }
        // Both cuts are kept in the project, so `mose eval` scores the same samples.
        if let Some(max) = args.max_heldout {
            task.split.heldout.truncate(max.max(1));
        }
        if let Some(max) = args.max_train {
            task.split.train.truncate(max.max(1));
        }
        project.tasks.push(task);
    }
    let examples = project_examples(&project, &tokenizer).map_err(CliError::input)?;
    for (task, examples) in project.tasks.iter().zip(&examples).skip(first_new) {
        let fitted = &examples.fitted;
        let max = project.data.max_seq_len;
        for line in fitted.warnings(max).into_iter().chain(fitted.notes(max)) {
            context.note(&format!("task {}: {line}", task.name));
        }
    }
    let heldout = heldout_samples(&project.tasks);
    let base = FrozenBase::new(&model, &tokenizer, &device);
    let steps = project.train.steps_per_task;

    for (learner, trained) in learners.iter_mut().zip(&project.trained) {
        let adopted = background
            .as_ref()
            .is_some_and(|b| learner.adopt_background(b, &identity.fingerprint));
        if !adopted && learner.needs_background() {
            context.note(&format!(
                "{}: the router will read {} texts the base model writes by itself (one-time; \
                 `mose background --model {}` keeps their statistics in the model folder \
                 for every later run with these settings)",
                trained.method.name(),
                project.mose.background_texts,
                args.model.display()
            ));
        }
    }
    let methods: Vec<Method> = project.trained.iter().map(|t| t.method).collect();
    let to_learn = project.tasks.len() - project.learned();
    let bar = context.bar(
        (steps * to_learn * methods.len()) as u64,
        "learning",
        "steps",
    );
    while project.learned() < project.tasks.len() {
        let mut learning = LearnNext::new(&project, &tokenizer).map_err(CliError::input)?;
        let name = project.tasks[learning.task()].name.clone();
        let mut on_step = |k: usize, report: &StepReport| {
            bar.set_message(format!(
                "{} {name}: loss {:.3}, {:.0} tok/s",
                methods[k].name(),
                report.loss,
                report.tokens_per_second
            ));
            bar.inc(1);
            Flow::Continue
        };
        loop {
            let ran = pollster::block_on(learning.run(base, &project, &mut learners, &mut on_step))
                .map_err(CliError::failed)?;
            let k = match ran {
                Ran::MethodLearned(k) => k,
                Ran::Learned => break,
                Ran::Stopped => unreachable!("on_step never stops it"),
            };
            let Some(capacity) = learners[k].capacity().last().copied() else {
                continue;
            };
            // How the task read to the router before it trained.
            let like = learning.likeness(k).map_or_else(String::new, |l| {
                format!(
                    "; {:.0}% of its samples read as {}'s",
                    100.0 * l.share,
                    project.tasks[l.task].name
                )
            });
            bar.suspend(|| {
                context.note(&format!(
                    "{}: learned {name} ({} sub-experts, {} new, {} reused{like})",
                    methods[k].name(),
                    capacity.experts_total,
                    capacity.experts_new,
                    capacity.experts_reused
                ))
            });
        }
        let eval_batch = project.train.query_batch_size;
        pollster::block_on(learning.score(base, &mut project, &learners, eval_batch, &mut |_| {}))
            .map_err(CliError::failed)?;
    }
    bar.finish_and_clear();

    let mut results = Vec::new();
    for (learner, trained) in learners.iter().zip(&project.trained) {
        let robust = robustness(base, learner, &tokenizer, &heldout, &project.data, seed)?;
        results.push(MethodResult::new(trained.report.clone(), robust));
    }
    let out = match (&args.out, &args.continue_from) {
        (Some(out), _) => out,
        (None, Some(continued)) => continued,
        (None, None) => unreachable!("clap requires --out without --continue"),
    };
    write_atomically(out, &project.to_bytes().map_err(CliError::failed)?)?;
    let mut text = results_text(&results);
    let _ = writeln!(text, "wrote {}", out.display());
    if let Some(path) = record_runs(&args.record, &args.model, steps, &results)? {
        let _ = writeln!(text, "recorded the runs in {}", path.display());
    }
    context.finish(&results, &text)
}

/// Writes `bytes` to `path` through a file beside it, so that a project
/// written over is never left half-written.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let failed = |e: std::io::Error| CliError::Failed(format!("{}: {e}", path.display()));
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    std::fs::write(&partial, bytes).map_err(failed)?;
    std::fs::rename(&partial, path).map_err(failed)
}
