//! Text generation: prefill the prompt once, then decode token by token with
//! the KV cache, sampling on the host.
//!
//! Sampling follows transformers' logits processors in their order:
//! repetition penalty (CTRL's rule: divide positive logits, multiply negative
//! ones), temperature, top-k, top-p; temperature 0 is greedy. A seed makes
//! every run reproducible. Tokens stream to a callback as text as soon as
//! they decode to whole characters, and the loop yields between tokens so a
//! browser page keeps painting.

use std::collections::HashSet;

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use web_time::Instant;

use super::{Adapter, Frozen, KvCache, Llama};
use crate::tokenizer::{Tokenizer, TokenizerError};

/// How to pick each next token, and when to stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationConfig {
    /// Most tokens to add after the prompt.
    pub max_new_tokens: usize,
    /// Softmax temperature; 0 picks the likeliest token (greedy).
    pub temperature: f32,
    /// Keep only the `k` likeliest tokens before sampling; `None` keeps all.
    pub top_k: Option<usize>,
    /// Keep the smallest set of likeliest tokens whose probability reaches
    /// `top_p` (nucleus sampling); 1 keeps all.
    pub top_p: f32,
    /// Above 1 discourages tokens already in the prompt or the output.
    pub repetition_penalty: f32,
    /// Stop before any of these strings, which are left out of the text.
    pub stop: Vec<String>,
    /// Stop at the tokenizer's end-of-sequence token (and the config's).
    pub stop_at_eos: bool,
    /// Seeds the sampler: the same seed, prompt and model give the same text.
    pub seed: u64,
    /// Fold an adapter into the weights once per prompt ([`Llama::merged`]):
    /// the same tokens at the base model's speed. Off keeps it beside the
    /// frozen weights for every token, as training runs it.
    #[serde(default = "merge_by_default")]
    pub merge_adapter: bool,
}

fn merge_by_default() -> bool {
    true
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 64,
            temperature: 0.0,
            top_k: None,
            top_p: 1.0,
            repetition_penalty: 1.0,
            stop: Vec::new(),
            stop_at_eos: true,
            seed: 0,
            merge_adapter: true,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// The model produced an end-of-sequence token.
    Eos,
    /// The text reached one of the stop strings.
    StopString(String),
    /// `max_new_tokens` were generated.
    MaxTokens,
    /// The sequence reached the model's `max_position_embeddings`.
    ContextFull,
}

/// What a generation produced, with its timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// The prompt's token ids.
    pub prompt_ids: Vec<u32>,
    /// The generated token ids (without the prompt; an ending EOS is left out).
    pub ids: Vec<u32>,
    /// The generated text, cut before a stop string.
    pub text: String,
    /// Why it stopped.
    pub stop: StopReason,
    /// Seconds spent on the prompt's forward pass.
    pub prefill_seconds: f64,
    /// Seconds spent decoding the new tokens.
    pub decode_seconds: f64,
    /// True when the adapter ran folded into the weights; false for the base
    /// model, and where it cannot be merged or merging was turned off.
    #[serde(default)]
    pub merged: bool,
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The prompt has no tokens.
    #[error("the prompt is empty; type some text first")]
    EmptyPrompt,
    /// The prompt alone fills the model's context.
    #[error("the prompt has {tokens} tokens but the model reads at most {limit}; shorten it")]
    PromptTooLong {
        /// Tokens in the prompt.
        tokens: usize,
        /// The model's `max_position_embeddings`.
        limit: usize,
    },
    /// The generation settings make no sense.
    #[error("generation setting {field} = {value} is out of range: {reason}")]
    BadConfig {
        /// The setting.
        field: &'static str,
        /// Its value.
        value: String,
        /// The allowed range.
        reason: &'static str,
    },
    /// Encoding the prompt or decoding the output failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The device could not hand the logits back.
    #[error("reading logits back from the device failed: {0}")]
    Read(String),
}

