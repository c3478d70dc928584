//! `mose pretrain`: the recipe of the embedded base model. It reads the
//! corpus `scripts/data.sh` builds, trains the tokenizer on the training
//! documents, trains the model, scores it on the held-out documents against
//! a unigram baseline, and writes the model folder with its model card.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use burn::module::Module;
use mose_lab::model::generate::{GenerationConfig, generate};
use mose_lab::model::{Checkpoint, Llama};
use mose_lab::tokenizer::Tokenizer;
use mose_lab::train::pretrain::{
    Document, Heldout, PretrainConfig, Pretraining, encode_documents, heldout_score,
    unigram_perplexity,
};
use serde::Serialize;
use web_time::Instant;

use crate::common::{CliError, Context, compute, default_path, device_name, io_error, read_file};

/// The file the run's settings, curve and scores are written to, beside the model.
const REPORT_FILE: &str = "pretrain.json";
/// The model card, beside the model.
const CARD_FILE: &str = "MODEL_CARD.md";

/// Prompts the model card shows continuations of.
const SAMPLE_PROMPTS: &[&str] = &[
    "It is a truth universally acknowledged",
    "The Congress of the United States",
    "The sea was",
    "Blessed is the man",
    "I had not been long",
];

/// Arguments of `mose pretrain`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Folder with the corpus: train.jsonl and heldout.jsonl, one document a line.
    #[arg(long, default_value = "data/corpus")]
    corpus: PathBuf,
    /// Folder to write the model, tokenizer, report and model card into.
    #[arg(long)]
    out: Option<PathBuf>,
    /// A JSON file of settings (any subset of PretrainConfig's fields);
    /// missing fields take the shipped model's values.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Replaces the settings' optimiser steps.
    #[arg(long)]
    steps: Option<usize>,
    /// Replaces the settings' seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Use only the first N bytes of the training documents (for a short smoke run).
    #[arg(long)]
    train_bytes: Option<usize>,
    /// Score the held-out text every N steps for the training curve.
    #[arg(long, default_value_t = 250)]
    eval_every: usize,
    /// Held-out tokens scored at each point of the curve (the final score uses all).
    #[arg(long, default_value_t = 32_768)]
    eval_tokens: usize,
}

/// One point of the training curve.
#[derive(Debug, Clone, Serialize)]
struct CurvePoint {
    step: usize,
    /// Mean training loss over the steps since the previous point.
    train_loss: f64,
    /// Held-out loss on the first `eval_tokens` held-out tokens.
    heldout_loss: f64,
}

/// Bytes and documents of one corpus source.
#[derive(Debug, Clone, Default, Serialize)]
struct SourceSize {
    train_documents: usize,
    train_bytes: usize,
    heldout_documents: usize,
    heldout_bytes: usize,
}

/// What `pretrain.json` holds.
#[derive(Debug, Serialize)]
struct Report {
    command: String,
    config: PretrainConfig,
    parameters: usize,
    device: String,
    sources: BTreeMap<String, SourceSize>,
    train_tokens: usize,
    heldout_tokens: usize,
    tokens_seen: usize,
    curve: Vec<CurvePoint>,
    heldout: Heldout,
    unigram_perplexity: f64,
    seconds: Seconds,
    samples: Vec<(String, String)>,
}

#[derive(Debug, Default, Serialize)]
struct Seconds {
    tokenizer: f64,
    encoding: f64,
    training: f64,
    total: f64,
}

