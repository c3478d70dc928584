//! `mose generate`, `mose import-gguf` and `mose info`: a base model on its own.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use burn::module::Module;
use mose_lab::data::{DataConfig, generation_prompt};
use mose_lab::eval::generate_routed;
use mose_lab::model::generate::{GenerationConfig, generate as generate_text};
use mose_lab::model::{Checkpoint, Llama};
use mose_lab::mose::{BACKGROUND_FILE, Background};
use mose_lab::project::{BaseModel, PROJECT_FORMAT_VERSION, Project};
use mose_lab::tokenizer::Tokenizer;
use serde::Serialize;

use crate::pretrain::device_name;
use crate::{BackendArg, CliError, Context, compute, read_file};

/// The model folder the commands use when none is named: the embedded
/// default, read from this folder when it is there (in the repository,
/// where `mose pretrain` writes it) and otherwise from the copy built into
/// the command ([`EMBEDDED_MODEL`]), so that a project on the embedded model
/// opens from any folder.
pub(crate) const DEFAULT_MODEL: &str = "www/model";

/// The embedded model's files as they were when this command was built.
const EMBEDDED_MODEL: [(&str, &[u8]); 3] = [
    ("config.json", include_bytes!("../../www/model/config.json")),
    (
        "model.safetensors",
        include_bytes!("../../www/model/model.safetensors"),
    ),
    (
        "tokenizer.json",
        include_bytes!("../../www/model/tokenizer.json"),
    ),
];

/// The router's statistics of the embedded model's own text ([`BACKGROUND_FILE`]).
const EMBEDDED_BACKGROUND: &[u8] = include_bytes!("../../www/model/background.safetensors");

/// Whether `dir` is the default model folder and is not there, so that the
/// built-in copy stands in for it.
fn built_in(dir: &Path) -> bool {
    dir == Path::new(DEFAULT_MODEL) && !dir.join("config.json").exists()
}

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

/// Arguments of `mose import-gguf`.
#[derive(clap::Args, Debug)]
pub(crate) struct ImportArgs {
    /// The GGUF file.
    file: PathBuf,
    /// The folder to write config.json, model.safetensors and tokenizer.json into.
    #[arg(long)]
    out: PathBuf,
}

/// Arguments of `mose info`.
#[derive(clap::Args, Debug)]
pub(crate) struct InfoArgs {
    /// A model folder to describe.
    #[arg(long)]
    model: Option<PathBuf>,
    /// A project file to describe.
    #[arg(long)]
    project: Option<PathBuf>,
}

/// Loads a model folder; anything wrong with it is the person's input.
pub(crate) fn load_model(dir: &Path) -> Result<Checkpoint, CliError> {
    if built_in(dir) {
        let files: Vec<(String, Vec<u8>)> = EMBEDDED_MODEL
            .iter()
            .map(|(name, bytes)| (name.to_string(), bytes.to_vec()))
            .collect();
        return Checkpoint::from_files(&files).map_err(CliError::failed);
    }
    if !dir.join("config.json").exists() {
        return Err(CliError::Input(format!(
            "{} is not a model folder (no config.json); pass --model with a folder holding config.json, model.safetensors and tokenizer.json",
            dir.display()
        )));
    }
    Checkpoint::read_dir(dir).map_err(CliError::input)
}

/// The base model, its tokenizer and its identity.
pub(crate) fn base_model(
    dir: &Path,
    device: &burn::tensor::Device,
) -> Result<(Llama, Tokenizer, BaseModel), CliError> {
    let checkpoint: Checkpoint = load_model(dir)?;
    let model = checkpoint.model(device).map_err(CliError::input)?;
    let tokenizer = checkpoint.tokenizer().map_err(CliError::input)?;
    Ok((model, tokenizer, identity(dir, &checkpoint)))
}

/// The identity a project records of the base model in `dir`.
pub(crate) fn identity(dir: &Path, checkpoint: &Checkpoint) -> BaseModel {
    let name = dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    BaseModel::of(&name, &checkpoint.config, &checkpoint.weights)
}

