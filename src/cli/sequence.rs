//! `mose train`, `mose eval` and `mose route`: a continual sequence of tasks
//! on a base model, saved as a project file, scored and routed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use mose_lab::data::{DataConfig, Sample};
use mose_lab::eval::metrics::Summary;
use mose_lab::eval::robustness::{Probe, routing_accuracy};
use mose_lab::eval::{Routing, route_prompt, score_task};
use mose_lab::model::{Checkpoint, Llama};
use mose_lab::mose::{Learner, Method, MoseConfig};
use mose_lab::project::{BaseModel, Project, ProjectError, ProjectTask, TaskExamples};
use mose_lab::sequence::{SequenceEvent, SequenceReport, continue_sequence};
use mose_lab::session::{open_learners, project_examples, sequence_tasks, start_methods};
use mose_lab::tokenizer::Tokenizer;
use mose_lab::train::{Flow, TrainConfig};
use serde::Serialize;

use crate::record::{RecordArgs, record_runs};
use crate::tools::{DEFAULT_MODEL, base_model, identity, read_background};
use crate::{CliError, Context, compute, read_file};

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

/// Routing accuracy under the robustness probes: 10% of letters replaced,
/// and the first 16 tokens only.
const TYPO_SHARE: f64 = 0.1;
const FIRST_TOKENS: usize = 16;

/// The MoSE settings with `settings` (NAME=VALUE, VALUE as JSON or a bare
/// word) applied over the defaults.
pub(crate) fn mose_config(settings: &[String]) -> Result<MoseConfig, CliError> {
    let mut value = serde_json::to_value(MoseConfig::new()).map_err(CliError::failed)?;
    let names: Vec<String> = value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    for setting in settings {
        let Some((name, raw)) = setting.split_once('=') else {
            return Err(CliError::Input(format!(
                "--mose {setting}: write NAME=VALUE, e.g. router=key"
            )));
        };
        if !names.iter().any(|n| n == name) {
            return Err(CliError::Input(format!(
                "--mose {setting}: no setting {name}; the settings are {}",
                names.join(", ")
            )));
        }
        let parsed = serde_json::from_str(raw).unwrap_or(serde_json::Value::String(raw.into()));
        value[name] = parsed;
    }
    serde_json::from_value(value)
        .map_err(|e| CliError::Input(format!("--mose {}: {e}", settings.join(" "))))
}

/// Held-out samples per task, for the robustness probes.
fn heldout_samples(tasks: &[ProjectTask]) -> Vec<Vec<Sample>> {
    tasks
        .iter()
        .map(|t| {
            t.split
                .heldout
                .iter()
                .map(|&i| t.samples[i].clone())
                .collect()
        })
        .collect()
}

/// Routing accuracy of a routed learner with typos and on first tokens only.
fn robustness(
    model: &Llama,
    learner: &Learner,
    tokenizer: &Tokenizer,
    heldout: &[Vec<Sample>],
    data: &DataConfig,
    seed: u64,
    device: &burn::tensor::Device,
) -> Result<(Option<f64>, Option<f64>), CliError> {
    if !learner.method().is_routed() {
        return Ok((None, None));
    }
    let accuracy = |probe| {
        pollster::block_on(routing_accuracy(
            model, learner, tokenizer, heldout, data, probe, 32, device,
        ))
        .map_err(CliError::failed)
    };
    let typos = Probe::Typos {
        share: TYPO_SHARE,
        seed,
    };
    Ok((
        accuracy(typos)?,
        accuracy(Probe::FirstTokens(FIRST_TOKENS))?,
    ))
}

/// The `--methods` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MethodArg {
    Mose,
    LoraPerTask,
    SeqLora,
    MoeLora,
}

impl From<MethodArg> for Method {
    fn from(m: MethodArg) -> Self {
        match m {
            MethodArg::Mose => Method::Mose,
            MethodArg::LoraPerTask => Method::LoraPerTask,
            MethodArg::SeqLora => Method::SeqLora,
            MethodArg::MoeLora => Method::MoeLora,
        }
    }
}

/// Arguments of `mose eval`.
#[derive(clap::Args, Debug)]
pub(crate) struct EvalArgs {
    /// A project file written by `mose train` or exported from the app.
    project: PathBuf,
    /// The base model folder the project was trained on.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
}