pub(crate) fn run(context: &Context, args: Args) -> Result<(), CliError> {
    let started = Instant::now();
    let out = default_path(args.out.clone(), "www/model");
    let config = settings(&args)?;
    let compute = compute(context.backend)?;
    let device = compute.device.clone();
    let train_docs = read_documents(&args.corpus.join("train.jsonl"), args.train_bytes)?;
    let heldout_docs = read_documents(&args.corpus.join("heldout.jsonl"), None)?;
    let mut seconds = Seconds::default();

    let clock = Instant::now();
    let spinner = context.spinner("training the tokenizer");
    let tokenizer = Tokenizer::train_bpe(
        train_docs.iter().map(|d| d.text.as_str()),
        config.vocab_size,
        config.min_pair_frequency,
    )
    .map_err(CliError::failed)?;
    spinner.finish_and_clear();
    seconds.tokenizer = clock.elapsed().as_secs_f64();
    context.note(&format!(
        "tokenizer: {} tokens, trained in {:.0} s",
        tokenizer.vocab_size(),
        seconds.tokenizer
    ));

    let clock = Instant::now();
    let documents = train_docs.len() + heldout_docs.len();
    let bar = context.bar(documents as u64, "encoding the corpus", "documents");
    let train_ids =
        encode_documents(&tokenizer, &train_docs, |_| bar.inc(1)).map_err(CliError::failed)?;
    let heldout_ids =
        encode_documents(&tokenizer, &heldout_docs, |_| bar.inc(1)).map_err(CliError::failed)?;
    bar.finish_and_clear();
    seconds.encoding = clock.elapsed().as_secs_f64();
    let unigram = unigram_perplexity(&train_ids, &heldout_ids, tokenizer.vocab_size());
    context.note(&format!(
        "corpus: {} training and {} held-out tokens; unigram held-out perplexity {unigram:.1}",
        train_ids.len(),
        heldout_ids.len()
    ));

    let model_config = config.model_config(tokenizer.special());
    let mut run =
        Pretraining::start(&config, &model_config, &train_ids, &device).map_err(CliError::input)?;
    let parameters = run.model().num_params();
    context.note(&format!(
        "model: {parameters} parameters; {} sequences of {} tokens per pass over the corpus",
        run.sequences(),
        config.seq_len
    ));
    let clock = Instant::now();
    let curve_ids = &heldout_ids[..heldout_ids.len().min(args.eval_tokens.max(config.seq_len))];
    let mut curve = Vec::new();
    let mut interval = Vec::new();
    let bar = context.bar(config.steps as u64, "pretraining", "steps");
    while run.step() < config.steps {
        let step = pollster::block_on(run.train_step()).map_err(CliError::failed)?;
        interval.push(step.loss as f64);
        bar.set_message(format!(
            "loss {:.3}, {:.0} tok/s",
            step.loss, step.tokens_per_second
        ));
        bar.inc(1);
        if step.step % args.eval_every.max(1) == 0 || step.step == config.steps {
            let heldout = pollster::block_on(run.evaluate(curve_ids)).map_err(CliError::failed)?;
            curve.push(CurvePoint {
                step: step.step,
                train_loss: interval.iter().sum::<f64>() / interval.len() as f64,
                heldout_loss: heldout.loss,
            });
            interval.clear();
            bar.suspend(|| {
                context.note(&format!(
                    "step {:>6}: train loss {:.3}, held-out loss {:.3} (perplexity {:.1})",
                    step.step,
                    curve.last().map_or(0.0, |p| p.train_loss),
                    heldout.loss,
                    heldout.perplexity
                ))
            });
        }
    }
    bar.finish_and_clear();
    seconds.training = clock.elapsed().as_secs_f64();

    let spinner = context.spinner("scoring all held-out text");
    let model = run.model();
    let heldout = pollster::block_on(heldout_score(
        &model,
        &heldout_ids,
        config.seq_len,
        config.eval_batch_size,
        &device,
    ))
    .map_err(CliError::failed)?;
    spinner.finish_and_clear();

    let samples = sample_generations(&model, &tokenizer, &device)?;
    write_model(model, &model_config, &tokenizer, &out)?;
    seconds.total = started.elapsed().as_secs_f64();
    let tokens_seen = run.step() * config.batch_size * (config.seq_len - 1);
    let report = Report {
        command: command_line(),
        config,
        parameters,
        device: device_name(&compute),
        sources: source_sizes(&train_docs, &heldout_docs),
        train_tokens: train_ids.len(),
        heldout_tokens: heldout.tokens,
        tokens_seen,
        curve,
        heldout,
        unigram_perplexity: unigram,
        seconds,
        samples,
    };
    let json = serde_json::to_string_pretty(&report).map_err(CliError::failed)?;
    write(&out.join(REPORT_FILE), json.as_bytes())?;
    write(&out.join(CARD_FILE), model_card(&report, &out).as_bytes())?;
    let text = format!(
        "wrote {} (config.json, model.safetensors, tokenizer.json, {REPORT_FILE}, {CARD_FILE})\nheld-out perplexity {:.2} (unigram {:.1}) after {} steps in {:.0} s\n",
        out.display(),
        report.heldout.perplexity,
        report.unigram_perplexity,
        report.config.steps,
        report.seconds.total
    );
    context.finish(&report, &text)
}

