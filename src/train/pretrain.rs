//! Pretraining a base model from scratch: the recipe of the embedded default
//! (docs/ARCHITECTURE.md, "The embedded default").
//!
//! A corpus is a list of documents. Each is encoded and followed by the
//! tokenizer's end-of-text token; the stream is cut into sequences of
//! `seq_len` tokens; every step takes a shuffled batch of them (one seed
//! drives initialisation and order) and takes a clipped AdamW step over all
//! of the model's parameters with a warm-up and cosine learning rate. The
//! held-out documents are scored as the mean next-token log-likelihood, and
//! against a unigram model of the training tokens as the baseline any
//! language model must beat.

use burn::config::Config;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use web_time::Instant;

use super::TrainError;
use crate::data::Batches;
use crate::model::{Llama, LlamaConfig, ModelError, next_token_nll};
use crate::mose::read_vec;
use crate::optim::{AdamWSettings, FlatAdamW};
use crate::tokenizer::{Tokenizer, TokenizerError};

/// The shape of the model, its tokenizer and how it is trained; written into
/// the model card so a run can be repeated.
#[derive(Config, Debug, PartialEq)]
pub struct PretrainConfig {
    /// Tokens in the vocabulary, the two special tokens included.
    #[config(default = 4096)]
    pub vocab_size: usize,
    /// A pair of symbols is merged only if it occurs this often.
    #[config(default = 2)]
    pub min_pair_frequency: u64,
    /// Width of the residual stream.
    #[config(default = 192)]
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    #[config(default = 512)]
    pub intermediate_size: usize,
    /// Decoder layers.
    #[config(default = 4)]
    pub layers: usize,
    /// Query heads.
    #[config(default = 6)]
    pub heads: usize,
    /// Key/value heads (grouped-query attention).
    #[config(default = 3)]
    pub kv_heads: usize,
    /// Tokens per training sequence, and the model's context.
    #[config(default = 256)]
    pub seq_len: usize,
    /// Optimiser steps.
    #[config(default = 1600)]
    pub steps: usize,
    /// Sequences per step.
    #[config(default = 8)]
    pub batch_size: usize,
    /// Peak learning rate.
    #[config(default = 2e-3)]
    pub learning_rate: f64,
    /// Fraction of the steps spent warming up from 0.
    #[config(default = 0.025)]
    pub warmup_fraction: f64,
    /// The cosine ends at this fraction of the peak.
    #[config(default = 0.1)]
    pub min_lr_fraction: f64,
    /// AdamW's decoupled weight decay.
    #[config(default = 0.1)]
    pub weight_decay: f64,
    /// AdamW's decay of the first moment.
    #[config(default = 0.9)]
    pub adam_beta_1: f64,
    /// AdamW's decay of the second moment.
    #[config(default = 0.95)]
    pub adam_beta_2: f64,
    /// AdamW's epsilon.
    #[config(default = 1e-8)]
    pub adam_epsilon: f64,
    /// Gradients are scaled down when their global L2 norm exceeds this.
    #[config(default = 1.0)]
    pub grad_clip_norm: f64,
    /// Drives initialisation and the order of sequences.
    #[config(default = 0)]
    pub seed: u64,
    /// Sequences per forward pass when scoring held-out text.
    #[config(default = 16)]
    pub eval_batch_size: usize,
}

impl PretrainConfig {
    /// The model config this run trains, with the tokenizer's special tokens.
    pub fn model_config(&self, special: crate::tokenizer::SpecialTokens) -> LlamaConfig {
        let mut config = LlamaConfig::new(
            self.vocab_size,
            self.hidden_size,
            self.intermediate_size,
            self.layers,
            self.heads,
            self.kv_heads,
        );
        config.max_position_embeddings = self.seq_len;
        config.bos_token_id = special.bos;
        config.eos_token_id = special.eos.map(crate::model::TokenIds::One);
        config.pad_token_id = special.pad;
        config
    }

    /// The learning rate at `step`: linear warm-up, then a cosine.
    pub fn learning_rate_at(&self, step: usize) -> f64 {
        let warmup = ((self.warmup_fraction * self.steps as f64).round() as usize).max(1);
        if step < warmup {
            return self.learning_rate * (step + 1) as f64 / warmup as f64;
        }
        let decay = self.steps.saturating_sub(warmup).max(1);
        let progress = ((step - warmup) as f64 / decay as f64).min(1.0);
        let min = self.learning_rate * self.min_lr_fraction;
        min + (self.learning_rate - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }

    fn adam_settings(&self) -> AdamWSettings {
        AdamWSettings {
            beta_1: self.adam_beta_1,
            beta_2: self.adam_beta_2,
            epsilon: self.adam_epsilon,
            weight_decay: self.weight_decay,
            clip_norm: self.grad_clip_norm,
        }
    }

    fn validate(&self) -> Result<(), TrainError> {
        let at_least = |field: &'static str, value: usize, min: usize| match value >= min {
            true => Ok(()),
            false => Err(TrainError::InvalidConfig {
                field,
                value: value.to_string(),
                reason: if min == 1 {
                    "must be at least 1"
                } else {
                    "must be at least 2"
                },
            }),
        };
        at_least("steps", self.steps, 1)?;
        at_least("batch_size", self.batch_size, 1)?;
        at_least("eval_batch_size", self.eval_batch_size, 1)?;
        at_least("seq_len", self.seq_len, 2)?;
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(TrainError::InvalidConfig {
                field: "learning_rate",
                value: self.learning_rate.to_string(),
                reason: "must be above 0",
            });
        }
        Ok(())
    }
}

