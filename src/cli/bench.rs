//! `mose bench`: how fast this build trains and generates on one device, as
//! figures, not a test. It prints training tokens per second for each method,
//! prefill and decode tokens per second of the base model and of routed
//! generation (sub-experts merged into the weights, and beside them), and the
//! FLOP/s a training step achieves against the device's peak.
//!
//! The training batches are consecutive windows of one text, tokenized
//! without special tokens, so that scripts/bench/peft_bench.py can cut the
//! very same windows for PyTorch + PEFT; scripts/bench.sh runs both and
//! prints the ratios (docs/PERFORMANCE.md).

use std::path::PathBuf;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use mose_lab::backend::{BackendKind, Compute};
use mose_lab::data::{DataConfig, Example};
use mose_lab::eval::generate_routed;
use mose_lab::model::FrozenBase;
use mose_lab::model::generate::{Generation, GenerationConfig, generate};
use mose_lab::model::{Llama, LlamaConfig};
use mose_lab::mose::{Learner, Method, MoseConfig};
use mose_lab::tokenizer::Tokenizer;
use mose_lab::train::{Flow, TaskRun, TrainConfig};
use serde::Serialize;

use crate::common::MethodArg;
use crate::common::device_name;
use crate::common::{CliError, Context, compute, read_file};
use crate::common::{DEFAULT_MODEL, load_model};

/// Arguments of `mose bench`.
#[derive(clap::Args, Debug)]
pub(crate) struct BenchArgs {
    /// The model folder.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
    /// The text the training windows and the prompt are cut from.
    #[arg(long, default_value = "www/packs/bible_web/train.txt")]
    text: PathBuf,
    /// Methods whose training step is timed, comma-separated (mose,
    /// lora-per-task, seq-lora, moe-lora). Routed generation needs mose.
    #[arg(long, value_delimiter = ',', default_value = "mose,seq-lora")]
    methods: Vec<MethodArg>,
    /// Sequences per training step.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Tokens per training sequence.
    #[arg(long, default_value_t = 128)]
    seq_len: usize,
    /// Timed training steps per method.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed steps before them (allocation, kernel compilation).
    #[arg(long, default_value_t = 2)]
    warmup_steps: usize,
    /// Prompt tokens for generation.
    #[arg(long, default_value_t = 32)]
    prompt_tokens: usize,
    /// Tokens generated after the prompt (greedy).
    #[arg(long, default_value_t = 64)]
    new_tokens: usize,
    /// Generation runs per mode; the first warms up and is not counted.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Side of the square matrices of the reference matrix product.
    #[arg(long, default_value_t = 1024)]
    matmul_size: usize,
    /// The device's peak, in GFLOP/s, when known (for the CPU it is
    /// estimated from /proc/cpuinfo when not given).
    #[arg(long)]
    peak_gflops: Option<f64>,
    /// Also write the figures as JSON to this file (what --json prints).
    #[arg(long)]
    save: Option<PathBuf>,
}

#[derive(Serialize)]
struct BenchOutput {
    device: String,
    model: ModelSummary,
    data: DataSummary,
    settings: Settings,
    train: Vec<TrainFigure>,
    generate: Option<GenerateFigures>,
    matmul: MatmulFigure,
    peak: Option<Peak>,
}

#[derive(Serialize)]
struct ModelSummary {
    path: String,
    parameters: usize,
    layers: usize,
    hidden_size: usize,
    vocab_size: usize,
}

/// What the PyTorch script needs to cut the same windows, and a check that it did.
#[derive(Serialize)]
struct DataSummary {
    text: String,
    batch_size: usize,
    seq_len: usize,
    windows: usize,
    first_ids: Vec<u32>,
}

/// The rest of what was run, for the PyTorch script to run the same.
#[derive(Serialize)]
struct Settings {
    steps: usize,
    warmup_steps: usize,
    prompt_tokens: usize,
    new_tokens: usize,
    runs: usize,
}