/// Arguments of `mose route`.
#[derive(clap::Args, Debug)]
pub(crate) struct RouteArgs {
    /// A project file with a MoSE state.
    project: PathBuf,
    /// The text to route.
    prompt: String,
    /// The base model folder the project was trained on.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
}

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

#[derive(Serialize)]
pub(crate) struct MethodResult {
    pub method: Method,
    pub summary_routed: Summary,
    pub summary_oracle: Summary,
    pub routing_accuracy: Option<f64>,
    /// With 10% of letters replaced at random.
    pub routing_typos: Option<f64>,
    /// On the first 16 tokens of each sample only.
    pub routing_first16: Option<f64>,
    pub report: SequenceReport,
}

pub(crate) fn train(context: &Context, args: TrainArgs) -> Result<(), CliError> {
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
        for warning in examples.fitted.warnings(project.data.max_seq_len) {
            context.note(&format!("task {}: {warning}", task.name));
        }
    }
    let sequence = sequence_tasks(&project.tasks, &examples);
    let heldout = heldout_samples(&project.tasks);
    let pad = tokenizer.pad_id();
    let steps = project.train.steps_per_task;

    let mut results = Vec::new();
    for (learner, trained) in learners.iter_mut().zip(project.trained.iter_mut()) {
        let method = trained.method;
        let adopted = background
            .as_ref()
            .is_some_and(|b| learner.adopt_background(b, &identity.fingerprint));
        if !adopted && learner.needs_background() {
            context.note(&format!(
                "{}: the router will read {} texts the base model writes by itself (one-time; \
                 `mose background --model {}` keeps their statistics in the model folder \
                 for every later run with these settings)",
                method.name(),
                project.mose.background_texts,
                args.model.display()
            ));
        }
        let to_learn = sequence.len() - trained.report.learned();
        let bar = context.bar((steps * to_learn) as u64, method.name(), "steps");
        let mut on_event = |event: SequenceEvent| {
            match event {
                SequenceEvent::Step { task, report } => {
                    bar.set_message(format!(
                        "{} {}: loss {:.3}, {:.0} tok/s",
                        method.name(),
                        sequence[task].name,
                        report.loss,
                        report.tokens_per_second
                    ));
                    bar.inc(1);
                }
                SequenceEvent::Learned {
                    task,
                    capacity,
                    likeness,
                } => bar.suspend(|| {
                    // How the task read to the router before it trained.
                    let like = likeness.map_or_else(String::new, |l| {
                        format!(
                            "; {:.0}% of its samples read as {}'s",
                            100.0 * l.share,
                            sequence[l.task].name
                        )
                    });
                    context.note(&format!(
                        "{}: learned {} ({} sub-experts, {} new, {} reused{like})",
                        method.name(),
                        sequence[task].name,
                        capacity.experts_total,
                        capacity.experts_new,
                        capacity.experts_reused
                    ))
                }),
                SequenceEvent::Scored { .. } => {}
            }
            Flow::Continue
        };
        let finished = pollster::block_on(continue_sequence(
            &model,
            learner,
            &mut trained.report,
            &sequence,
            pad,
            &project.train,
            project.train.query_batch_size,
            &device,
            &mut on_event,
        ))
        .map_err(CliError::failed)?;
        debug_assert!(finished, "the sequence is never stopped here");
        bar.finish_and_clear();
        trained.state =
            pollster::block_on(learner.to_bytes(model.config())).map_err(CliError::failed)?;
        let (routing_typos, routing_first16) = robustness(
            &model,
            learner,
            &tokenizer,
            &heldout,
            &project.data,
            seed,
            &device,
        )?;
        let report = trained.report.clone();
        results.push(MethodResult {
            method,
            summary_routed: report.summary(Routing::Routed),
            summary_oracle: report.summary(Routing::Oracle),
            routing_accuracy: report.confusion().and_then(|c| c.accuracy()),
            routing_typos,
            routing_first16,
            report,
        });
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

/// R matrices and summaries, as a person reads them.
fn results_text(results: &[MethodResult]) -> String {
    let mut text = String::new();
    for r in results {
        let report = &r.report;
        let _ = writeln!(text, "\n{} ({:.0} s)", r.method.name(), report.seconds);
        let names = &report.tasks;
        let width = names.iter().map(|n| n.len()).max().unwrap_or(4).max(8);
        table_row(&mut text, "after \\ on", names.clone(), width);
        let base = report.base.iter().map(|s| s.log_likelihood);
        table_row(&mut text, "base", scores(base), width);
        for (name, row) in names.iter().zip(report.r_matrix(Routing::Routed)) {
            table_row(&mut text, name, scores(row), width);
        }
        let s = &r.summary_routed;
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        let _ = writeln!(
            text,
            "  ACC {:.3}  BWT {}  FWT {}  forgetting {}  (oracle ACC {:.3})",
            s.acc,
            opt(s.bwt),
            opt(s.fwt),
            opt(s.forgetting),
            r.summary_oracle.acc
        );
        if let Some(acc) = r.routing_accuracy {
            let percent = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.1}%", v * 100.0));
            let _ = writeln!(
                text,
                "  routing accuracy {:.1}% (with {:.0}% typos {}, first {FIRST_TOKENS} tokens only {})",
                acc * 100.0,
                TYPO_SHARE * 100.0,
                percent(r.routing_typos),
                percent(r.routing_first16)
            );
        }
        if let Some(confusion) = report.confusion() {
            let _ = writeln!(
                text,
                "  routing (held-out samples of each task, by the task chosen):"
            );
            let mut columns = names.clone();
            columns.push("none".into());
            table_row(&mut text, "task \\ to", columns, width);
            for (i, (name, row)) in names.iter().zip(&confusion.counts).enumerate() {
                let mut cells: Vec<String> = row.iter().map(usize::to_string).collect();
                cells.push(confusion.none.get(i).copied().unwrap_or(0).to_string());
                table_row(&mut text, name, cells, width);
            }
        }
        let _ = writeln!(text, "  capacity after each task:");
        for (name, c) in names.iter().zip(&report.capacity) {
            let _ = writeln!(
                text,
                "    {name:<width$} {} sub-experts ({} new, {} reused), {} values trained, {} in all",
                c.experts_total,
                c.experts_new,
                c.experts_reused,
                c.trainable_params,
                c.total_params
            );
        }
    }
    text
}