/// One document of a corpus, as `scripts/data.sh` writes them (one JSON
/// object per line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Which source it came from.
    pub source: String,
    /// Its title (an address, a chapter, an entry).
    pub title: String,
    /// Its text.
    pub text: String,
}

/// Documents encoded as one stream of token ids, each followed by the
/// end-of-text token.
///
/// # Errors
/// [`TokenizerError::Encode`] from the tokenizer; [`TokenizerError::Train`]
/// when the tokenizer has no end-of-text token.
pub fn encode_documents<'a>(
    tokenizer: &Tokenizer,
    documents: impl IntoIterator<Item = &'a Document>,
    mut on_document: impl FnMut(usize),
) -> Result<Vec<u32>, TokenizerError> {
    let end = tokenizer
        .special()
        .eos
        .ok_or_else(|| TokenizerError::Train("the tokenizer names no end-of-text token".into()))?;
    let mut ids = Vec::new();
    for (i, document) in documents.into_iter().enumerate() {
        ids.extend(tokenizer.encode(&document.text, false)?);
        ids.push(end);
        on_document(i + 1);
    }
    Ok(ids)
}

/// Perplexity of a unigram model of `train` (add-one smoothed over a
/// vocabulary of `vocab_size`) on `heldout`: what knowing only how often
/// each token occurs achieves.
pub fn unigram_perplexity(train: &[u32], heldout: &[u32], vocab_size: usize) -> f64 {
    let mut counts = vec![1.0f64; vocab_size];
    for &id in train {
        counts[id as usize] += 1.0;
    }
    let total: f64 = counts.iter().sum();
    let nll: f64 = heldout
        .iter()
        .map(|&id| -(counts[id as usize] / total).ln())
        .sum();
    (nll / heldout.len().max(1) as f64).exp()
}

/// Why pretraining stopped.
#[derive(Debug, thiserror::Error)]
pub enum PretrainError {
    /// A training error (a setting, divergence, a device read).
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The model could not be built or written.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The corpus gives too few tokens for one sequence.
    #[error(
        "the {part} text gives {tokens} tokens, fewer than one sequence of {seq_len}; give more text or lower seq_len"
    )]
    TooLittleText {
        /// `"training"` or `"held-out"`.
        part: &'static str,
        /// Tokens it gave.
        tokens: usize,
        /// The sequence length.
        seq_len: usize,
    },
}

/// What one pretraining step did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PretrainStep {
    /// Steps done, this one included.
    pub step: usize,
    /// Mean next-token loss of the batch, in nats.
    pub loss: f32,
    /// The learning rate used.
    pub learning_rate: f64,
    /// Training tokens per second since the run started.
    pub tokens_per_second: f64,
}

/// A held-out score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Heldout {
    /// Mean next-token loss per token, in nats.
    pub loss: f64,
    /// `exp(loss)`.
    pub perplexity: f64,
    /// Tokens scored.
    pub tokens: usize,
}

/// A pretraining run in progress.
pub struct Pretraining {
    config: PretrainConfig,
    /// The model being trained, on the autodiff device.
    model: Option<Llama>,
    optimizer: FlatAdamW,
    /// Training sequences, `seq_len` ids each.
    sequences: Vec<Vec<u32>>,
    batches: Batches,
    step: usize,
    tokens_seen: usize,
    started: Instant,
    device: Device,
}

impl Pretraining {
    /// A fresh model of `config`'s shape and the training stream cut into sequences.
    ///
    /// # Errors
    /// [`PretrainError::Train`] for a bad setting;
    /// [`PretrainError::TooLittleText`] when the stream is shorter than a sequence.
    pub fn start(
        config: &PretrainConfig,
        model_config: &LlamaConfig,
        train_ids: &[u32],
        device: &Device,
    ) -> Result<Self, PretrainError> {
        config.validate()?;
        model_config.validate()?;
        let sequences = sequences(train_ids, config.seq_len, "training")?;
        let train_device = device.clone().autodiff();
        train_device.seed(config.seed);
        Ok(Self {
            config: config.clone(),
            model: Some(model_config.init(&train_device)),
            optimizer: FlatAdamW::new(config.adam_settings()),
            batches: Batches::new(sequences.len(), config.batch_size, config.seed),
            sequences,
            step: 0,
            tokens_seen: 0,
            started: Instant::now(),
            device: train_device,
        })
    }