#[derive(Serialize)]
struct TrainFigure {
    method: String,
    steps: usize,
    /// Median over the timed steps.
    seconds_per_step: f64,
    tokens_per_second: f64,
    /// [`training_flops`] of one step.
    flops_per_step: f64,
    gflops_per_second: f64,
    /// Share of the peak, when the peak is known.
    peak_share: Option<f64>,
}

#[derive(Serialize)]
struct GenerateFigures {
    prompt_tokens: usize,
    new_tokens: usize,
    rows: Vec<GenerateFigure>,
    /// The merged and unmerged routed runs produced the same ids.
    merged_matches_unmerged: bool,
}

#[derive(Serialize)]
struct GenerateFigure {
    mode: &'static str,
    prefill_tokens_per_second: f64,
    decode_tokens_per_second: f64,
    /// Decode speed against the base model's.
    of_base: f64,
}

#[derive(Serialize)]
struct MatmulFigure {
    size: usize,
    gflops_per_second: f64,
}

#[derive(Serialize)]
struct Peak {
    gflops_per_second: f64,
    source: String,
}

pub(crate) fn run(context: &Context, args: BenchArgs) -> Result<(), CliError> {
    if args.steps == 0 || args.runs < 2 || args.batch_size == 0 || args.seq_len < 2 {
        return Err(CliError::Input(
            "use --steps 1 or more, --runs 2 or more (the first warms up), --batch-size 1 or more and --seq-len 2 or more".into(),
        ));
    }
    let checkpoint = load_model(&args.model)?;
    let compute = compute(context.backend)?;
    let device = &compute.device;
    let model = checkpoint.model(device).map_err(CliError::input)?;
    let tokenizer = checkpoint.tokenizer().map_err(CliError::input)?;
    if args.seq_len > model.config().max_position_embeddings {
        return Err(CliError::Input(format!(
            "--seq-len {} is longer than the model reads ({}); use a smaller one",
            args.seq_len,
            model.config().max_position_embeddings
        )));
    }
    let text = String::from_utf8(read_file(&args.text)?)
        .map_err(|_| CliError::Input(format!("{} is not UTF-8 text", args.text.display())))?;
    let ids = tokenizer.encode(&text, false).map_err(CliError::input)?;
    let needed = args.batch_size * (args.warmup_steps + args.steps);
    let windows = windows(&ids, args.seq_len, needed).ok_or_else(|| {
        CliError::Input(format!(
            "{} gives {} tokens, fewer than {needed} windows of {}; use a longer text or fewer steps",
            args.text.display(),
            ids.len(),
            args.seq_len
        ))
    })?;

    let peak = match args.peak_gflops {
        Some(gflops) => Some(Peak {
            gflops_per_second: gflops,
            source: "--peak-gflops".into(),
        }),
        None if runs_on_cpu(&compute) => cpu_peak(),
        None => None,
    };
    let matmul = time_matmul(args.matmul_size, device)?;

    let mut train = Vec::new();
    let mut mose_learner = None;
    for method in args.methods.iter().map(|&m| Method::from(m)) {
        let (figure, learner) =
            time_training(context, &model, &tokenizer, &windows, method, &args, device)?;
        train.push(TrainFigure {
            peak_share: peak
                .as_ref()
                .map(|p| figure.gflops_per_second / p.gflops_per_second),
            ..figure
        });
        if method == Method::Mose {
            mose_learner = Some(learner);
        }
    }
    let generate = time_generation(
        context,
        &model,
        &tokenizer,
        &ids,
        mose_learner,
        &args,
        device,
    )?;

    let output = BenchOutput {
        device: device_name(&compute),
        model: ModelSummary {
            path: args.model.display().to_string(),
            parameters: model.num_params(),
            layers: model.config().num_hidden_layers,
            hidden_size: model.config().hidden_size,
            vocab_size: model.config().vocab_size,
        },
        data: DataSummary {
            text: args.text.display().to_string(),
            batch_size: args.batch_size,
            seq_len: args.seq_len,
            windows: windows.len(),
            first_ids: windows[0].ids.iter().take(8).copied().collect(),
        },
        settings: Settings {
            steps: args.steps,
            warmup_steps: args.warmup_steps,
            prompt_tokens: args.prompt_tokens,
            new_tokens: args.new_tokens,
            runs: args.runs,
        },
        train,
        generate,
        matmul,
        peak,
    };
    if let Some(path) = &args.save {
        let json = serde_json::to_string_pretty(&output).map_err(CliError::failed)?;
        std::fs::write(path, json).map_err(|e| crate::common::io_error(path, e))?;
    }
    let text = report(&output);
    context.finish(&output, &text)
}

