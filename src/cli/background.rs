//! `mose background`: the statistics of a base model's own text, written
//! into its folder ([`BACKGROUND_FILE`]) so that every learner on that model
//! with the same settings adopts them instead of writing the texts again
//! (docs/METHOD.md, "The base model's own text").

use std::path::PathBuf;

use mose_lab::model::FrozenBase;
use mose_lab::mose::{BACKGROUND_FILE, Learner, Method};
use mose_lab::train::{TrainConfig, base_model_background};
use serde::Serialize;

use crate::common::mose_config;
use crate::common::{CliError, Context, compute};
use crate::common::{DEFAULT_MODEL, base_model};

/// Arguments of `mose background`.
#[derive(clap::Args, Debug)]
pub(crate) struct BackgroundArgs {
    /// The base model folder; the file is written into it.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
    /// A MoSE setting, NAME=VALUE (repeatable), as `mose train` takes them:
    /// the statistics fit learners with the same settings.
    #[arg(long = "mose", value_name = "NAME=VALUE")]
    mose_settings: Vec<String>,
}

#[derive(Serialize)]
struct BackgroundOutput {
    file: String,
    fingerprint: String,
    texts: usize,
    tokens: usize,
    features: f64,
    seconds: f64,
}

pub(crate) fn run(context: &Context, args: BackgroundArgs) -> Result<(), CliError> {
    let compute = compute(context.backend)?;
    let device = compute.device.clone();
    let (model, tokenizer, identity) = base_model(&args.model, &device)?;
    let config = mose_config(&args.mose_settings)?;
    if config.background_texts == 0 {
        return Err(CliError::Input(
            "background_texts is 0, so no learner uses these statistics; set --mose background_texts=N above 0".into(),
        ));
    }
    let learner = Learner::new(Method::Mose, config.clone(), model.config(), 0, &device)
        .map_err(CliError::input)?;
    let spinner = context.spinner(&format!(
        "writing {} texts of {} tokens with {} and reading them for the router",
        config.background_texts,
        config.background_tokens,
        args.model.display()
    ));
    let started = std::time::Instant::now();
    let base = FrozenBase::new(&model, &tokenizer, &device);
    let background = pollster::block_on(base_model_background(
        base,
        &identity.fingerprint,
        &learner,
        &TrainConfig::new(),
    ))
    .map_err(CliError::failed)?
    .ok_or_else(|| {
        CliError::Input(format!(
            "{}'s config.json names no start (bos_token_id) or end token to write texts from",
            args.model.display()
        ))
    })?;
    spinner.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let path = args.model.join(BACKGROUND_FILE);
    let bytes = background.to_bytes().map_err(CliError::failed)?;
    std::fs::write(&path, bytes).map_err(|e| crate::common::io_error(&path, e))?;
    let output = BackgroundOutput {
        file: path.display().to_string(),
        fingerprint: identity.fingerprint,
        texts: config.background_texts,
        tokens: config.background_tokens,
        features: background.count(),
        seconds,
    };
    let text = format!(
        "wrote {} ({} texts of {} tokens, {} features, weights {}) in {:.0} s\n",
        output.file, output.texts, output.tokens, output.features, output.fingerprint, seconds
    );
    context.finish(&output, &text)
}
