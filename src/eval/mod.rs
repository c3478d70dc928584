//! Scores a learner on a task's held-out examples (docs/METHOD.md, "Metrics"): the
//! mean per-token log-likelihood (and perplexity), exact match for tasks with
//! answers, and the router's decision for every sample (a long text's
//! windows are routed together, as one sample); routed (what a person gets)
//! or with the true task id (the oracle).
//!
//! Exact match is what greedy decoding would give, computed in one pass:
//! greedy decoding reproduces the answer and its end-of-text token exactly
//! when the likeliest next token at every answer position, given the correct
//! tokens before it, is the correct one.

pub mod metrics;
pub mod robustness;

use std::ops::Range;

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::data::{DataConfig, Example, PaddedBatch, generation_prompt, prompt_queries};
use crate::model::generate::{
    GenerateError, Generation, GenerationConfig, generate, generate_adapted,
};
use crate::model::{FrozenBase, next_token_nll};
use crate::mose::{Learner, MoseError, Route, read_vec};
use crate::tokenizer::{Tokenizer, TokenizerError};
use crate::train::{batch_features, batch_tensors};

/// How a sequence's adapter is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    /// The task-key router decides, per sequence.
    Routed,
    /// The true task id decides (an upper bound).
    Oracle,
}

/// One task's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskScore {
    /// Mean log-likelihood per target token, in nats (the R matrix entry).
    pub log_likelihood: f64,
    /// `exp(-log_likelihood)`.
    pub perplexity: f64,
    /// Target tokens scored.
    pub tokens: usize,
    /// Fraction of answers greedy decoding gets exactly right; `None` for plain text.
    pub exact_match: Option<f64>,
    /// The task each sample was routed to (`None` where no task applied:
    /// "none of these", or nothing learned yet).
    pub routed_to: Vec<Option<usize>>,
}

/// Scores `examples` of task `task` with `learner` (the base model when `None`).
pub async fn score_task(
    base: FrozenBase<'_>,
    learner: Option<&Learner>,
    task: usize,
    examples: &[Example],
    routing: Routing,
    batch_size: usize,
) -> Result<TaskScore, MoseError> {
    let FrozenBase {
        model,
        pad_id,
        device,
    } = base;
    let mut total_nll = 0.0f64;
    let mut tokens = 0usize;
    let mut exact = 0usize;
    let mut answered = 0usize;
    let spans = sample_spans(examples);
    let sample_routes = match learner {
        Some(learner) => {
            routes_for(base, learner, task, examples, &spans, routing, batch_size).await?
        }
        None => vec![Route::oracle(task, 0); spans.len()],
    };
    let routed_to = sample_routes.iter().map(Route::top).collect();
    // Every window carries its sample's route.
    let routes: Vec<Route> = spans
        .iter()
        .zip(&sample_routes)
        .flat_map(|(span, route)| std::iter::repeat_n(route, span.len()).cloned())
        .collect();
    for (k, chunk) in examples.chunks(batch_size.max(1)).enumerate() {
        let refs: Vec<&Example> = chunk.iter().collect();
        let batch = PaddedBatch::new(&refs, pad_id);
        let (ids, targets) = batch_tensors(&batch, device);
        let at = k * batch_size.max(1);
        let routes = &routes[at..at + chunk.len()];
        let mixture = learner.and_then(|l| l.mixture(routes, device));
        let logits = match &mixture {
            Some(mixture) => model.forward_adapted(ids.clone(), mixture),
            None => model.forward(ids.clone()),
        };
        let [b, t, _] = logits.dims();
        let predicted = logits
            .clone()
            .argmax(2)
            .reshape([b, t])
            .slice([0..b, 0..t - 1]);
        let next = ids.clone().slice([0..b, 1..t]);
        let wrong = predicted.not_equal(next).float() * targets.clone(); // [b, t - 1]
        let nll = next_token_nll(logits, ids) * targets;
        let per_row = Tensor::cat(vec![nll.sum_dim(1), wrong.sum_dim(1)], 1); // [b, 2]
        let values = read_vec(per_row).await?;
        for (row, example) in chunk.iter().enumerate() {
            total_nll += values[row * 2] as f64;
            if example.answer.is_some() {
                answered += 1;
                exact += (values[row * 2 + 1] == 0.0) as usize;
            }
        }
        tokens += batch.targets.iter().filter(|&&x| x > 0.0).count();
        crate::backend::yield_now().await;
    }
    let log_likelihood = -total_nll / tokens.max(1) as f64;
    Ok(TaskScore {
        log_likelihood,
        perplexity: (-log_likelihood).exp(),
        tokens,
        exact_match: (answered > 0).then(|| exact as f64 / answered as f64),
        routed_to,
    })
}