/// The first `count` windows of `seq_len` consecutive ids, each a text
/// example whose every prediction counts; `None` when the ids run out.
fn windows(ids: &[u32], seq_len: usize, count: usize) -> Option<Vec<Example>> {
    let windows: Vec<Example> = ids
        .chunks_exact(seq_len)
        .take(count)
        .map(|window| Example {
            ids: window.to_vec(),
            targets: vec![true; seq_len - 1],
            query_len: seq_len,
            answer: None,
            window: 0,
        })
        .collect();
    (windows.len() == count).then_some(windows)
}

/// Trains one task with `method` for the warm-up and timed steps and returns
/// its figure with the learner that learned it.
fn time_training(
    context: &Context,
    model: &Llama,
    tokenizer: &Tokenizer,
    windows: &[Example],
    method: Method,
    args: &BenchArgs,
    device: &Device,
) -> Result<(TrainFigure, Learner), CliError> {
    // Without the base model's own text: the figures are the adapter's
    // speed, and routed decoding must reach the adapter it times.
    let mose = MoseConfig::new().with_background_texts(0);
    let mut learner =
        Learner::new(method, mose, model.config(), 0, device).map_err(CliError::input)?;
    let config = TrainConfig::new()
        .with_steps_per_task(args.warmup_steps + args.steps)
        .with_batch_size(args.batch_size);
    let base = FrozenBase::new(model, tokenizer, device);
    let bar = context.bar(config.steps_per_task as u64, method.name(), "steps");
    let mut run = pollster::block_on(TaskRun::start(base, &learner, "bench", windows, &config))
        .map_err(CliError::failed)?;
    let mut seconds = Vec::with_capacity(config.steps_per_task);
    let mut last = Instant::now();
    pollster::block_on(run.run(base, &learner, windows, &mut |_| {
        seconds.push(last.elapsed().as_secs_f64());
        last = Instant::now();
        bar.inc(1);
        Flow::Continue
    }))
    .map_err(CliError::failed)?;
    pollster::block_on(run.finish(&mut learner)).map_err(CliError::failed)?;
    bar.finish_and_clear();

    let per_step = median(&mut seconds[args.warmup_steps..].to_vec());
    let flops = args.batch_size as f64 * training_flops(model.config(), &learner, args.seq_len);
    Ok((
        TrainFigure {
            method: method.name().into(),
            steps: args.steps,
            seconds_per_step: per_step,
            tokens_per_second: (args.batch_size * args.seq_len) as f64 / per_step,
            flops_per_step: flops,
            gflops_per_second: flops / per_step / 1e9,
            peak_share: None,
        },
        learner,
    ))
}

/// The floating-point operations of one training step on one sequence: the
/// forward pass, then gradients for the inputs of the frozen products (as
/// much again) and for the adapter's inputs and weights (twice its forward);
/// attention's backward pass is twice its forward.
fn training_flops(config: &LlamaConfig, learner: &Learner, seq_len: usize) -> f64 {
    let forward = config.forward_flops(seq_len);
    let method = learner.config();
    // Adapter rank live at each site while the first task trains.
    let rank = match learner.method() {
        Method::Mose => method.rank * method.new_experts_for(0),
        Method::MoeLora => method.rank * method.moe_experts,
        Method::SeqLora | Method::LoraPerTask => method.rank,
    };
    let adapter: f64 = learner
        .sites()
        .iter()
        .map(|s| 2.0 * seq_len as f64 * ((s.d_in + s.d_out) * rank) as f64)
        .sum();
    2.0 * (forward.projections + forward.head) + 3.0 * (forward.attention + adapter)
}