/// The statistics of the base model's own text that the model folder `dir`
/// carries ([`BACKGROUND_FILE`]), if it carries them.
pub(crate) fn read_background(dir: &Path) -> Result<Option<Background>, CliError> {
    if built_in(dir) {
        return Background::from_bytes(EMBEDDED_BACKGROUND)
            .map(Some)
            .map_err(CliError::failed);
    }
    let path = dir.join(BACKGROUND_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let bytes = read_file(&path)?;
    Background::from_bytes(&bytes)
        .map(Some)
        .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))
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

pub(crate) fn generate(context: &Context, args: GenerateArgs) -> Result<(), CliError> {
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
        Some(path) => Some(crate::sequence::project_learner(
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
            let (route, generation) = pollster::block_on(generate_routed(
                &model,
                learner,
                &tokenizer,
                &args.prompt,
                data,
                &settings,
                &compute.device,
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

#[derive(Serialize)]
struct ImportOutput {
    out: String,
    parameters: usize,
    config: serde_json::Value,
}

pub(crate) fn import_gguf(context: &Context, args: ImportArgs) -> Result<(), CliError> {
    let bytes = read_file(&args.file)?;
    let spinner = context.spinner("importing");
    let checkpoint = Checkpoint::from_gguf(&bytes)
        .map_err(|e| CliError::Input(format!("{}: {e}", args.file.display())))?;
    checkpoint.write_dir(&args.out).map_err(CliError::failed)?;
    spinner.finish_and_clear();
    let output = ImportOutput {
        out: args.out.display().to_string(),
        parameters: parameter_count(&checkpoint)?,
        config: serde_json::from_str(&checkpoint.config.to_json()).map_err(CliError::failed)?,
    };
    let text = format!("wrote {} ({} parameters)\n", output.out, output.parameters);
    context.finish(&output, &text)
}

fn parameter_count(checkpoint: &Checkpoint) -> Result<usize, CliError> {
    let model = checkpoint
        .model(&mose_lab::backend::cpu().device)
        .map_err(CliError::input)?;
    Ok(model.num_params())
}

#[derive(Serialize)]
struct InfoOutput {
    version: &'static str,
    devices: Vec<DeviceInfo>,
    model: Option<ModelInfo>,
    project: Option<ProjectInfo>,
}

#[derive(Serialize)]
struct ProjectInfo {
    path: String,
    format_version: u32,
    base_model: BaseModel,
    /// (name, training samples, held-out samples, fixed split)
    tasks: Vec<(String, usize, usize, bool)>,
    /// (method, tasks learned)
    trained: Vec<(String, usize)>,
}

#[derive(Serialize)]
struct DeviceInfo {
    backend: &'static str,
    available: bool,
    detail: String,
}

#[derive(Serialize)]
struct ModelInfo {
    path: String,
    parameters: usize,
    vocab_size: usize,
    layers: usize,
    hidden_size: usize,
    heads: usize,
    kv_heads: usize,
    context: usize,
    /// The statistics of its own text the folder carries, if any.
    background: Option<BackgroundInfo>,
}

#[derive(Serialize)]
struct BackgroundInfo {
    texts: usize,
    tokens: usize,
    /// Whether they were made from these weights (a learner adopts only those).
    for_these_weights: bool,
}

pub(crate) fn info(context: &Context, args: InfoArgs) -> Result<(), CliError> {
    let mut devices = vec![DeviceInfo {
        backend: "cpu",
        available: true,
        detail: device_name(&mose_lab::backend::cpu()),
    }];
    devices.push(match compute(BackendArg::Wgpu) {
        Ok(gpu) => DeviceInfo {
            backend: "wgpu",
            available: true,
            detail: format!(
                "{}{}",
                device_name(&gpu),
                match gpu.adapter.as_ref().is_some_and(|a| a.is_software()) {
                    true => " (software: correct, but slow)",
                    false => "",
                }
            ),
        },
        Err(e) => DeviceInfo {
            backend: "wgpu",
            available: false,
            detail: e.to_string(),
        },
    });
    devices.push(match compute(BackendArg::Cuda) {
        Ok(gpu) => DeviceInfo {
            backend: "cuda",
            available: true,
            detail: device_name(&gpu),
        },
        Err(e) => DeviceInfo {
            backend: "cuda",
            available: false,
            detail: e.to_string(),
        },
    });
    let model = match &args.model {
        None => None,
        Some(dir) => {
            let checkpoint = load_model(dir)?;
            let c = &checkpoint.config;
            let fingerprint = identity(dir, &checkpoint).fingerprint;
            let background = read_background(dir)?.map(|b| BackgroundInfo {
                texts: b.recipe().texts,
                tokens: b.recipe().tokens,
                for_these_weights: b.fingerprint() == fingerprint,
            });
            Some(ModelInfo {
                path: dir.display().to_string(),
                parameters: parameter_count(&checkpoint)?,
                vocab_size: c.vocab_size,
                layers: c.num_hidden_layers,
                hidden_size: c.hidden_size,
                heads: c.num_attention_heads,
                kv_heads: c.kv_heads(),
                context: c.max_position_embeddings,
                background,
            })
        }
    };
    let project = match &args.project {
        None => None,
        Some(path) => {
            let project = Project::from_bytes(&read_file(path)?)
                .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
            Some(ProjectInfo {
                path: path.display().to_string(),
                format_version: PROJECT_FORMAT_VERSION,
                base_model: project.base_model.clone(),
                tasks: project
                    .tasks
                    .iter()
                    .map(|t| {
                        (
                            t.name.clone(),
                            t.split.train.len(),
                            t.split.heldout.len(),
                            t.split_seed.is_none(),
                        )
                    })
                    .collect(),
                trained: project
                    .trained
                    .iter()
                    .map(|t| (t.method.name().to_string(), t.report.routed.len()))
                    .collect(),
            })
        }
    };
    let mut text = format!("mose {}\ndevices:\n", env!("CARGO_PKG_VERSION"));
    for d in &devices {
        text += &format!(
            "  {:<5} {}\n",
            d.backend,
            match d.available {
                true => d.detail.clone(),
                false => format!("not available: {}", d.detail),
            }
        );
    }
    if let Some(m) = &model {
        text += &format!(
            "model {}: {} parameters, vocabulary {}, {} layers, hidden {}, {} heads ({} kv), context {}\n",
            m.path,
            m.parameters,
            m.vocab_size,
            m.layers,
            m.hidden_size,
            m.heads,
            m.kv_heads,
            m.context
        );
        text += &match &m.background {
            None => "  no statistics of its own text: a learner writes them with its first task (`mose background` keeps them)\n".to_string(),
            Some(b) => format!(
                "  statistics of its own text: {} texts of {} tokens{}\n",
                b.texts,
                b.tokens,
                match b.for_these_weights {
                    true => "",
                    false => ", made for other weights (unused; write them again with `mose background`)",
                }
            ),
        };
    }
    if let Some(p) = &project {
        text += &format!(
            "project {} (format {}), base model {:?} {}\n",
            p.path, p.format_version, p.base_model.name, p.base_model.fingerprint
        );
        for (name, train, heldout, fixed) in &p.tasks {
            let split = if *fixed {
                "fixed split"
            } else {
                "seeded split"
            };
            text += &format!(
                "  task {name}: {train} training and {heldout} held-out samples ({split})\n"
            );
        }
        for (method, learned) in &p.trained {
            text += &format!("  {method}: {learned} task(s) learned\n");
        }
    }
    let output = InfoOutput {
        version: env!("CARGO_PKG_VERSION"),
        devices,
        model,
        project,
    };
    context.finish(&output, &text)
}