/// The shipped settings, with the `--config` file and the flags over them.
fn settings(args: &Args) -> Result<PretrainConfig, CliError> {
    let mut config = match &args.config {
        None => PretrainConfig::new(),
        Some(path) => {
            let bad = |why: String| {
                CliError::Input(format!(
                    "{}: not a pretraining settings file ({why}); write a JSON object with fields such as \"steps\" and \"hidden_size\"",
                    path.display()
                ))
            };
            let given: serde_json::Value =
                serde_json::from_slice(&read_file(path)?).map_err(|e| bad(e.to_string()))?;
            let serde_json::Value::Object(given) = given else {
                return Err(bad("it is not a JSON object".into()));
            };
            // The shipped values, with the file's fields over them.
            let mut merged =
                serde_json::to_value(PretrainConfig::new()).map_err(CliError::failed)?;
            let fields = merged.as_object_mut().expect("a config is an object");
            for (key, value) in given {
                if !fields.contains_key(&key) {
                    return Err(bad(format!("unknown setting {key:?}")));
                }
                fields.insert(key, value);
            }
            serde_json::from_value(merged).map_err(|e| bad(e.to_string()))?
        }
    };
    if let Some(steps) = args.steps {
        config.steps = steps;
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    Ok(config)
}

/// The documents of one corpus file, the training text cut at `max_bytes`.
fn read_documents(path: &Path, max_bytes: Option<usize>) -> Result<Vec<Document>, CliError> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CliError::Input(format!(
            "{} does not exist; build the corpus with scripts/data.sh, or pass --corpus with the folder it wrote",
            path.display()
        )),
        _ => io_error(path, e),
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|e| CliError::Input(format!("{}: not UTF-8 text ({e})", path.display())))?;
    let mut documents = Vec::new();
    let mut total = 0usize;
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let document: Document = serde_json::from_str(line).map_err(|e| {
            CliError::Input(format!(
                "{} line {}: not a corpus document ({e}); each line must be a JSON object with source, title and text",
                path.display(),
                i + 1
            ))
        })?;
        if max_bytes.is_some_and(|max| total >= max) {
            break;
        }
        total += document.text.len();
        documents.push(document);
    }
    if documents.is_empty() {
        return Err(CliError::Input(format!(
            "{} holds no documents; build the corpus again with scripts/data.sh",
            path.display()
        )));
    }
    Ok(documents)
}

/// Continuations of [`SAMPLE_PROMPTS`], sampled with a fixed seed.
fn sample_generations(
    model: &Llama,
    tokenizer: &Tokenizer,
    device: &burn::tensor::Device,
) -> Result<Vec<(String, String)>, CliError> {
    let settings = GenerationConfig {
        max_new_tokens: 48,
        temperature: 0.8,
        top_k: Some(40),
        repetition_penalty: 1.1,
        seed: 1,
        ..GenerationConfig::default()
    };
    SAMPLE_PROMPTS
        .iter()
        .map(|prompt| {
            let generation = pollster::block_on(generate(
                model,
                tokenizer,
                prompt,
                &settings,
                device,
                |_| {},
            ))
            .map_err(CliError::failed)?;
            Ok((prompt.to_string(), generation.text))
        })
        .collect()
}

fn write_model(
    mut model: Llama,
    config: &mose_lab::model::LlamaConfig,
    tokenizer: &Tokenizer,
    out: &Path,
) -> Result<(), CliError> {
    let weights = pollster::block_on(model.to_safetensors(None)).map_err(CliError::failed)?;
    let checkpoint = Checkpoint {
        config: config.clone(),
        weights,
        tokenizer_json: tokenizer.to_json().map_err(CliError::failed)?,
        chat_template: None,
    };
    checkpoint.write_dir(out).map_err(CliError::failed)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, bytes).map_err(|e| CliError::Failed(format!("{}: {e}", path.display())))
}

/// The command as it was typed, for the card's "rebuild" line.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("cargo mose {}", args.join(" "))
}

fn source_sizes(train: &[Document], heldout: &[Document]) -> BTreeMap<String, SourceSize> {
    let mut sizes: BTreeMap<String, SourceSize> = BTreeMap::new();
    for d in train {
        let size = sizes.entry(d.source.clone()).or_default();
        size.train_documents += 1;
        size.train_bytes += d.text.len();
    }
    for d in heldout {
        let size = sizes.entry(d.source.clone()).or_default();
        size.heldout_documents += 1;
        size.heldout_bytes += d.text.len();
    }
    sizes
}