/// Base, routed-merged and routed-unmerged generation from the same prompt.
fn time_generation(
    context: &Context,
    model: &Llama,
    tokenizer: &Tokenizer,
    ids: &[u32],
    learner: Option<Learner>,
    args: &BenchArgs,
    device: &Device,
) -> Result<Option<GenerateFigures>, CliError> {
    if args.prompt_tokens + args.new_tokens > model.config().max_position_embeddings {
        return Err(CliError::Input(format!(
            "--prompt-tokens plus --new-tokens exceed the model's {} positions",
            model.config().max_position_embeddings
        )));
    }
    let prompt = tokenizer
        .decode(&ids[..args.prompt_tokens.min(ids.len())], false)
        .map_err(CliError::input)?;
    let settings = |merge_adapter| GenerationConfig {
        max_new_tokens: args.new_tokens,
        stop_at_eos: false,
        merge_adapter,
        ..GenerationConfig::default()
    };
    let bar = context.bar(3 * args.runs as u64, "generate", "runs");
    let time = |run: &mut dyn FnMut() -> Result<Generation, CliError>| {
        let mut prefill = Vec::new();
        let mut decode = Vec::new();
        let mut last = None;
        for i in 0..args.runs {
            let g = run()?;
            bar.inc(1);
            if i > 0 {
                prefill.push(g.prompt_ids.len() as f64 / g.prefill_seconds);
                decode.push((g.ids.len() - 1) as f64 / g.decode_seconds);
            }
            last = Some(g);
        }
        Ok::<_, CliError>((median(&mut prefill), median(&mut decode), last))
    };
    let base = time(&mut || {
        pollster::block_on(generate(
            model,
            tokenizer,
            &prompt,
            &settings(true),
            device,
            |_| {},
        ))
        .map_err(CliError::failed)
    })?;
    let Some(learner) = learner else {
        bar.finish_and_clear();
        return Ok(Some(GenerateFigures {
            prompt_tokens: args.prompt_tokens,
            new_tokens: args.new_tokens,
            rows: vec![row("base model", base.0, base.1, base.1)],
            merged_matches_unmerged: true,
        }));
    };
    let data = DataConfig::default();
    let routed = |merge| {
        time(&mut || {
            let base = FrozenBase::new(model, tokenizer, device);
            pollster::block_on(generate_routed(
                base,
                &learner,
                tokenizer,
                &prompt,
                &data,
                &settings(merge),
                |_| {},
            ))
            .map(|(_, g)| g)
            .map_err(CliError::failed)
        })
    };
    let merged = routed(true)?;
    let unmerged = routed(false)?;
    bar.finish_and_clear();
    let ids_of = |g: &Option<Generation>| g.as_ref().map(|g| g.ids.clone());
    Ok(Some(GenerateFigures {
        prompt_tokens: args.prompt_tokens,
        new_tokens: args.new_tokens,
        rows: vec![
            row("base model", base.0, base.1, base.1),
            row("routed MoSE, merged", merged.0, merged.1, base.1),
            row("routed MoSE, unmerged", unmerged.0, unmerged.1, base.1),
        ],
        merged_matches_unmerged: ids_of(&merged.2) == ids_of(&unmerged.2),
    }))
}

fn row(mode: &'static str, prefill: f64, decode: f64, base_decode: f64) -> GenerateFigure {
    GenerateFigure {
        mode,
        prefill_tokens_per_second: prefill,
        decode_tokens_per_second: decode,
        of_base: decode / base_decode,
    }
}