    /// Steps done.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Training sequences in one pass over the corpus.
    pub fn sequences(&self) -> usize {
        self.sequences.len()
    }

    /// One AdamW step on the next batch.
    ///
    /// # Errors
    /// [`TrainError::Diverged`] when the loss is not a number; a device read error.
    pub async fn train_step(&mut self) -> Result<PretrainStep, TrainError> {
        let batch: Vec<u32> = self
            .batches
            .next_indices()
            .into_iter()
            .flat_map(|i| self.sequences[i].iter().copied())
            .collect();
        let rows = batch.len() / self.config.seq_len;
        let ids = ids_tensor(&batch, rows, self.config.seq_len, &self.device);
        let model = self.model.take().expect("a run holds its model");
        let loss = next_token_nll(model.forward(ids.clone()), ids).mean();
        let value = read_vec(loss.clone()).await?[0];
        if !value.is_finite() {
            return Err(TrainError::Diverged {
                task: "pretraining".into(),
                step: self.step + 1,
                loss: value,
            });
        }
        let learning_rate = self.config.learning_rate_at(self.step);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        self.model = Some(self.optimizer.step(learning_rate, model, grads));
        self.step += 1;
        self.tokens_seen += rows * (self.config.seq_len - 1);
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        Ok(PretrainStep {
            step: self.step,
            loss: value,
            learning_rate,
            tokens_per_second: self.tokens_seen as f64 / seconds,
        })
    }

    /// The model as it stands, off the autodiff device.
    pub fn model(&self) -> Llama {
        self.model.as_ref().expect("a run holds its model").valid()
    }

    /// Scores `heldout_ids` with the model as it stands.
    ///
    /// # Errors
    /// [`PretrainError::TooLittleText`] when the text is shorter than a sequence.
    pub async fn evaluate(&self, heldout_ids: &[u32]) -> Result<Heldout, PretrainError> {
        let model = self.model();
        heldout_score(
            &model,
            heldout_ids,
            self.config.seq_len,
            self.config.eval_batch_size,
            &self.device.clone().inner(),
        )
        .await
    }
}

/// The mean next-token loss of `model` on `ids` cut into sequences of
/// `seq_len`, `batch_size` sequences per forward pass.
///
/// # Errors
/// [`PretrainError::TooLittleText`] when `ids` is shorter than one sequence.
pub async fn heldout_score(
    model: &Llama,
    ids: &[u32],
    seq_len: usize,
    batch_size: usize,
    device: &Device,
) -> Result<Heldout, PretrainError> {
    let sequences = sequences(ids, seq_len, "held-out")?;
    let mut total = 0.0f64;
    let mut tokens = 0usize;
    for chunk in sequences.chunks(batch_size) {
        let flat: Vec<u32> = chunk.iter().flatten().copied().collect();
        let ids = ids_tensor(&flat, chunk.len(), seq_len, device);
        let nll = next_token_nll(model.forward(ids.clone()), ids).sum();
        total += read_vec(nll).await.map_err(TrainError::from)?[0] as f64;
        tokens += chunk.len() * (seq_len - 1);
        crate::backend::yield_now().await;
    }
    let loss = total / tokens as f64;
    Ok(Heldout {
        loss,
        perplexity: loss.exp(),
        tokens,
    })
}

/// `ids` cut into whole sequences of `seq_len` (the rest is dropped).
fn sequences(
    ids: &[u32],
    seq_len: usize,
    part: &'static str,
) -> Result<Vec<Vec<u32>>, PretrainError> {
    if ids.len() < seq_len {
        return Err(PretrainError::TooLittleText {
            part,
            tokens: ids.len(),
            seq_len,
        });
    }
    Ok(ids.chunks_exact(seq_len).map(<[u32]>::to_vec).collect())
}

fn ids_tensor(ids: &[u32], rows: usize, seq_len: usize, device: &Device) -> Tensor<2, Int> {
    let ids: Vec<i64> = ids.iter().map(|&id| id as i64).collect();
    Tensor::from_data(TensorData::new(ids, [rows, seq_len]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_learning_rate_warms_up_then_decays_to_its_floor() {
        let config = PretrainConfig::new()
            .with_steps(100)
            .with_warmup_fraction(0.02)
            .with_learning_rate(1.0);
        assert_eq!(config.learning_rate_at(0), 0.5);
        assert_eq!(config.learning_rate_at(1), 1.0);
        assert!(config.learning_rate_at(50) < 1.0 && config.learning_rate_at(50) > 0.1);
        assert!((config.learning_rate_at(100) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn the_unigram_baseline_is_the_exponentiated_entropy() {
        // Tokens 0 and 1 seen 3 and 1 times, plus one each: p = 4/6 and 2/6.
        let train = [0, 0, 0, 1];
        let ppl = unigram_perplexity(&train, &[0, 1], 2);
        let expected = (-((4.0f64 / 6.0).ln() + (2.0f64 / 6.0).ln()) / 2.0).exp();
        assert!((ppl - expected).abs() < 1e-12);
    }
}