/// The router's decision for a prompt a person typed, read as its task's
/// samples are read ([`prompt_queries`]): a text's windows, or each pair
/// line's prompt; the samples' features averaged into one.
///
/// # Errors
/// [`MoseError::Read`] when the prompt cannot be tokenized or the device
/// cannot hand the feature back.
pub async fn route_prompt(
    base: FrozenBase<'_>,
    learner: &Learner,
    tokenizer: &Tokenizer,
    prompt: &str,
    data: &DataConfig,
) -> Result<Route, MoseError> {
    let examples =
        prompt_queries(prompt, tokenizer, data).map_err(|e| MoseError::Read(e.to_string()))?;
    if examples.is_empty() {
        return Ok(learner.route(&[]));
    }
    let batch = learner.config().route_batch_size;
    let features = sample_features(base, learner, &examples, batch).await?;
    let mut pooled = vec![0.0f64; learner.feature_width()];
    for feature in &features {
        for (p, &x) in pooled.iter_mut().zip(feature) {
            *p += x as f64;
        }
    }
    let samples = features.len().max(1) as f64;
    let pooled: Vec<f32> = pooled.iter().map(|p| (p / samples) as f32).collect();
    Ok(learner.route(&pooled))
}

/// Generates a continuation of `prompt` the way a person gets one: the
/// router picks the task(s) from the frozen model's reading of the prompt,
/// and their sub-experts (or a shared baseline's adapter) stay in place for
/// the prompt and every new token. A `prompt =>` line goes through the
/// model's chat template as the task's pairs did ([`generation_prompt`]).
/// Returns the route with the generation.
///
/// # Errors
/// [`GenerateError`] from generation; routing's errors as [`GenerateError::Read`].
pub async fn generate_routed(
    base: FrozenBase<'_>,
    learner: &Learner,
    tokenizer: &Tokenizer,
    prompt: &str,
    data: &DataConfig,
    config: &GenerationConfig,
    on_text: impl FnMut(&str),
) -> Result<(Route, Generation), GenerateError> {
    let FrozenBase { model, device, .. } = base;
    let route = match learner.method().is_routed() {
        true => route_prompt(base, learner, tokenizer, prompt, data)
            .await
            .map_err(|e| GenerateError::Read(e.to_string()))?,
        false => Route::oracle(0, 0),
    };
    // A pair's prompt is asked as the task's pairs were taught.
    let asked = generation_prompt(prompt, tokenizer, data).map_err(TokenizerError::from)?;
    // No task chosen: the base model answers as it is, with nothing to merge.
    let generation = match learner.mixture(std::slice::from_ref(&route), device) {
        Some(mixture) => {
            generate_adapted(model, &mixture, tokenizer, &asked, config, device, on_text).await?
        }
        None => generate(model, tokenizer, &asked, config, device, on_text).await?,
    };
    Ok((route, generation))
}

/// The router's decision for every sample (`spans` of `examples`), or the oracle's.
async fn routes_for(
    base: FrozenBase<'_>,
    learner: &Learner,
    task: usize,
    examples: &[Example],
    spans: &[Range<usize>],
    routing: Routing,
    batch_size: usize,
) -> Result<Vec<Route>, MoseError> {
    if !learner.method().is_routed() {
        // One shared adapter: nothing is routed.
        return Ok(vec![Route::oracle(task, 0); spans.len()]);
    }
    if routing == Routing::Oracle || learner.tasks_learned() == 0 {
        return Ok(vec![learner.oracle_route(task); spans.len()]);
    }
    let features = sample_features(base, learner, examples, batch_size).await?;
    Ok(features.iter().map(|f| learner.route(f)).collect())
}

/// The examples of each sample: a sample starts at each first window.
pub(crate) fn sample_spans(examples: &[Example]) -> Vec<Range<usize>> {
    let mut spans: Vec<Range<usize>> = Vec::new();
    for (i, example) in examples.iter().enumerate() {
        match spans.last_mut() {
            Some(span) if example.window > 0 => span.end = i + 1,
            _ => spans.push(i..i + 1),
        }
    }
    spans
}

/// The router's feature of each sample of `examples`: its windows'
/// features averaged, each weighted by its query tokens.
pub(crate) async fn sample_features(
    base: FrozenBase<'_>,
    learner: &Learner,
    examples: &[Example],
    batch_size: usize,
) -> Result<Vec<Vec<f32>>, MoseError> {
    let FrozenBase {
        model,
        pad_id,
        device,
    } = base;
    let width = learner.feature_width();
    let mut rows = Vec::with_capacity(examples.len() * width);
    for chunk in examples.chunks(batch_size.max(1)) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let batch = PaddedBatch::new(&refs, pad_id);
        let (ids, _) = batch_tensors(&batch, device);
        rows.extend(batch_features(model, learner, &batch, ids, device, None).await?);
        crate::backend::yield_now().await;
    }
    Ok(sample_spans(examples)
        .into_iter()
        .map(|span| {
            let mut pooled = vec![0.0f64; width];
            let mut total = 0.0f64;
            for i in span {
                let weight = examples[i].query_len.max(1) as f64;
                total += weight;
                for (p, &x) in pooled.iter_mut().zip(&rows[i * width..(i + 1) * width]) {
                    *p += weight * x as f64;
                }
            }
            pooled.iter().map(|p| (p / total) as f32).collect()
        })
        .collect())
}