/// The rate of an `n` x `n` by `n` x `n` matrix product on the device: the
/// best a plain dense product reaches there, for scale.
fn time_matmul(n: usize, device: &Device) -> Result<MatmulFigure, CliError> {
    let values: Vec<f32> = (0..n * n)
        .map(|i| ((i % 97) as f32 - 48.0) / 97.0)
        .collect();
    let a = Tensor::<2>::from_data(TensorData::new(values, [n, n]), device);
    let product = || {
        a.clone()
            .matmul(a.clone())
            .sum()
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| CliError::Failed(format!("reading the product back failed: {e:?}")))
    };
    product()?; // warm-up
    let reps = 5;
    let started = Instant::now();
    for _ in 0..reps {
        product()?;
    }
    let seconds = started.elapsed().as_secs_f64() / reps as f64;
    Ok(MatmulFigure {
        size: n,
        gflops_per_second: 2.0 * (n as f64).powi(3) / seconds / 1e9,
    })
}

/// True where the work runs on this machine's cores: burn's CPU backend, or a
/// software GPU adapter (Mesa's lavapipe).
fn runs_on_cpu(compute: &Compute) -> bool {
    match compute.kind {
        BackendKind::Cpu => true,
        BackendKind::Wgpu => compute.adapter.as_ref().is_some_and(|a| a.is_software()),
        BackendKind::Cuda => false,
    }
}

/// The CPU's nominal f32 peak: threads x clock x FLOPs per cycle, where a
/// core with two FMA units does 2 x lanes x 2 per cycle (AVX-512: 16 lanes,
/// AVX2: 8, SSE: 4). `None` off Linux or when /proc/cpuinfo has no clock.
fn cpu_peak() -> Option<Peak> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .map(str::trim)
    };
    let mhz: f64 = field("cpu MHz")?.parse().ok()?;
    let flags: Vec<&str> = field("flags")?.split_whitespace().collect();
    let lanes = match (flags.contains(&"avx512f"), flags.contains(&"fma")) {
        (true, _) => 16,
        (false, true) => 8,
        _ => 4,
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_cycle = 2 * lanes * 2;
    Some(Peak {
        gflops_per_second: threads as f64 * mhz / 1e3 * per_cycle as f64,
        source: format!(
            "nominal: {threads} threads x {:.2} GHz x {per_cycle} f32 FLOPs per cycle (/proc/cpuinfo)",
            mhz / 1e3
        ),
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The figures as Markdown tables.
fn report(o: &BenchOutput) -> String {
    let mut s = format!(
        "{} on {}: {} parameters; batch {} x {} tokens from {}\n\n",
        o.model.path, o.device, o.model.parameters, o.data.batch_size, o.data.seq_len, o.data.text
    );
    s += "| training | s per step | tokens/s | GFLOP/s | of peak |\n|---|---|---|---|---|\n";
    for t in &o.train {
        let share = t
            .peak_share
            .map_or("–".to_string(), |p| format!("{:.1}%", 100.0 * p));
        s += &format!(
            "| {} | {:.3} | {:.0} | {:.1} | {share} |\n",
            t.method, t.seconds_per_step, t.tokens_per_second, t.gflops_per_second
        );
    }
    if let Some(g) = &o.generate {
        s += &format!(
            "\n| generation ({} prompt + {} new tokens, greedy) | prefill tokens/s | decode tokens/s | decode vs base |\n|---|---|---|---|\n",
            g.prompt_tokens, g.new_tokens
        );
        for r in &g.rows {
            s += &format!(
                "| {} | {:.0} | {:.1} | {:.2}x |\n",
                r.mode, r.prefill_tokens_per_second, r.decode_tokens_per_second, r.of_base
            );
        }
        if g.rows.len() > 1 {
            s += &format!(
                "\nmerged and unmerged routed generation gave {} tokens\n",
                match g.merged_matches_unmerged {
                    true => "the same",
                    false => "DIFFERENT",
                }
            );
        }
    }
    s += &format!(
        "\n{n} x {n} matrix product: {:.1} GFLOP/s\n",
        o.matmul.gflops_per_second,
        n = o.matmul.size
    );
    match &o.peak {
        Some(p) => s += &format!("peak: {:.1} GFLOP/s ({})\n", p.gflops_per_second, p.source),
        None => s += "peak: unknown for this device (pass --peak-gflops)\n",
    }
    s
}