impl GenerationConfig {
    /// Checks every setting.
    ///
    /// # Errors
    /// [`GenerateError::BadConfig`] naming the first setting out of range.
    pub fn validate(&self) -> Result<(), GenerateError> {
        let bad = |field, value: f32, reason| {
            Err(GenerateError::BadConfig {
                field,
                value: value.to_string(),
                reason,
            })
        };
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad(
                "temperature",
                self.temperature,
                "use 0 (greedy) or a positive number",
            );
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", self.top_p, "use a number above 0 and at most 1");
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad(
                "repetition_penalty",
                self.repetition_penalty,
                "use a positive number (1 is off)",
            );
        }
        if self.top_k == Some(0) {
            return bad("top_k", 0.0, "use at least 1, or none to keep every token");
        }
        Ok(())
    }
}

/// Picks next tokens from logits: the host half of generation.
#[derive(Debug)]
pub struct Sampler {
    config: GenerationConfig,
    rng: StdRng,
}

impl Sampler {
    /// A sampler seeded from `config.seed`.
    pub fn new(config: GenerationConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        Self { config, rng }
    }

    /// The next token given the last position's `logits` and the ids so far
    /// (prompt and output, for the repetition penalty).
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let penalty = self.config.repetition_penalty;
        if penalty != 1.0 {
            let seen: HashSet<u32> = history.iter().copied().collect();
            for id in seen {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
                }
            }
        }
        if self.config.temperature == 0.0 {
            return argmax(logits);
        }
        // Candidates, likeliest first (ties by lower id, so the order is deterministic).
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        order.sort_by(|&a, &b| {
            logits[b as usize]
                .total_cmp(&logits[a as usize])
                .then(a.cmp(&b))
        });
        if let Some(k) = self.config.top_k {
            order.truncate(k.max(1));
        }
        let top = logits[order[0] as usize];
        let mut probs: Vec<f64> = order
            .iter()
            .map(|&id| (((logits[id as usize] - top) / self.config.temperature) as f64).exp())
            .collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if self.config.top_p < 1.0 {
            // Keep tokens until the mass reaches top_p; the first always stays.
            let mut mass = 0.0;
            let keep = probs
                .iter()
                .position(|p| {
                    mass += p;
                    mass >= self.config.top_p as f64
                })
                .map_or(probs.len(), |i| i + 1);
            probs.truncate(keep);
            order.truncate(keep);
        }
        let total: f64 = probs.iter().sum();
        let mut draw = self.rng.random_range(0.0..total);
        for (id, p) in order.iter().zip(&probs) {
            if draw < *p {
                return *id;
            }
            draw -= p;
        }
        order[order.len() - 1]
    }
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, l) in logits.iter().enumerate() {
        if *l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Continues `prompt` with `model`, calling `on_text` with each new piece of
/// text as soon as it is whole (never a split character, never part of a
/// stop string).
///
/// # Errors
/// [`GenerateError`] for an empty or too long prompt, bad settings, a
/// tokenizer failure or a device that cannot hand the logits back.
pub async fn generate(
    model: &Llama,
    tokenizer: &Tokenizer,
    prompt: &str,
    config: &GenerationConfig,
    device: &Device,
    on_text: impl FnMut(&str),
) -> Result<Generation, GenerateError> {
    run(model, &Frozen, tokenizer, prompt, config, device, on_text).await
}

/// [`generate`] with `adapter` applied for the prompt and every new token (a
/// routed task's sub-experts, say). With `config.merge_adapter` and an
/// adapter that merges, it is folded into a copy of the weights once, before
/// the prompt, and that time counts as prefill; otherwise it runs beside the
/// frozen projections.
///
/// # Errors
/// As [`generate`].
pub async fn generate_adapted(
    model: &Llama,
    adapter: &dyn Adapter,
    tokenizer: &Tokenizer,
    prompt: &str,
    config: &GenerationConfig,
    device: &Device,
    on_text: impl FnMut(&str),
) -> Result<Generation, GenerateError> {
    let started = Instant::now();
    let merged = match config.merge_adapter {
        true => model.merged(adapter),
        false => None,
    };
    let mut generation = match &merged {
        Some(merged) => run(merged, &Frozen, tokenizer, prompt, config, device, on_text).await?,
        None => run(model, adapter, tokenizer, prompt, config, device, on_text).await?,
    };
    generation.merged = merged.is_some();
    generation.prefill_seconds = started.elapsed().as_secs_f64() - generation.decode_seconds;
    Ok(generation)
}

/// The generation loop: `adapter` beside the projections of `model`.
async fn run(
    model: &Llama,
    adapter: &dyn Adapter,
    tokenizer: &Tokenizer,
    prompt: &str,
    config: &GenerationConfig,
    device: &Device,
    mut on_text: impl FnMut(&str),
) -> Result<Generation, GenerateError> {
    config.validate()?;
    let prompt_ids = tokenizer.encode(prompt, false)?;
    if prompt_ids.is_empty() {
        return Err(GenerateError::EmptyPrompt);
    }
    let limit = model.config().max_position_embeddings;
    if prompt_ids.len() >= limit {
        return Err(GenerateError::PromptTooLong {
            tokens: prompt_ids.len(),
            limit,
        });
    }
    let mut eos: Vec<u32> = model.config().eos_ids();
    eos.extend(tokenizer.special().eos);

    let mut sampler = Sampler::new(config.clone());
    let mut cache = KvCache::new();
    let mut history = prompt_ids.clone();
    let mut ids: Vec<u32> = Vec::new();
    let mut text = String::new();
    let mut emitted = 0;

    let started = Instant::now();
    let mut next_input = prompt_ids.clone();
    let mut prefill_seconds = 0.0;
    let stop = loop {
        if ids.len() == config.max_new_tokens {
            break StopReason::MaxTokens;
        }
        if cache.len() + next_input.len() > limit {
            break StopReason::ContextFull;
        }
        let mut logits = last_logits(model, adapter, &next_input, &mut cache, device).await?;
        if ids.is_empty() {
            prefill_seconds = started.elapsed().as_secs_f64();
        }
        let id = sampler.sample(&mut logits, &history);
        if config.stop_at_eos && eos.contains(&id) {
            break StopReason::Eos;
        }
        ids.push(id);
        history.push(id);
        next_input = vec![id];

        text = tokenizer.decode(&ids, true)?;
        if let Some((at, s)) = first_stop(&text, &config.stop) {
            text.truncate(at);
            if text.len() > emitted {
                on_text(&text[emitted..]);
            }
            break StopReason::StopString(s.to_string());
        }
        let ready = whole_prefix(&text, &config.stop);
        if ready > emitted {
            on_text(&text[emitted..ready]);
            emitted = ready;
        }
        crate::backend::yield_now().await;
    };
    if !matches!(stop, StopReason::StopString(_)) && text.len() > emitted {
        on_text(&text[emitted..]);
    }
    let total = started.elapsed().as_secs_f64();
    Ok(Generation {
        prompt_ids,
        ids,
        text,
        stop,
        prefill_seconds,
        decode_seconds: total - prefill_seconds,
        merged: false,
    })
}

/// What [`sample_texts`] writes: `count` texts of `tokens` tokens each after
/// the start token, drawn at `temperature` from the model's own next-token
/// distribution, `batch` texts per pass, seeded by `seed`.
#[derive(Debug, Clone, PartialEq)]
pub struct TextSampling {
    /// The token every text starts from (the model's start of text).
    pub start: u32,
    /// Texts to write.
    pub count: usize,
    /// New tokens per text (fewer when the model's context is shorter).
    pub tokens: usize,
    /// Softmax temperature (above 0).
    pub temperature: f64,
    /// Texts decoded together in one batch.
    pub batch: usize,
    /// Seeds the draws.
    pub seed: u64,
}

/// Texts the frozen model writes by itself from its start token: every
/// token drawn from `softmax(logits / temperature)` over the whole
/// vocabulary, with no stop. Each text is returned as its ids, start token
/// first.
///
/// # Errors
/// [`GenerateError::BadConfig`] for a temperature not above 0, and
/// [`GenerateError::Read`] when the device cannot hand the logits back.
pub async fn sample_texts(
    model: &Llama,
    sampling: &TextSampling,
    device: &Device,
) -> Result<Vec<Vec<u32>>, GenerateError> {
    if !(sampling.temperature > 0.0 && sampling.temperature.is_finite()) {
        return Err(GenerateError::BadConfig {
            field: "temperature",
            value: sampling.temperature.to_string(),
            reason: "sampling texts needs a temperature above 0",
        });
    }
    let tokens = sampling
        .tokens
        .min(model.config().max_position_embeddings.saturating_sub(1));
    let mut rng = StdRng::seed_from_u64(sampling.seed);
    let mut texts = Vec::with_capacity(sampling.count);
    while texts.len() < sampling.count {
        let b = sampling.batch.max(1).min(sampling.count - texts.len());
        let mut rows: Vec<Vec<u32>> = vec![vec![sampling.start]; b];
        let mut cache = KvCache::new();
        let mut input: Vec<u32> = rows.iter().map(|r| r[0]).collect();
        for _ in 0..tokens {
            let ids: Vec<i64> = input.iter().map(|&id| id as i64).collect();
            let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, 1]), device);
            let logits = model.forward_cached(ids, &mut cache); // [b, 1, vocab]
            let [_, _, vocab] = logits.dims();
            let logits = read_logits(logits.reshape([b, vocab])).await?;
            for (row, logits) in rows.iter_mut().zip(logits.chunks_exact(vocab)) {
                row.push(draw(logits, sampling.temperature, &mut rng));
            }
            input = rows.iter().map(|r| r[r.len() - 1]).collect();
            crate::backend::yield_now().await;
        }
        texts.extend(rows);
    }
    Ok(texts)
}

