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
mod common;
mod eval;
mod export;
mod generate;
mod import_gguf;
mod info;
mod output;
mod pretrain;
mod record;
mod results;
mod route;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::common::{BackendArg, Context};

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
    Train(train::TrainArgs),
    /// Score a project's saved states on every task's held-out samples and
    /// print the R matrix, ACC/BWT/FWT and routing accuracy.
    Eval(eval::EvalArgs),
    /// Show which task the router picks for a prompt (or none), with every task's score.
    Route(route::RouteArgs),
    /// Generate text from a prompt with a base model.
    Generate(generate::GenerateArgs),
    /// Write one learned task as a Hugging Face model folder, its adapter
    /// folded into the base model's weights (for transformers or llama.cpp).
    Export(export::ExportArgs),
    /// Import a Llama GGUF file (llama.cpp's format) as a Hugging Face folder.
    ImportGguf(import_gguf::ImportArgs),
    /// Say what this machine can compute on, and what a model folder holds.
    Info(info::InfoArgs),
    /// Write the statistics of a base model's own text into its folder, for
    /// the router's "none of these" (every later run with the same settings
    /// reads them instead of writing the texts again).
    Background(background::BackgroundArgs),
    /// Time training and generation on the --backend device and print the
    /// figures (tokens per second, FLOP/s against the device's peak).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let context = Context {
        json: cli.json,
        backend: cli.backend,
    };
    let result = match cli.command {
        Command::Pretrain(args) => pretrain::run(&context, args),
        Command::Train(args) => train::run(&context, args),
        Command::Eval(args) => eval::run(&context, args),
        Command::Route(args) => route::run(&context, args),
        Command::Generate(args) => generate::run(&context, args),
        Command::Export(args) => export::run(&context, args),
        Command::ImportGguf(args) => import_gguf::run(&context, args),
        Command::Info(args) => info::run(&context, args),
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
