//! The model's config as Hugging Face writes it (`config.json`,
//! transformers' `LlamaConfig`), with the checks that decide whether this
//! crate can run it.

use serde::{Deserialize, Serialize};

use super::{ModelError, Site};

/// The model's shape, read and written as Hugging Face's `config.json`
/// (`LlamaConfig`). Fields this crate does not use are kept as they were, so
/// a config survives a round trip unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Tokens in the vocabulary (rows of the embedding).
    pub vocab_size: usize,
    /// Width of the residual stream, `d`.
    pub hidden_size: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate_size: usize,
    /// Decoder layers, `L`.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention); `None` means one per query head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    /// Width of one head; `None` means `hidden_size / num_attention_heads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    /// Longest sequence the model was trained for.
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    /// Rotary base, as transformers 4 writes it (transformers 5 writes
    /// [`rope_parameters`](Self::rope_parameters) instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    /// Rotary settings as transformers 5 writes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<RopeParameters>,
    /// Rotary scaling (transformers 4); only `null` is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<serde_json::Value>,
    /// Whether the LM head shares the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// The MLP's activation; only `silu` (SwiGLU) is supported.
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    /// Biases on q, k, v, o; only `false` is supported.
    #[serde(default)]
    pub attention_bias: bool,
    /// Biases in the MLP; only `false` is supported.
    #[serde(default)]
    pub mlp_bias: bool,
    /// Beginning-of-sequence token, when the checkpoint names one.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token(s): HF allows one id or a list.
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    /// Padding token, when the checkpoint names one.
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// Standard deviation of the random initialisation (training from scratch).
    #[serde(default = "default_initializer_range")]
    pub initializer_range: f64,
    /// Every other field of the file (`model_type`, `architectures`, `dtype`, ...).
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// Work of one forward pass by part, in floating-point operations
/// ([`LlamaConfig::forward_flops`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForwardFlops {
    /// The seven projections of every decoder layer.
    pub projections: f64,
    /// Attention scores and weighted values (causal).
    pub attention: f64,
    /// The LM head.
    pub head: f64,
}

impl ForwardFlops {
    /// The whole forward pass.
    pub fn total(&self) -> f64 {
        self.projections + self.attention + self.head
    }
}

/// transformers 5's `rope_parameters` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeParameters {
    /// `default` is the only rotary type supported.
    #[serde(default = "default_rope_type")]
    pub rope_type: String,
    /// The rotary base.
    pub rope_theta: f64,
    /// Every other field, kept for the round trip.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// One token id or several, as HF writes `eos_token_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// A single id.
    One(u32),
    /// Several ids, any of which ends a sequence.
    Many(Vec<u32>),
}

impl TokenIds {
    /// The ids as a list.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

fn default_max_positions() -> usize {
    2048
}
fn default_rms_norm_eps() -> f64 {
    1e-6
}
fn default_hidden_act() -> String {
    "silu".to_string()
}
fn default_initializer_range() -> f64 {
    0.02
}
fn default_rope_type() -> String {
    "default".to_string()
}

/// transformers' default rotary base, used when a config names none.
const DEFAULT_ROPE_THETA: f64 = 10_000.0;

impl LlamaConfig {
    /// A config for a model trained from scratch; every other field takes
    /// HF's default.
    pub fn new(
        vocab_size: usize,
        hidden_size: usize,
        intermediate_size: usize,
        num_hidden_layers: usize,
        num_attention_heads: usize,
        num_key_value_heads: usize,
    ) -> Self {
        let mut other = serde_json::Map::new();
        other.insert("model_type".into(), "llama".into());
        other.insert(
            "architectures".into(),
            serde_json::json!(["LlamaForCausalLM"]),
        );
        Self {
            vocab_size,
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads: Some(num_key_value_heads),
            head_dim: None,
            max_position_embeddings: default_max_positions(),
            rms_norm_eps: default_rms_norm_eps(),
            rope_theta: Some(DEFAULT_ROPE_THETA),
            rope_parameters: None,
            rope_scaling: None,
            tie_word_embeddings: true,
            hidden_act: default_hidden_act(),
            attention_bias: false,
            mlp_bias: false,
            bos_token_id: None,
            eos_token_id: None,
            pad_token_id: None,
            initializer_range: default_initializer_range(),
            other,
        }
    }

