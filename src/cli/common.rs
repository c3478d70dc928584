//! What every subcommand shares: the device `--backend` names, errors and
//! their exit codes, reading files, the base model (a folder, or the
//! embedded one built into the command), a project checked against it, and
//! the MoSE settings and methods as arguments name them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::ValueEnum;

use mose_lab::backend::{self, BackendKind, Compute};
use mose_lab::data::DataConfig;
use mose_lab::model::{Checkpoint, Llama};
use mose_lab::mose::{BACKGROUND_FILE, Background, Learner, Method, MoseConfig};
use mose_lab::project::{BaseModel, Project, ProjectError};
use mose_lab::tokenizer::Tokenizer;

use burn::module::Module;

/// The `--backend` values.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BackendArg {
    /// burn's CPU backend (always there).
    Cpu,
    /// burn-wgpu: Vulkan, Metal or DX12 (Mesa's lavapipe where there is no GPU).
    Wgpu,
    /// burn's CUDA backend: an NVIDIA GPU (needs a build with `--features cuda`).
    Cuda,
}

/// Why a command failed, and so its exit code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// A file or argument the person gave cannot be used (exit code 2).
    #[error("{0}")]
    Input(String),
    /// The work failed for another reason (exit code 1).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub(crate) fn input(error: impl std::fmt::Display) -> Self {
        CliError::Input(error.to_string())
    }

    pub(crate) fn failed(error: impl std::fmt::Display) -> Self {
        CliError::Failed(error.to_string())
    }

    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Input(_) => ExitCode::from(2),
            CliError::Failed(_) => ExitCode::from(1),
        }
    }
}

/// A path with what went wrong reading or writing it.
pub(crate) fn io_error(path: &std::path::Path, error: std::io::Error) -> CliError {
    let message = format!("{}: {error}", path.display());
    match error.kind() {
        std::io::ErrorKind::NotFound
        | std::io::ErrorKind::PermissionDenied
        | std::io::ErrorKind::IsADirectory
        | std::io::ErrorKind::InvalidData => CliError::Input(message),
        _ => CliError::Failed(message),
    }
}

/// Reads a file the person named; a missing or unreadable file is input error.
pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| io_error(path, e))
}

/// The device `--backend` names.
pub(crate) fn compute(backend: BackendArg) -> Result<Compute, CliError> {
    match backend {
        BackendArg::Cpu => Ok(backend::cpu()),
        BackendArg::Wgpu => pollster::block_on(backend::gpu()).map_err(|e| {
            CliError::Failed(format!(
                "{e}; install a Vulkan driver (Mesa's mesa-vulkan-drivers gives a software one), or use --backend cpu"
            ))
        }),
        BackendArg::Cuda => cuda(),
    }
}

#[cfg(feature = "cuda")]
fn cuda() -> Result<Compute, CliError> {
    backend::cuda().map_err(|e| {
        CliError::Failed(format!(
            "{e}; install the NVIDIA driver (`nvidia-smi` should list the GPU), or use --backend wgpu or cpu"
        ))
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> Result<Compute, CliError> {
    Err(CliError::Input(
        "this build has no CUDA; rebuild with `--features cuda` (after scripts/llvm.sh), or use --backend wgpu or cpu"
            .to_string(),
    ))
}

/// Where output goes: text for people, or one JSON document.
pub(crate) struct Context {
    /// `--json`: one JSON document on stdout, no bars or notes.
    pub(crate) json: bool,
    /// `--backend`.
    pub(crate) backend: BackendArg,
}

/// A folder argument with a default.
pub(crate) fn default_path(path: Option<PathBuf>, default: &str) -> PathBuf {
    path.unwrap_or_else(|| PathBuf::from(default))
}

pub(crate) fn device_name(compute: &mose_lab::backend::Compute) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    match (compute.kind, &compute.adapter) {
        (BackendKind::Wgpu, Some(adapter)) => format!("wgpu: {}", adapter.name),
        (BackendKind::Cuda, _) => "cuda: device 0".to_string(),
        _ => format!("cpu ({cores} threads)"),
    }
}

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

pub(crate) fn parameter_count(checkpoint: &Checkpoint) -> Result<usize, CliError> {
    let model = checkpoint
        .model(&mose_lab::backend::cpu().device)
        .map_err(CliError::input)?;
    Ok(model.num_params())
}

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

/// The project file, checked against the base model.
pub(crate) fn load_project(path: &Path, identity: &BaseModel) -> Result<Project, CliError> {
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