/// Scores as the R matrix prints them.
fn scores(values: impl IntoIterator<Item = f64>) -> Vec<String> {
    values.into_iter().map(|v| format!("{v:.3}")).collect()
}

/// One row of a matrix: its label, then each cell right-aligned in `width`.
fn table_row(text: &mut String, label: &str, cells: Vec<String>, width: usize) {
    let _ = write!(text, "  {label:<width$}");
    for cell in cells {
        let _ = write!(text, " {cell:>width$}");
    }
    let _ = writeln!(text);
}

/// The project file, checked against the base model.
fn load_project(path: &Path, identity: &BaseModel) -> Result<Project, CliError> {
    let project = Project::from_bytes(&read_file(path)?)
        .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
    project.check_base_model(identity).map_err(|e| match e {
        ProjectError::WrongBaseModel { .. } => CliError::Input(format!(
            "{}: {e}: pass --model with that model's folder",
            path.display()
        )),
        e => CliError::Input(format!("{}: {e}", path.display())),
    })?;
    Ok(project)
}

pub(crate) fn eval(context: &Context, args: EvalArgs) -> Result<(), CliError> {
    let compute = compute(context.backend)?;
    let device = compute.device.clone();
    let (model, tokenizer, identity) = base_model(&args.model, &device)?;
    let project = load_project(&args.project, &identity)?;
    let examples = project_examples(&project, &tokenizer).map_err(CliError::input)?;
    let pad = tokenizer.pad_id();
    let heldout = heldout_samples(&project.tasks);
    let mut results = Vec::new();
    for trained in &project.trained {
        let learner = Learner::from_bytes(&trained.state, model.config(), &device)
            .map_err(|e| CliError::Input(format!("{}: {e}", args.project.display())))?;
        // Score every learned task again from the saved state: the last row.
        let mut report = trained.report.clone();
        let learned = learner.tasks_learned().max(report.routed.len());
        let bar = context.bar(learned as u64, trained.method.name(), "tasks");
        let mut routed = Vec::new();
        let mut oracle = Vec::new();
        for (j, TaskExamples { heldout, .. }) in
            examples.iter().enumerate().take(report.tasks.len())
        {
            let score = |routing| {
                score_task(
                    &model,
                    Some(&learner),
                    j,
                    heldout,
                    pad,
                    routing,
                    32,
                    &device,
                )
            };
            let r = pollster::block_on(score(Routing::Routed)).map_err(CliError::failed)?;
            let o = match trained.method.is_routed() {
                true => pollster::block_on(score(Routing::Oracle)).map_err(CliError::failed)?,
                false => r.clone(),
            };
            routed.push(r);
            oracle.push(o);
            bar.inc(1);
        }
        bar.finish_and_clear();
        if let (Some(last_r), Some(last_o)) = (report.routed.last_mut(), report.oracle.last_mut()) {
            *last_r = routed;
            *last_o = oracle;
        }
        let (routing_typos, routing_first16) = robustness(
            &model,
            &learner,
            &tokenizer,
            &heldout,
            &project.data,
            project.seed,
            &device,
        )?;
        results.push(MethodResult {
            method: trained.method,
            summary_routed: report.summary(Routing::Routed),
            summary_oracle: report.summary(Routing::Oracle),
            routing_accuracy: report.confusion().and_then(|c| c.accuracy()),
            routing_typos,
            routing_first16,
            report,
        });
    }
    let text = results_text(&results)
        + "\n(the last row of each matrix was scored again now from the saved states; the rows before it are as recorded after each task)\n";
    context.finish(&results, &text)
}

