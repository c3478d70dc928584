//! `mose export`: one learned task of a project as a Hugging Face model
//! folder, its adapter folded into the base model's weights
//! (`mose_lab::export`), for transformers or llama.cpp's converter.

use std::path::PathBuf;

use mose_lab::export::{Exported, export};
use serde::Serialize;

use crate::common::project_learner;
use crate::common::{CliError, Context, compute};
use crate::common::{DEFAULT_MODEL, load_model};

/// Arguments of `mose export`.
#[derive(clap::Args, Debug)]
pub(crate) struct ExportArgs {
    /// The project file (what `mose train --out` wrote).
    project: PathBuf,
    /// The learned task to export, by name. Not for seq-lora, whose one
    /// adapter serves every task.
    #[arg(long)]
    task: Option<String>,
    /// Which of the project's methods to export from.
    #[arg(long, default_value = "mose")]
    method: String,
    /// The base model folder the project was trained on.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
    /// The folder to write config.json, model.safetensors and tokenizer.json
    /// into (made if missing; files there are replaced).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Serialize)]
struct ExportOutput {
    out: String,
    method: String,
    /// The exported task; `None` for seq-lora's shared adapter.
    task: Option<String>,
    weight_bytes: usize,
}

pub(crate) fn run(context: &Context, args: ExportArgs) -> Result<(), CliError> {
    let compute = compute(context.backend)?;
    let device = compute.device.clone();
    let checkpoint = load_model(&args.model)?;
    let model = checkpoint.model(&device).map_err(CliError::input)?;
    let (learner, _) = project_learner(
        &args.project,
        &args.method,
        &args.model,
        &checkpoint,
        &model,
        &device,
    )?;
    let names: Vec<String> = learner.task_names().iter().map(|n| n.to_string()).collect();
    let what = match (&args.task, learner.method().is_routed()) {
        (Some(task), true) => {
            Exported::Task(names.iter().position(|n| n == task).ok_or_else(|| {
                CliError::Input(format!(
                    "{} has no learned task {task:?} in its {} state; it has {}",
                    args.project.display(),
                    args.method,
                    names.join(", ")
                ))
            })?)
        }
        (None, true) => {
            return Err(CliError::Input(format!(
                "name the task to export with --task; {} has {}",
                args.project.display(),
                names.join(", ")
            )));
        }
        (Some(_), false) => {
            return Err(CliError::Input(format!(
                "{} keeps one adapter for every task: leave out --task",
                args.method
            )));
        }
        (None, false) => Exported::Shared,
    };
    let spinner = context.spinner("folding the adapter into the weights");
    let exported = pollster::block_on(export(&model, &learner, what, &device))
        .map_err(CliError::input)?
        .with_tokenizer(
            checkpoint.tokenizer_json.clone(),
            checkpoint.chat_template.clone(),
        );
    spinner.finish_and_clear();
    exported.write_dir(&args.out).map_err(CliError::failed)?;
    let output = ExportOutput {
        out: args.out.display().to_string(),
        method: args.method,
        task: args.task,
        weight_bytes: exported.weights.len(),
    };
    let text = format!(
        "wrote {} ({} of {}, {:.1} MB of f32 weights): load it with transformers' \
         AutoModelForCausalLM.from_pretrained(\"{}\")\n",
        output.out,
        output.task.as_deref().unwrap_or("the shared adapter"),
        output.method,
        output.weight_bytes as f64 / 1e6,
        output.out,
    );
    context.finish(&output, &text)
}