/// The model card: what the model is, what it learned from, how well it
/// does, what it writes, and the command that rebuilds it.
fn model_card(report: &Report, out: &Path) -> String {
    let c = &report.config;
    let mut card = String::new();
    let _ = writeln!(card, "# MoSE Lab base model\n");
    let _ = writeln!(
        card,
        "A small Llama-family language model ({:.1} M parameters) pretrained from scratch by \
         `mose pretrain` on public-domain English text, with its own byte-level BPE tokenizer. \
         It is the frozen base that MoSE Lab's sub-experts adapt: small enough to load in a \
         browser in seconds and to fine-tune on a laptop. It writes 19th-century-flavoured \
         English; it knows little and is not an assistant.\n",
        report.parameters as f64 / 1e6
    );
    let _ = writeln!(card, "## Data\n");
    let _ = writeln!(
        card,
        "Built by `scripts/data.sh` from the package registries (provenance and licences in the \
         `SOURCES.md` it writes). Held-out documents are a fixed ~2% of each source, chosen by \
         whole document.\n"
    );
    let _ = writeln!(
        card,
        "| source | training documents | training MB | held-out documents | held-out MB |"
    );
    let _ = writeln!(card, "|---|---|---|---|---|");
    for (source, size) in &report.sources {
        let _ = writeln!(
            card,
            "| {source} | {} | {:.2} | {} | {:.2} |",
            size.train_documents,
            size.train_bytes as f64 / 1e6,
            size.heldout_documents,
            size.heldout_bytes as f64 / 1e6
        );
    }
    let _ = writeln!(card, "\n## Model\n");
    let _ = writeln!(
        card,
        "| vocabulary | layers | hidden | heads (kv) | MLP | context | parameters |\n|---|---|---|---|---|---|---|\n\
         | {} | {} | {} | {} ({}) | {} | {} | {} |\n",
        c.vocab_size,
        c.layers,
        c.hidden_size,
        c.heads,
        c.kv_heads,
        c.intermediate_size,
        c.seq_len,
        report.parameters
    );
    let _ = writeln!(
        card,
        "Tied input and output embeddings, RMSNorm, rotary positions, SwiGLU; Hugging Face \
         `LlamaForCausalLM` names and layout (`config.json`, `model.safetensors`, \
         `tokenizer.json`).\n"
    );
    let _ = writeln!(card, "## Training\n");
    let _ = writeln!(
        card,
        "{} AdamW steps of {} sequences of {} tokens ({:.1} M tokens seen, {:.2} passes over \
         the {:.1} M training tokens); peak learning rate {} with {:.0}% warm-up and a cosine \
         to {:.0}% of it; weight decay {}, betas ({}, {}), gradients clipped at norm {}; seed {}. \
         Trained on {} in {:.1} minutes ({:.0} s tokenizer, {:.0} s encoding).\n",
        c.steps,
        c.batch_size,
        c.seq_len,
        report.tokens_seen as f64 / 1e6,
        report.tokens_seen as f64 / report.train_tokens as f64,
        report.train_tokens as f64 / 1e6,
        c.learning_rate,
        c.warmup_fraction * 100.0,
        c.min_lr_fraction * 100.0,
        c.weight_decay,
        c.adam_beta_1,
        c.adam_beta_2,
        c.grad_clip_norm,
        c.seed,
        report.device,
        report.seconds.training / 60.0,
        report.seconds.tokenizer,
        report.seconds.encoding
    );
    let _ = writeln!(
        card,
        "Training curve (held-out loss on the first held-out tokens):\n"
    );
    let _ = writeln!(
        card,
        "| step | training loss | held-out loss |\n|---|---|---|"
    );
    for p in &report.curve {
        let _ = writeln!(
            card,
            "| {} | {:.3} | {:.3} |",
            p.step, p.train_loss, p.heldout_loss
        );
    }
    let _ = writeln!(card, "\n## Held-out perplexity\n");
    let _ = writeln!(
        card,
        "| model | perplexity per token | loss (nats) |\n|---|---|---|\n| this model | {:.2} | {:.3} |\n| unigram (token frequencies of the training text) | {:.1} | {:.3} |\n",
        report.heldout.perplexity,
        report.heldout.loss,
        report.unigram_perplexity,
        report.unigram_perplexity.ln()
    );
    let _ = writeln!(card, "On all {} held-out tokens.\n", report.heldout_tokens);
    let _ = writeln!(card, "## Samples\n");
    let _ = writeln!(
        card,
        "Temperature 0.8, top-k 40, repetition penalty 1.1, seed 1, 48 tokens:\n"
    );
    for (prompt, text) in &report.samples {
        let _ = writeln!(card, "> **{prompt}**{}\n", text.replace('\n', " "));
    }
    let _ = writeln!(card, "## Rebuild\n");
    let _ = writeln!(
        card,
        "```bash\nscripts/data.sh\n{}\ncargo mose background --model {}\n```\n\nRuns are seeded \
         and the tokenizer rebuilds byte for byte, but the CPU backend's parallel sums may round \
         differently from run to run, so a rebuild gives close, not identical, weights. With the \
         shipped settings a rebuild's held-out perplexity lands within 1% of the shipped model's. \
         `mose background` writes `background.safetensors`, the router's statistics of texts the \
         model writes by itself (docs/METHOD.md), which the app and `mose train` use for this \
         model's weights only.",
        report.command,
        out.display()
    );
    card
}