/// One id drawn from `softmax(logits / temperature)` by inverting its
/// cumulative sum at a uniform draw.
fn draw(logits: &[f32], temperature: f64, rng: &mut StdRng) -> u32 {
    let best = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| ((l as f64 - best) / temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut left = rng.random_range(0.0..total);
    for (id, w) in weights.iter().enumerate() {
        if left < *w {
            return id as u32;
        }
        left -= w;
    }
    (weights.len() - 1) as u32
}

/// Runs `input` through the model after what `cache` holds and returns the
/// logits of its last position.
async fn last_logits(
    model: &Llama,
    adapter: &dyn Adapter,
    input: &[u32],
    cache: &mut KvCache,
    device: &Device,
) -> Result<Vec<f32>, GenerateError> {
    let ids: Vec<i64> = input.iter().map(|&id| id as i64).collect();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, input.len()]), device);
    let logits = model.forward_cached_adapted(tokens, cache, adapter); // [1, t, vocab]
    let [_, t, vocab] = logits.dims();
    read_logits(logits.slice([0..1, t - 1..t, 0..vocab])).await
}

/// The values of `logits`, read back to the host.
async fn read_logits<const D: usize>(logits: Tensor<D>) -> Result<Vec<f32>, GenerateError> {
    logits
        .into_data_async()
        .await
        .map_err(|e| GenerateError::Read(e.to_string()))?
        .try_into_vec::<f32>()
        .map_err(|e| GenerateError::Read(format!("{e:?}")))
}