/// The learner of `method` in the project at `path`, for the base model
/// `checkpoint` loaded from `model_dir`, with the project's data settings.
pub(crate) fn project_learner(
    path: &Path,
    method: &str,
    model_dir: &Path,
    checkpoint: &Checkpoint,
    model: &Llama,
    device: &burn::tensor::Device,
) -> Result<(Learner, DataConfig), CliError> {
    let project = load_project(path, &identity(model_dir, checkpoint))?;
    let trained = project
        .trained
        .iter()
        .find(|t| t.method.name() == method)
        .ok_or_else(|| {
            let have: Vec<&str> = project.trained.iter().map(|t| t.method.name()).collect();
            CliError::Input(format!(
                "{} has no {method} state; it has {}; pass --method with one of them",
                path.display(),
                have.join(", ")
            ))
        })?;
    let learner = Learner::from_bytes(&trained.state, model.config(), device)
        .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
    Ok((learner, project.data))
}

#[derive(Serialize)]
struct RouteOutput {
    prompt: String,
    /// `(task, score)` for every learned task: the router's probability
    /// (Gaussian router) or cosine similarity (key router).
    scores: Vec<(String, f32)>,
    /// The chosen tasks and their mixing weights.
    chosen: Vec<(String, f32)>,
    /// No learned task matches: the base model answers.
    none_of_these: bool,
}

pub(crate) fn route(context: &Context, args: RouteArgs) -> Result<(), CliError> {
    let compute = compute(context.backend)?;
    let device = compute.device.clone();
    let (model, tokenizer, identity) = base_model(&args.model, &device)?;
    let project = load_project(&args.project, &identity)?;
    let routed = project
        .trained
        .iter()
        .find(|t| t.method.is_routed())
        .ok_or_else(|| {
            CliError::Input(format!(
                "{} has no routed method (mose or lora-per-task); train one with --methods mose",
                args.project.display()
            ))
        })?;
    let learner = Learner::from_bytes(&routed.state, model.config(), &device)
        .map_err(|e| CliError::Input(format!("{}: {e}", args.project.display())))?;
    let route = pollster::block_on(route_prompt(
        &model,
        &learner,
        &tokenizer,
        &args.prompt,
        &project.data,
        &device,
    ))
    .map_err(CliError::failed)?;
    let names = learner.task_names();
    let output = RouteOutput {
        prompt: args.prompt,
        scores: route
            .scores
            .iter()
            .enumerate()
            .map(|(i, &s)| (names[i].to_string(), s))
            .collect(),
        chosen: route
            .chosen
            .iter()
            .map(|&(i, w)| (names[i].to_string(), w))
            .collect(),
        none_of_these: route.none_of_these,
    };
    let mut text = String::new();
    let width = names.iter().map(|n| n.len()).max().unwrap_or(4);
    for (name, score) in &output.scores {
        let bar = "#".repeat((score.max(0.0) * 40.0).round() as usize);
        let mark = match output.chosen.iter().any(|(n, _)| n == name) {
            true => " <- chosen",
            false => "",
        };
        let _ = writeln!(text, "{name:<width$} {score:>6.3} {bar}{mark}");
    }
    if output.none_of_these {
        let _ = writeln!(
            text,
            "no learned task matches this text: the base model answers"
        );
    }
    context.finish(&output, &text)
}