    /// Reads `config.json` and checks that this crate can run it.
    ///
    /// # Errors
    /// [`ModelError::ConfigJson`] for text that is not a Llama config,
    /// [`ModelError::UnsupportedConfig`] for one this model cannot compute.
    pub fn from_json(json: &str) -> Result<Self, ModelError> {
        let config: Self = serde_json::from_str(json).map_err(ModelError::ConfigJson)?;
        config.validate()?;
        Ok(config)
    }

    /// Writes `config.json` (pretty, as transformers does).
    pub fn to_json(&self) -> String {
        // A struct of plain fields and JSON values always serialises.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Width of one attention head.
    pub fn head_width(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// The rotary base, from whichever field the file used.
    pub fn rope_base(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .map(|p| p.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(DEFAULT_ROPE_THETA)
    }

    /// The floating-point operations of one forward pass over a sequence of
    /// `seq_len` tokens, counting the matrix products (a multiply-add is
    /// two); norms, rotary, softmax and activations add well under 1% here.
    pub fn forward_flops(&self, seq_len: usize) -> ForwardFlops {
        let t = seq_len as f64;
        let per_layer: usize = Site::ALL
            .iter()
            .map(|site| {
                let (d_in, d_out) = site.dims(self);
                d_in * d_out
            })
            .sum();
        let heads = (self.num_attention_heads * self.head_width()) as f64;
        ForwardFlops {
            projections: 2.0 * t * (per_layer * self.num_hidden_layers) as f64,
            // Scores and weighted values: query i meets i + 1 keys, causally.
            attention: self.num_hidden_layers as f64 * 2.0 * 2.0 * heads * t * (t + 1.0) / 2.0,
            head: 2.0 * t * (self.hidden_size * self.vocab_size) as f64,
        }
    }

    /// End-of-sequence ids named by the config.
    pub fn eos_ids(&self) -> Vec<u32> {
        self.eos_token_id
            .as_ref()
            .map(TokenIds::to_vec)
            .unwrap_or_default()
    }

    /// Checks every field this model depends on.
    ///
    /// # Errors
    /// [`ModelError::UnsupportedConfig`] naming the first field that does not fit.
    pub fn validate(&self) -> Result<(), ModelError> {
        let unsupported = |field: &str, value: String, reason: &str| {
            Err(ModelError::UnsupportedConfig {
                field: field.to_string(),
                value,
                reason: reason.to_string(),
            })
        };
        for (field, value) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.kv_heads()),
            ("head_dim", self.head_width()),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if value == 0 {
                return unsupported(field, "0".into(), "it must be at least 1");
            }
        }
        if !self.num_attention_heads.is_multiple_of(self.kv_heads()) {
            return unsupported(
                "num_key_value_heads",
                self.kv_heads().to_string(),
                "it must divide num_attention_heads",
            );
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return unsupported(
                "num_attention_heads",
                self.num_attention_heads.to_string(),
                "it must divide hidden_size when head_dim is not given",
            );
        }
        if !self.head_width().is_multiple_of(2) {
            return unsupported(
                "head_dim",
                self.head_width().to_string(),
                "rotary embeddings need an even head width",
            );
        }
        if self.hidden_act != "silu" {
            return unsupported(
                "hidden_act",
                self.hidden_act.clone(),
                "only silu is supported",
            );
        }
        if self.attention_bias || self.mlp_bias {
            return unsupported(
                "attention_bias/mlp_bias",
                "true".into(),
                "biases are not supported",
            );
        }
        if self.rms_norm_eps.is_nan() || self.rms_norm_eps <= 0.0 {
            return unsupported(
                "rms_norm_eps",
                self.rms_norm_eps.to_string(),
                "it must be positive",
            );
        }
        if self.rope_base().is_nan() || self.rope_base() <= 0.0 {
            return unsupported(
                "rope_theta",
                self.rope_base().to_string(),
                "it must be positive",
            );
        }
        if let Some(scaling) = self.rope_scaling.as_ref().filter(|s| !s.is_null()) {
            return unsupported(
                "rope_scaling",
                scaling.to_string(),
                "only plain rotary embeddings are supported",
            );
        }
        if let Some(p) = self
            .rope_parameters
            .as_ref()
            .filter(|p| p.rope_type != "default")
        {
            return unsupported(
                "rope_parameters.rope_type",
                p.rope_type.clone(),
                "only the default rotary type is supported",
            );
        }
        Ok(())
    }
}