/// The earliest stop string in `text`: its byte offset and the string.
fn first_stop<'a>(text: &str, stops: &'a [String]) -> Option<(usize, &'a str)> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()).map(|at| (at, s.as_str())))
        .min_by_key(|(at, _)| *at)
}

/// How much of `text` can be shown: not a trailing replacement character
/// (a character whose bytes have not all arrived), and not a tail that could
/// still grow into a stop string.
fn whole_prefix(text: &str, stops: &[String]) -> usize {
    let mut end = text.len();
    if text.ends_with('\u{FFFD}') {
        end -= '\u{FFFD}'.len_utf8();
    }
    let shown = &text[..end];
    let held = stops
        .iter()
        .flat_map(|s| {
            s.char_indices()
                .skip(1)
                .map(move |(i, _)| &s[..i])
                .filter(|prefix| shown.ends_with(prefix))
                .map(str::len)
        })
        .max()
        .unwrap_or(0);
    end - held
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(temperature: f32) -> GenerationConfig {
        GenerationConfig {
            temperature,
            ..GenerationConfig::default()
        }
    }

    #[test]
    fn a_draw_follows_the_softmax() {
        let mut rng = StdRng::seed_from_u64(3);
        // One logit far above the rest takes every draw.
        for _ in 0..20 {
            assert_eq!(draw(&[0.0, 40.0, 0.0], 1.0, &mut rng), 1);
        }
        // Logits ln 1 and ln 3: the second about three times in four.
        let second = (0..4000)
            .filter(|_| draw(&[0.0, 3f32.ln()], 1.0, &mut rng) == 1)
            .count();
        assert!((2850..3150).contains(&second), "{second} of 4000");
    }

    #[test]
    fn the_model_writes_seeded_texts_from_its_start_token() {
        let device = Device::flex();
        let model = crate::model::LlamaConfig::new(32, 8, 16, 2, 2, 1).init(&device);
        let sampling = TextSampling {
            start: 3,
            count: 5,
            tokens: 6,
            temperature: 1.0,
            batch: 2,
            seed: 9,
        };
        let texts = pollster::block_on(sample_texts(&model, &sampling, &device)).unwrap();
        assert_eq!(texts.len(), 5);
        for text in &texts {
            assert_eq!(text.len(), 7);
            assert_eq!(text[0], 3);
            assert!(text.iter().all(|&id| id < 32));
        }
        let again = pollster::block_on(sample_texts(&model, &sampling, &device)).unwrap();
        assert_eq!(again, texts);
        let cold = TextSampling {
            temperature: 0.0,
            ..sampling
        };
        assert!(matches!(
            pollster::block_on(sample_texts(&model, &cold, &device)),
            Err(GenerateError::BadConfig { .. })
        ));
    }

    #[test]
    fn greedy_takes_the_largest_logit() {
        let mut sampler = Sampler::new(config(0.0));
        assert_eq!(sampler.sample(&mut [0.1, 2.0, -1.0, 1.9], &[]), 1);
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative_logits() {
        // Token 1 (2.0) was seen: 2.0 / 2 = 1.0 < 1.9, so greedy moves to token 3.
        let mut sampler = Sampler::new(GenerationConfig {
            repetition_penalty: 2.0,
            ..config(0.0)
        });
        let mut logits = [0.1, 2.0, -1.0, 1.9];
        assert_eq!(sampler.sample(&mut logits, &[1, 2]), 3);
        assert_eq!(logits, [0.1, 1.0, -2.0, 1.9]);
    }

    #[test]
    fn top_k_one_is_greedy_at_any_temperature() {
        let mut sampler = Sampler::new(GenerationConfig {
            top_k: Some(1),
            ..config(5.0)
        });
        for _ in 0..20 {
            assert_eq!(sampler.sample(&mut [0.0, 0.5, 0.4], &[]), 1);
        }
    }

    #[test]
    fn top_p_keeps_the_smallest_nucleus() {
        // Probabilities at temperature 1: about 0.665, 0.245, 0.090. With top_p
        // 0.8 the nucleus is {0, 1}: token 2 must never come out.
        let mut sampler = Sampler::new(GenerationConfig {
            top_p: 0.8,
            ..config(1.0)
        });
        let drawn: HashSet<u32> = (0..200)
            .map(|_| sampler.sample(&mut [2.0, 1.0, 0.0], &[]))
            .collect();
        assert_eq!(drawn, HashSet::from([0, 1]));
    }

    #[test]
    fn the_same_seed_gives_the_same_draws() {
        let draws = |seed| {
            let mut sampler = Sampler::new(GenerationConfig {
                seed,
                ..config(1.0)
            });
            (0..50)
                .map(|_| sampler.sample(&mut [0.3, 0.2, 0.1, 0.0], &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
    }

    #[test]
    fn text_is_held_back_while_it_could_become_a_stop_string() {
        let stops = vec!["\nUser:".to_string()];
        assert_eq!(whole_prefix("Hello\nUs", &stops), "Hello".len());
        assert_eq!(whole_prefix("Hello there", &stops), "Hello there".len());
        assert_eq!(whole_prefix("caf\u{FFFD}", &[]), "caf".len());
        assert_eq!(first_stop("a\nUser: b", &stops), Some((1, "\nUser:")));
    }

    #[test]
    fn bad_settings_are_named() {
        let err = GenerationConfig {
            top_p: 0.0,
            ..config(1.0)
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("top_p"), "{err}");
    }
}
