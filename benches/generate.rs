//! Generation speed of the base model on every native device: prefill and
//! decode tokens per second for SmolLM2-135M (imported from its GGUF, see
//! scripts/fetch-smollm2.sh). A benchmark, not a test: it prints figures and
//! checks nothing.
//!
//! ```text
//! cargo bench --profile dev --features wgpu-tests --bench generate
//! ```
//! `--profile dev` reuses the test build (dependencies at opt-level 2); the
//! `wgpu-tests` feature adds the wgpu device to the CPU.

use std::time::Instant;

use mose_lab::backend;
use mose_lab::model::Checkpoint;
use mose_lab::model::generate::{GenerationConfig, generate};

/// What one measurement runs.
struct BenchConfig {
    /// Prompt tokens in the prefill.
    prompt_tokens: usize,
    /// Tokens decoded after it.
    new_tokens: usize,
    /// Runs per device; the first warms up (shader compilation) and is not counted.
    runs: usize,
}

const CONFIG: BenchConfig = BenchConfig {
    prompt_tokens: 128,
    new_tokens: 32,
    runs: 3,
};

const PROMPT_TEXT: &str = "It is a truth universally acknowledged, that a single man in possession of a good \
fortune, must be in want of a wife. However little known the feelings or views of such a man may be on his \
first entering a neighbourhood, this truth is so well fixed in the minds of the surrounding families, that he \
is considered the rightful property of some one or other of their daughters. My dear Mr. Bennet, said his lady \
to him one day, have you heard that Netherfield Park is let at last? Mr. Bennet replied that he had not. But it \
is, returned she; for Mrs. Long has just been here, and she told me all about it. Mr. Bennet made no answer. Do \
you not want to know who has taken it? cried his wife impatiently.";

fn main() {
    let path = std::env::var_os("MOSE_SMOLLM2_GGUF")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            std::path::PathBuf::from(home).join(".cache/mose-lab/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        eprintln!(
            "{}: {e}; run scripts/fetch-smollm2.sh first",
            path.display()
        );
        std::process::exit(2)
    });
    let started = Instant::now();
    let checkpoint = Checkpoint::from_gguf(&bytes).expect("the GGUF imports");
    let tokenizer = checkpoint.tokenizer().expect("the tokenizer loads");
    println!(
        "SmolLM2-135M-Instruct: imported from GGUF in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let ids = tokenizer.encode(PROMPT_TEXT, false).expect("encodes");
    assert!(
        ids.len() >= CONFIG.prompt_tokens,
        "the prompt text is long enough"
    );
    let prompt = tokenizer
        .decode(&ids[..CONFIG.prompt_tokens], false)
        .expect("decodes");

    let mut devices = vec![backend::cpu()];
    if cfg!(feature = "wgpu-tests") {
        match pollster::block_on(backend::gpu()) {
            Ok(gpu) => devices.push(gpu),
            Err(why) => println!("wgpu: not measured ({why})"),
        }
    }
    println!(
        "| device | prefill tokens/s ({} tokens) | decode tokens/s ({} tokens) |",
        CONFIG.prompt_tokens, CONFIG.new_tokens
    );
    println!("|---|---|---|");
    for compute in devices {
        let model = checkpoint.model(&compute.device).expect("the weights load");
        let settings = GenerationConfig {
            max_new_tokens: CONFIG.new_tokens,
            stop_at_eos: false,
            ..Default::default()
        };
        let (mut prefill, mut decode) = (Vec::new(), Vec::new());
        for run in 0..CONFIG.runs {
            let g = pollster::block_on(generate(
                &model,
                &tokenizer,
                &prompt,
                &settings,
                &compute.device,
                |_| {},
            ))
            .expect("generates");
            if run > 0 {
                prefill.push(g.prompt_ids.len() as f64 / g.prefill_seconds);
                decode.push((g.ids.len() - 1) as f64 / g.decode_seconds);
            }
        }
        let name = match &compute.adapter {
            Some(adapter) => format!(
                "{} ({}, {})",
                compute.kind.name(),
                adapter.name,
                adapter.api
            ),
            None => compute.kind.name().to_string(),
        };
        println!(
            "| {name} | {:.1} | {:.1} |",
            median(&mut prefill),
            median(&mut decode)
        );
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
