//! `mose route`: which learned task the router picks for a prompt (or
//! none), with every task's score.

use std::fmt::Write as _;
use std::path::PathBuf;

use mose_lab::eval::route_prompt;
use mose_lab::model::FrozenBase;
use mose_lab::mose::Learner;
use serde::Serialize;

use crate::common::{CliError, Context, DEFAULT_MODEL, base_model, compute, load_project};

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

pub(crate) fn run(context: &Context, args: RouteArgs) -> Result<(), CliError> {
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
    let base = FrozenBase::new(&model, &tokenizer, &device);
    let route = pollster::block_on(route_prompt(
        base,
        &learner,
        &tokenizer,
        &args.prompt,
        &project.data,
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
