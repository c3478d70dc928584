//! `mose info`: what this machine can compute on, and what a model folder
//! or a project file holds.

use std::path::PathBuf;

use mose_lab::project::{BaseModel, PROJECT_FORMAT_VERSION, Project};
use serde::Serialize;

use crate::common::{
    BackendArg, CliError, Context, compute, device_name, identity, load_model, parameter_count,
    read_background, read_file,
};

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

pub(crate) fn run(context: &Context, args: InfoArgs) -> Result<(), CliError> {
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
