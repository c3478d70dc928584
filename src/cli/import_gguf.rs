//! `mose import-gguf`: a Llama GGUF file (llama.cpp's format) written as a
//! Hugging Face model folder.

use std::path::PathBuf;

use mose_lab::model::Checkpoint;
use serde::Serialize;

use crate::common::{CliError, Context, parameter_count, read_file};

/// Arguments of `mose import-gguf`.
#[derive(clap::Args, Debug)]
pub(crate) struct ImportArgs {
    /// The GGUF file.
    file: PathBuf,
    /// The folder to write config.json, model.safetensors and tokenizer.json into.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Serialize)]
struct ImportOutput {
    out: String,
    parameters: usize,
    config: serde_json::Value,
}

pub(crate) fn run(context: &Context, args: ImportArgs) -> Result<(), CliError> {
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
