//! The base model's own text as the router sees it (docs/METHOD.md, "The
//! base model's own text"): the count, mean and scatter of the router
//! features of texts the frozen model writes by itself from its start token.
//!
//! They describe the base model and the router's settings, not a project:
//! every project on the same weights with the same settings would write the
//! same texts. So a model folder can carry them, as `background.safetensors`
//! (written by `mose background`), and a learner adopts them
//! ([`Learner::adopt_background`](super::Learner::adopt_background)) instead
//! of writing the texts again, which costs seconds on a CPU but minutes on a
//! software GPU. A file whose recipe differs from the learner's in anything
//! (the weights' fingerprint, a setting) is not adopted: the learner writes
//! its own texts with its first task.
//!
//! The file: f32 tensors `mean` `[d]` and `scatter` `[d, d]`, and under the
//! metadata key `mose_lab_background` a JSON description with
//! `format_version`, the model's `fingerprint`, the `recipe` and the `count`
//! of features.

use serde::{Deserialize, Serialize};

use super::lda::TaskStats;
use super::{MoseConfig, MoseError};
use crate::saved::{self, ReadError, TensorError};

/// The name of the file in a model folder.
pub const BACKGROUND_FILE: &str = "background.safetensors";

/// The metadata key of the JSON description.
const BACKGROUND_KEY: &str = "mose_lab_background";

/// The version of the file this build writes and reads.
pub const BACKGROUND_FORMAT_VERSION: u32 = 1;

/// Everything the statistics depend on besides the weights: the settings
/// the texts are written with and the feature they are read as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackgroundRecipe {
    /// Texts written (`background_texts`).
    pub texts: usize,
    /// Tokens in each (`background_tokens`).
    pub tokens: usize,
    /// Temperature they are drawn at (`background_temperature`).
    pub temperature: f64,
    /// Seed of the draws (`background_seed`).
    pub seed: u64,
    /// Texts written together (`route_batch_size`: the draws follow it).
    pub batch: usize,
    /// Values in one router feature.
    pub feature_width: usize,
    /// The short prefix also counted per text (`route_prefix_tokens`).
    pub prefix_tokens: usize,
}

impl BackgroundRecipe {
    /// The recipe `config` gives for features `feature_width` wide.
    pub fn of(config: &MoseConfig, feature_width: usize) -> Self {
        Self {
            texts: config.background_texts,
            tokens: config.background_tokens,
            temperature: config.background_temperature,
            seed: config.background_seed,
            batch: config.route_batch_size,
            feature_width,
            prefix_tokens: config.route_prefix_tokens,
        }
    }
}

/// The statistics of one base model's own text, with what they were made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Background {
    /// The weights' fingerprint ([`crate::project::BaseModel`]'s, FNV-1a 64 in hex).
    fingerprint: String,
    recipe: BackgroundRecipe,
    pub(crate) stats: TaskStats,
}

/// The JSON description in the file's metadata.
#[derive(Debug, Serialize, Deserialize)]
struct Description {
    format_version: u32,
    fingerprint: String,
    recipe: BackgroundRecipe,
    count: f64,
}

impl Background {
    pub(crate) fn new(fingerprint: &str, recipe: BackgroundRecipe, stats: TaskStats) -> Self {
        Self {
            fingerprint: fingerprint.into(),
            recipe,
            stats,
        }
    }

    /// The weights' fingerprint they were made with.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The settings they were made with.
    pub fn recipe(&self) -> &BackgroundRecipe {
        &self.recipe
    }

    /// Whether a learner with `config` on the weights `fingerprint` names
    /// adopts them: made from those weights with the same settings (the
    /// feature's width aside, which the model and `config` fix together).
    pub fn fits(&self, fingerprint: &str, config: &MoseConfig) -> bool {
        self.fingerprint == fingerprint
            && self.recipe == BackgroundRecipe::of(config, self.recipe.feature_width)
    }

    /// Features they count (whole texts and prefixes).
    pub fn count(&self) -> f64 {
        self.stats.count
    }

    /// The file's bytes.
    ///
    /// # Errors
    /// [`MoseError::NotABackground`] if safetensors cannot write them.
    pub fn to_bytes(&self) -> Result<Vec<u8>, MoseError> {
        let d = self.recipe.feature_width;
        let as_f32 = |values: &[f64]| values.iter().map(|&v| v as f32).collect();
        let tensors = [
            ("mean".to_string(), vec![d], as_f32(&self.stats.mean)),
            (
                "scatter".to_string(),
                vec![d, d],
                as_f32(&self.stats.scatter),
            ),
        ];
        let description = Description {
            format_version: BACKGROUND_FORMAT_VERSION,
            fingerprint: self.fingerprint.clone(),
            recipe: self.recipe.clone(),
            count: self.stats.count,
        };
        saved::write(&tensors, BACKGROUND_KEY, &description)
            .map_err(|reason| MoseError::NotABackground { reason })
    }

    /// Reads a file written by [`to_bytes`](Self::to_bytes).
    ///
    /// # Errors
    /// [`MoseError::NotABackground`] for anything else, a newer version or a
    /// damaged file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MoseError> {
        let not = |reason: String| MoseError::NotABackground { reason };
        let description: Description = saved::read_description(
            bytes,
            BACKGROUND_KEY,
            BACKGROUND_FORMAT_VERSION..=BACKGROUND_FORMAT_VERSION,
        )
        .map_err(|e| match e {
            ReadError::NotSafetensors(reason) | ReadError::Json(reason) => not(reason),
            ReadError::NoDescription => not("it has no MoSE Lab description".into()),
            ReadError::Version(found) => not(format!(
                "format version {found:?}, this build reads {BACKGROUND_FORMAT_VERSION}"
            )),
        })?;
        let file = safetensors::SafeTensors::deserialize(bytes).map_err(|e| not(e.to_string()))?;
        let d = description.recipe.feature_width;
        let values = |name: &str, shape: &[usize]| -> Result<Vec<f64>, MoseError> {
            match saved::f32_tensor(&file, name, shape) {
                Ok(values) => Ok(values.into_iter().map(f64::from).collect()),
                Err(TensorError::Missing) => Err(not(format!("it has no tensor {name}"))),
                Err(TensorError::Mismatch(found)) => Err(not(format!(
                    "tensor {name} is not f32 of shape {shape:?} (found {found:?})"
                ))),
            }
        };
        let stats = TaskStats {
            count: description.count,
            mean: values("mean", &[d])?,
            scatter: values("scatter", &[d, d])?,
            range: 1.0,
        };
        Ok(Self::new(
            &description.fingerprint,
            description.recipe,
            stats,
        ))
    }
}
