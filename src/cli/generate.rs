//! `mose generate`: text from a prompt with a base model, or with what a
//! project learned, the router choosing the task.

use std::io::Write as _;
use std::path::PathBuf;

use mose_lab::data::{DataConfig, generation_prompt};
use mose_lab::eval::generate_routed;
use mose_lab::model::FrozenBase;
use mose_lab::model::generate::{GenerationConfig, generate as generate_text};
use serde::Serialize;

use crate::common::{CliError, Context, DEFAULT_MODEL, compute, load_model, project_learner};

/// Arguments of `mose generate`.
#[derive(clap::Args, Debug)]
pub(crate) struct GenerateArgs {
    /// The text to continue. On an instruct model a single `prompt =>`
    /// line is asked through its chat template, as a user turn.
    prompt: String,
    /// A model folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
    /// Most tokens to add.
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// Softmax temperature; 0 picks the likeliest token every time.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Keep only the k likeliest tokens before sampling.
    #[arg(long)]
    top_k: Option<usize>,
    /// Nucleus sampling: keep the likeliest tokens up to this probability.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Above 1 discourages repeating tokens.
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    /// Seeds the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A project file: generate with what it learned, the router choosing the task.
    #[arg(long)]
    project: Option<PathBuf>,
    /// Which of the project's methods generates (with --project).
    #[arg(long, default_value = "mose")]
    method: String,
    /// Keep the routed sub-experts beside the frozen weights for every token
    /// instead of folding them into the weights once (the same tokens, slower).
    #[arg(long)]
    no_merge: bool,
}

#[derive(Serialize)]
struct GenerateOutput {
    /// With --project: the tasks the router chose and their weights.
    routed_to: Option<Vec<(String, f32)>>,
    prompt: String,
    text: String,
    tokens: usize,
    tokens_per_second: f64,
    /// With --project: whether the adapter ran folded into the weights.
    merged: bool,
}

pub(crate) fn run(context: &Context, args: GenerateArgs) -> Result<(), CliError> {
    let checkpoint = load_model(&args.model)?;
    let compute = compute(context.backend)?;
    let model = checkpoint.model(&compute.device).map_err(CliError::input)?;
    let tokenizer = checkpoint.tokenizer().map_err(CliError::input)?;
    let settings = GenerationConfig {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        repetition_penalty: args.repetition_penalty,
        seed: args.seed,
        merge_adapter: !args.no_merge,
        ..GenerationConfig::default()
    };
    let learner = match &args.project {
        None => None,
        Some(path) => Some(project_learner(
            path,
            &args.method,
            &args.model,
            &checkpoint,
            &model,
            &compute.device,
        )?),
    };
    if !context.json {
        print!("{}", args.prompt);
    }
    let show = |piece: &str| {
        if !context.json {
            print!("{piece}");
            let _ = std::io::stdout().flush();
        }
    };
    let (routed_to, generation) = match &learner {
        None => {
            // A `prompt =>` line is asked as an instruct model's chat turn.
            let asked = generation_prompt(&args.prompt, &tokenizer, &DataConfig::default())
                .map_err(CliError::input)?;
            let generation = pollster::block_on(generate_text(
                &model,
                &tokenizer,
                &asked,
                &settings,
                &compute.device,
                show,
            ))
            .map_err(CliError::input)?;
            (None, generation)
        }
        Some((learner, data)) => {
            let base = FrozenBase::new(&model, &tokenizer, &compute.device);
            let (route, generation) = pollster::block_on(generate_routed(
                base,
                learner,
                &tokenizer,
                &args.prompt,
                data,
                &settings,
                show,
            ))
            .map_err(CliError::input)?;
            let names = learner.task_names();
            (
                Some(
                    route
                        .chosen
                        .iter()
                        .map(|&(t, w)| (names[t].to_string(), w))
                        .collect::<Vec<_>>(),
                ),
                generation,
            )
        }
    };
    if let Some(chosen) = &routed_to {
        context.note(&format!("\n(routed to {chosen:?})"));
    }
    let output = GenerateOutput {
        routed_to,
        prompt: args.prompt,
        tokens: generation.ids.len(),
        tokens_per_second: generation.ids.len() as f64 / generation.decode_seconds.max(1e-9),
        merged: generation.merged,
        text: generation.text,
    };
    context.finish(&output, "\n")
}
