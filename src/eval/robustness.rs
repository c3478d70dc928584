//! How the router holds up on text as people type it (docs/METHOD.md,
//! "Robustness"): held-out samples with a share of their letters replaced at
//! random, as typos, and only the first tokens of each sample, as a short
//! prompt. The accuracy is the share of samples routed to their own task.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::sample_features;
use crate::data::{DataConfig, Example, Sample, tokenize};
use crate::model::FrozenBase;
use crate::mose::{Learner, MoseError};
use crate::tokenizer::Tokenizer;

/// What is done to each held-out sample before it is routed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Probe {
    /// Nothing.
    Clean,
    /// Each ASCII letter the router reads is replaced by a random letter of
    /// the same case with probability `share`.
    Typos {
        /// The probability.
        share: f64,
        /// Drives the replacements.
        seed: u64,
    },
    /// Only the first this many token ids of the query (start token included).
    FirstTokens(usize),
}

impl Probe {
    /// The sample as the router sees it under this probe (typos land where
    /// the router reads: a pair's prompt, all of a text).
    fn apply(&self, sample: &Sample, rng: &mut StdRng) -> Sample {
        let Probe::Typos { share, .. } = *self else {
            return sample.clone();
        };
        let mut typo = |text: &str| -> String {
            text.chars()
                .map(
                    |c| match c.is_ascii_alphabetic() && rng.random::<f64>() < share {
                        true => {
                            let letter = rng.random_range(b'a'..=b'z') as char;
                            if c.is_ascii_uppercase() {
                                letter.to_ascii_uppercase()
                            } else {
                                letter
                            }
                        }
                        false => c,
                    },
                )
                .collect()
        };
        match sample {
            Sample::Text(text) => Sample::Text(typo(text)),
            Sample::Pair { prompt, answer } => Sample::Pair {
                prompt: typo(prompt),
                answer: answer.clone(),
            },
        }
    }

    /// The examples the router reads of one (probed) sample.
    fn examples(&self, examples: Vec<Example>) -> Vec<Example> {
        let Probe::FirstTokens(n) = *self else {
            return examples;
        };
        examples
            .into_iter()
            .take(1)
            .map(|e| {
                let len = n.min(e.query_len).max(2).min(e.ids.len());
                Example {
                    ids: e.ids[..len].to_vec(),
                    targets: vec![false; len - 1],
                    query_len: len.min(e.query_len),
                    answer: None,
                    window: 0,
                }
            })
            .collect()
    }
}

/// The share of `heldout[t]`'s samples (for every task `t` the learner has
/// learned) that the router sends to task `t` under `probe`; `None` when
/// there is nothing to route. A sample that cannot be tokenized is skipped.
///
/// # Errors
/// [`MoseError::Read`] when the device cannot hand the features back.
pub async fn routing_accuracy(
    base: FrozenBase<'_>,
    learner: &Learner,
    tokenizer: &Tokenizer,
    heldout: &[Vec<Sample>],
    data: &DataConfig,
    probe: Probe,
    batch_size: usize,
) -> Result<Option<f64>, MoseError> {
    let seed = match probe {
        Probe::Typos { seed, .. } => seed,
        _ => 0,
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut examples = Vec::new();
    let mut truth = Vec::new();
    for (task, samples) in heldout.iter().enumerate().take(learner.tasks_learned()) {
        for sample in samples {
            let probed = probe.apply(sample, &mut rng);
            let Ok(found) = tokenize(&probed, tokenizer, data) else {
                continue;
            };
            let found = probe.examples(found);
            if !found.is_empty() {
                examples.extend(found);
                truth.push(task);
            }
        }
    }
    if examples.is_empty() {
        return Ok(None);
    }
    let features = sample_features(base, learner, &examples, batch_size).await?;
    let right = features
        .iter()
        .zip(&truth)
        .filter(|(feature, task)| learner.route(feature).top() == Some(**task))
        .count();
    Ok(Some(right as f64 / truth.len() as f64))
}
