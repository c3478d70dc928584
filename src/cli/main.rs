//! `mose`: the native front of MoSE Lab. It pretrains the embedded base
//! model, teaches a model a sequence of tasks, scores and routes, generates,
//! imports GGUF files, exports a learned task as a model folder, and says
//! what a machine, a model or a project holds.
//!
//! Every long job shows a progress bar with its rate and time left on the
//! terminal (stderr); `--json` prints one JSON document on stdout for
//! programs. A failure prints one message that says what to do; the exit
//! code is 2 for bad arguments or input files, 1 for anything else.

mod background;
mod bench;
mod export;
mod output;
mod pretrain;
mod record;
mod sequence;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use mose_lab::backend::{self, Compute};

/// Teach a small language model a sequence of your own text tasks, with
/// Mixtures of SubExperts.
#[derive(Parser, Debug)]
#[command(name = "mose", version, about, long_about = None)]
struct Cli {
    /// Where the model computes.
    #[arg(long, global = true, value_enum, default_value_t = BackendArg::Cpu)]
    backend: BackendArg,
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a byte-level BPE tokenizer and a base model from scratch on a
    /// corpus (what scripts/data.sh builds), then write the model, its
    /// tokenizer and a model card.
    Pretrain(pretrain::Args),
    /// Teach a base model a sequence of tasks with MoSE and baselines, score
    /// every task after each, and save it all as a project file.
    Train(sequence::TrainArgs),
    /// Score a project's saved states on every task's held-out samples and
    /// print the R matrix, ACC/BWT/FWT and routing accuracy.
    Eval(sequence::EvalArgs),
    /// Show which task the router picks for a prompt (or none), with every task's score.
    Route(sequence::RouteArgs),
    /// Generate text from a prompt with a base model.
    Generate(tools::GenerateArgs),
    /// Write one learned task as a Hugging Face model folder, its adapter
    /// folded into the base model's weights (for transformers or llama.cpp).
    Export(export::ExportArgs),
    /// Import a Llama GGUF file (llama.cpp's format) as a Hugging Face folder.
    ImportGguf(tools::ImportArgs),
    /// Say what this machine can compute on, and what a model folder holds.
    Info(tools::InfoArgs),
    /// Write the statistics of a base model's own text into its folder, for
    /// the router's "none of these" (every later run with the same settings
    /// reads them instead of writing the texts again).
    Background(background::BackgroundArgs),
    /// Time training and generation on the --backend device and print the
    /// figures (tokens per second, FLOP/s against the device's peak).
    Bench(bench::BenchArgs),
}

/// The `--backend` values.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum BackendArg {
    /// burn's CPU backend (always there).
    Cpu,
    /// burn-wgpu: Vulkan, Metal or DX12 (Mesa's lavapipe where there is no GPU).
    Wgpu,
    /// burn's CUDA backend: an NVIDIA GPU (needs a build with `--features cuda`).
    Cuda,
}

/// Why a command failed, and so its exit code.
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// A file or argument the person gave cannot be used (exit code 2).
    #[error("{0}")]
    Input(String),
    /// The work failed for another reason (exit code 1).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    fn input(error: impl std::fmt::Display) -> Self {
        CliError::Input(error.to_string())
    }

    fn failed(error: impl std::fmt::Display) -> Self {
        CliError::Failed(error.to_string())
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Input(_) => ExitCode::from(2),
            CliError::Failed(_) => ExitCode::from(1),
        }
    }
}

/// A path with what went wrong reading or writing it.
fn io_error(path: &std::path::Path, error: std::io::Error) -> CliError {
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
fn read_file(path: &std::path::Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| io_error(path, e))
}

/// The device `--backend` names.
fn compute(backend: BackendArg) -> Result<Compute, CliError> {
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
    json: bool,
    backend: BackendArg,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let context = Context {
        json: cli.json,
        backend: cli.backend,
    };
    let result = match cli.command {
        Command::Pretrain(args) => pretrain::run(&context, args),
        Command::Train(args) => sequence::train(&context, args),
        Command::Eval(args) => sequence::eval(&context, args),
        Command::Route(args) => sequence::route(&context, args),
        Command::Generate(args) => tools::generate(&context, args),
        Command::Export(args) => export::run(&context, args),
        Command::ImportGguf(args) => tools::import_gguf(&context, args),
        Command::Info(args) => tools::info(&context, args),
        Command::Background(args) => background::run(&context, args),
        Command::Bench(args) => bench::run(&context, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            error.exit_code()
        }
    }
}

/// A folder argument with a default.
fn default_path(path: Option<PathBuf>, default: &str) -> PathBuf {
    path.unwrap_or_else(|| PathBuf::from(default))
}
