//! The frozen base model: a Llama-family decoder with Hugging Face's names and
//! conventions (docs/METHOD.md, "Base model").
//!
//! `x = x + Attn(RMSNorm(x))`, `x = x + MLP(RMSNorm(x))` per layer; grouped-query
//! attention with rotary embeddings in HF's rotate-half layout; a SwiGLU MLP;
//! a final RMSNorm and an LM head tied to the embedding when the config says so.
//!
//! Checked against `transformers`' `LlamaForCausalLM` (5.23, eager attention)
//! on tiny random models: logits, loss, gradients and KV-cache decoding agree
//! within 1e-4 (tests/model.rs natively, tests/web.rs in the browser; fixtures
//! from scripts/make-fixtures.sh).
//! The layout follows candle's `llama.rs`: the config, the modules, their
//! forward passes.

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::activation::{log_softmax, silu};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::LlamaConfig;

impl LlamaConfig {
    /// A model with random weights (normal, std `initializer_range`; norms at 1),
    /// as transformers initialises one.
    pub fn init(&self, device: &Device) -> Llama {
        let init = burn::nn::Initializer::Normal {
            mean: 0.0,
            std: self.initializer_range,
        };
        let linear = |d_in: usize, d_out: usize| {
            LinearConfig::new(d_in, d_out)
                .with_bias(false)
                .with_initializer(init.clone())
                .init(device)
        };
        let norm = || {
            RmsNormConfig::new(self.hidden_size)
                .with_epsilon(self.rms_norm_eps)
                .init(device)
        };
        let (d, hd) = (self.hidden_size, self.head_width());
        let layers = (0..self.num_hidden_layers)
            .map(|_| DecoderLayer {
                self_attn: Attention {
                    q_proj: linear(d, self.num_attention_heads * hd),
                    k_proj: linear(d, self.kv_heads() * hd),
                    v_proj: linear(d, self.kv_heads() * hd),
                    o_proj: linear(self.num_attention_heads * hd, d),
                    n_heads: self.num_attention_heads,
                    n_kv_heads: self.kv_heads(),
                    head_dim: hd,
                },
                mlp: Mlp {
                    gate_proj: linear(d, self.intermediate_size),
                    up_proj: linear(d, self.intermediate_size),
                    down_proj: linear(self.intermediate_size, d),
                },
                input_layernorm: norm(),
                post_attention_layernorm: norm(),
            })
            .collect();
        Llama {
            embed_tokens: EmbeddingConfig::new(self.vocab_size, d)
                .with_initializer(init.clone())
                .init(device),
            layers,
            norm: norm(),
            lm_head: (!self.tie_word_embeddings).then(|| linear(d, self.vocab_size)),
            config: self.clone(),
        }
    }
}

/// A projection inside a decoder layer where an adapter may add its path
/// (docs/METHOD.md, "Sub-experts": the sites).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Site {
    /// `self_attn.q_proj`
    Q,
    /// `self_attn.k_proj`
    K,
    /// `self_attn.v_proj`
    V,
    /// `self_attn.o_proj`
    O,
    /// `mlp.gate_proj`
    Gate,
    /// `mlp.up_proj`
    Up,
    /// `mlp.down_proj`
    Down,
}

impl Site {
    /// Every projection of a decoder layer.
    pub const ALL: [Site; 7] = [
        Site::Q,
        Site::K,
        Site::V,
        Site::O,
        Site::Gate,
        Site::Up,
        Site::Down,
    ];

    /// The projection's name inside a layer, as in Hugging Face checkpoints.
    pub fn hf_name(self) -> &'static str {
        match self {
            Site::Q => "self_attn.q_proj",
            Site::K => "self_attn.k_proj",
            Site::V => "self_attn.v_proj",
            Site::O => "self_attn.o_proj",
            Site::Gate => "mlp.gate_proj",
            Site::Up => "mlp.up_proj",
            Site::Down => "mlp.down_proj",
        }
    }

    /// `(d_in, d_out)` of this projection in a model of `config`.
    pub fn dims(self, config: &LlamaConfig) -> (usize, usize) {
        let d = config.hidden_size;
        let q = config.num_attention_heads * config.head_width();
        let kv = config.kv_heads() * config.head_width();
        let ffn = config.intermediate_size;
        match self {
            Site::Q => (d, q),
            Site::K | Site::V => (d, kv),
            Site::O => (q, d),
            Site::Gate | Site::Up => (d, ffn),
            Site::Down => (ffn, d),
        }
    }
}

/// A parallel path beside the frozen projections: the model calls it at every
/// site with the projection's input and frozen output, and uses what it returns.
/// Runtime state (routing weights) lives in the adapter value passed to
/// forward, as the KV cache does; the base weights are never changed.
pub trait Adapter {
    /// The output of `site` in layer `layer`, where `wx` is the frozen `W x`.
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_in]`, wx: `[batch, seq, d_out]` -> `[batch, seq, d_out]`
    fn project(&self, layer: usize, site: Site, x: Tensor<3>, wx: Tensor<3>) -> Tensor<3>;

    /// The adapter folded into the frozen weight of `site` in `layer`: a
    /// `W'` with `x W' = project(x, x W)` for every token of every sequence.
    /// `None` where no such single matrix exists (weights that change per
    /// token or per batch row); generation then keeps the adapter beside the
    /// frozen weights. The default merges nothing.
    ///
    /// # Shapes
    /// - weight: `[d_in, d_out]` (burn's layout) -> `[d_in, d_out]`
    fn merge(&self, layer: usize, site: Site, weight: Tensor<2>) -> Option<Tensor<2>> {
        let _ = (layer, site, weight);
        None
    }
}

/// No adapter: every projection is the frozen base's.
#[derive(Debug, Clone, Copy, Default)]
pub struct Frozen;

impl Adapter for Frozen {
    fn project(&self, _layer: usize, _site: Site, _x: Tensor<3>, wx: Tensor<3>) -> Tensor<3> {
        wx
    }

    fn merge(&self, _layer: usize, _site: Site, weight: Tensor<2>) -> Option<Tensor<2>> {
        Some(weight)
    }
}

/// Rotary position embedding in HF's rotate-half layout: the first and second
/// halves of a head are the two coordinates of each rotated pair. (llama.cpp
/// interleaves the pairs instead, which is why GGUF import permutes q and k.)
/// Built once per forward pass and shared by every layer.
#[derive(Debug, Clone)]
struct RopeTables {
    /// `[1, 1, seq, head_dim]`
    cos: Tensor<4>,
    /// `[1, 1, seq, head_dim]`
    sin: Tensor<4>,
}

impl RopeTables {
    /// The angles of positions `start..start + len`.
    ///
    /// Computed in f32 the way transformers does (inverse frequencies and
    /// angles in f32), so long positions round as the reference rounds.
    fn new(theta: f64, head_dim: usize, start: usize, len: usize, device: &Device) -> Self {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(len * head_dim);
        let mut sin = Vec::with_capacity(len * head_dim);
        for pos in start..start + len {
            // `cat(freqs, freqs)`: both halves of a head use the same angles.
            for _ in 0..2 {
                for f in &inv_freq {
                    let angle = (pos as f32 * f) as f64;
                    cos.push(angle.cos() as f32);
                    sin.push(angle.sin() as f32);
                }
            }
        }
        let shape = [1, 1, len, head_dim];
        Self {
            cos: Tensor::from_data(TensorData::new(cos, shape), device),
            sin: Tensor::from_data(TensorData::new(sin, shape), device),
        }
    }

    /// `x * cos + rotate_half(x) * sin`.
    ///
    /// # Shapes
    /// - x: `[batch, heads, seq, head_dim]` -> same
    fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, t, hd] = x.dims();
        let x1 = x.clone().slice([0..b, 0..h, 0..t, 0..hd / 2]);
        let x2 = x.clone().slice([0..b, 0..h, 0..t, hd / 2..hd]);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3); // rotate_half(x)
        x * self.cos.clone() + rotated * self.sin.clone()
    }
}

/// Keys and values of the tokens seen so far, one entry per layer, so that
/// decoding a token costs one position instead of the whole sequence.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    len: usize,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Positions already in the cache.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first forward pass.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one layer's new keys and values and returns the whole history.
    ///
    /// # Shapes
    /// - k, v: `[batch, kv_heads, new, head_dim]` -> `[batch, kv_heads, len + new, head_dim]`
    fn extend(&mut self, layer: usize, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        if self.layers.len() <= layer {
            self.layers.resize(layer + 1, None);
        }
        let (k, v) = match self.layers[layer].take() {
            Some((k0, v0)) => (Tensor::cat(vec![k0, k], 2), Tensor::cat(vec![v0, v], 2)),
            None => (k, v),
        };
        self.layers[layer] = Some((k.clone(), v.clone()));
        (k, v)
    }
}

/// Grouped-query self-attention without biases.
#[derive(Module, Debug)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
}

/// `linear(x)` as the adapter changes it at `site` of `layer`.
fn project(
    adapter: &dyn Adapter,
    layer: usize,
    site: Site,
    linear: &Linear,
    x: Tensor<3>,
) -> Tensor<3> {
    adapter.project(layer, site, x.clone(), linear.forward(x))
}

impl Attention {
    /// # Shapes
    /// - x: `[batch, seq, hidden]` -> `[batch, seq, hidden]`
    fn forward(
        &self,
        x: Tensor<3>,
        rope: &RopeTables,
        cache: Option<&mut KvCache>,
        (layer, adapter): (usize, &dyn Adapter),
    ) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (h, kvh, hd) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let proj = |site, linear, x| project(adapter, layer, site, linear, x);
        let q = proj(Site::Q, &self.q_proj, x.clone())
            .reshape([b, t, h, hd])
            .swap_dims(1, 2); // [b, h, t, hd]
        let k = proj(Site::K, &self.k_proj, x.clone())
            .reshape([b, t, kvh, hd])
            .swap_dims(1, 2); // [b, kvh, t, hd]
        let v = proj(Site::V, &self.v_proj, x)
            .reshape([b, t, kvh, hd])
            .swap_dims(1, 2); // [b, kvh, t, hd]

        let q = rope.apply(q);
        let k = rope.apply(k);
        let (k, v) = match cache {
            Some(cache) => cache.extend(layer, k, v), // [b, kvh, start + t, hd]
            None => (k, v),
        };

        // Each key/value head serves `h / kvh` consecutive query heads (HF's repeat_kv).
        let k = repeat_kv(k, h / kvh); // [b, h, s, hd]
        let v = repeat_kv(v, h / kvh);
        // Causal with the diagonal at the bottom right: query i sees keys up to start + i.
        let options = AttentionModuleOptions {
            is_causal: true,
            ..Default::default()
        };
        let y = attention(q, k, v, None, None, options); // [b, h, t, hd]
        let y = y.swap_dims(1, 2).reshape([b, t, h * hd]);
        proj(Site::O, &self.o_proj, y)
    }
}

/// # Shapes
/// - x: `[batch, kv_heads, seq, head_dim]` -> `[batch, kv_heads * times, seq, head_dim]`
fn repeat_kv(x: Tensor<4>, times: usize) -> Tensor<4> {
    if times == 1 {
        return x;
    }
    let [b, kvh, s, hd] = x.dims();
    x.unsqueeze_dim::<5>(2) // [b, kvh, 1, s, hd]
        .repeat_dim(2, times) // [b, kvh, times, s, hd]
        .reshape([b, kvh * times, s, hd])
}

/// SwiGLU: `down(silu(gate(x)) * up(x))`.
#[derive(Module, Debug)]
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    /// # Shapes
    /// - x: `[batch, seq, hidden]` -> `[batch, seq, hidden]`
    fn forward(&self, x: Tensor<3>, (layer, adapter): (usize, &dyn Adapter)) -> Tensor<3> {
        let proj = |site, linear, x| project(adapter, layer, site, linear, x);
        let gate = silu(proj(Site::Gate, &self.gate_proj, x.clone()));
        proj(
            Site::Down,
            &self.down_proj,
            gate * proj(Site::Up, &self.up_proj, x),
        )
    }
}

/// One pre-norm decoder block.
#[derive(Module, Debug)]
struct DecoderLayer {
    self_attn: Attention,
    mlp: Mlp,
    input_layernorm: RmsNorm,
    post_attention_layernorm: RmsNorm,
}

/// A layer's seven projections, by site.
fn projections<'a>(attn: &'a mut Attention, mlp: &'a mut Mlp) -> [(Site, &'a mut Linear); 7] {
    [
        (Site::Q, &mut attn.q_proj),
        (Site::K, &mut attn.k_proj),
        (Site::V, &mut attn.v_proj),
        (Site::O, &mut attn.o_proj),
        (Site::Gate, &mut mlp.gate_proj),
        (Site::Up, &mut mlp.up_proj),
        (Site::Down, &mut mlp.down_proj),
    ]
}

impl DecoderLayer {
    /// # Shapes
    /// - x: `[batch, seq, hidden]` -> `[batch, seq, hidden]`
    fn forward(
        &self,
        x: Tensor<3>,
        rope: &RopeTables,
        cache: Option<&mut KvCache>,
        adapter: (usize, &dyn Adapter),
    ) -> Tensor<3> {
        let normed = self.input_layernorm.forward(x.clone());
        let h = x + self.self_attn.forward(normed, rope, cache, adapter);
        h.clone()
            + self
                .mlp
                .forward(self.post_attention_layernorm.forward(h), adapter)
    }
}

/// The Llama model: embedding, decoder layers, final norm, LM head.
#[derive(Module, Debug)]
pub struct Llama {
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    /// `None` when the head is tied to `embed_tokens`.
    lm_head: Option<Linear>,
    #[module(skip)]
    config: LlamaConfig,
}

impl Llama {
    /// The config this model was built from.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// A copy of the model with `adapter` folded into its weights
    /// ([`Adapter::merge`] at every projection), so that the frozen forward
    /// pass of the copy computes what the adapted pass of `self` does, at the
    /// base model's cost. Unchanged weights are shared, not copied. `None`
    /// when some site cannot be merged.
    pub fn merged(&self, adapter: &dyn Adapter) -> Option<Llama> {
        let mut model = self.clone();
        for (i, layer) in model.layers.iter_mut().enumerate() {
            for (site, linear) in projections(&mut layer.self_attn, &mut layer.mlp) {
                let weight = adapter.merge(i, site, linear.weight.val())?;
                linear.weight = Param::from_tensor(weight);
            }
        }
        Some(model)
    }

    /// Next-token logits for every position, without a cache.
    ///
    /// # Shapes
    /// - tokens: `[batch, seq]` -> logits `[batch, seq, vocab]`
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        self.forward_adapted(tokens, &Frozen)
    }

    /// [`forward`](Self::forward) with `adapter` beside the frozen projections.
    ///
    /// # Shapes
    /// - tokens: `[batch, seq]` -> logits `[batch, seq, vocab]`
    pub fn forward_adapted(&self, tokens: Tensor<2, Int>, adapter: &dyn Adapter) -> Tensor<3> {
        let x = self.layers_forward(tokens, 0, None, self.layers.len(), adapter);
        self.logits(self.norm.forward(x))
    }

    /// Next-token logits for `tokens`, which continue the sequence in `cache`;
    /// their keys and values are appended to it.
    ///
    /// # Shapes
    /// - tokens: `[batch, new]` -> logits `[batch, new, vocab]`
    pub fn forward_cached(&self, tokens: Tensor<2, Int>, cache: &mut KvCache) -> Tensor<3> {
        self.forward_cached_adapted(tokens, cache, &Frozen)
    }

    /// [`forward_cached`](Self::forward_cached) with `adapter` beside the
    /// frozen projections. The cache must have been filled with the same adapter.
    ///
    /// # Shapes
    /// - tokens: `[batch, new]` -> logits `[batch, new, vocab]`
    pub fn forward_cached_adapted(
        &self,
        tokens: Tensor<2, Int>,
        cache: &mut KvCache,
        adapter: &dyn Adapter,
    ) -> Tensor<3> {
        let start = cache.len;
        let [_, t] = tokens.dims();
        let x = self.layers_forward(tokens, start, Some(cache), self.layers.len(), adapter);
        cache.len = start + t;
        self.logits(self.norm.forward(x))
    }

    /// The frozen model's hidden state after decoder layer `layer` (0-based;
    /// before the final norm), for the router's query feature (docs/METHOD.md,
    /// "Query feature"). Only layers `0..=layer` run.
    ///
    /// # Shapes
    /// - tokens: `[batch, seq]` -> `[batch, seq, hidden]`
    pub fn hidden_after(&self, tokens: Tensor<2, Int>, layer: usize) -> Tensor<3> {
        assert!(
            layer < self.layers.len(),
            "layer {layer} out of range for a model of {} layers",
            self.layers.len()
        );
        self.layers_forward(tokens, 0, None, layer + 1, &Frozen)
    }

    /// The frozen model's hidden state after every decoder layer (before the
    /// final norm), from one pass: the router's multi-layer feature (docs/METHOD.md,
    /// "Query feature").
    ///
    /// # Shapes
    /// - tokens: `[batch, seq]` -> one `[batch, seq, hidden]` per layer
    pub fn layer_outputs(&self, tokens: Tensor<2, Int>) -> Vec<Tensor<3>> {
        let [_, t] = tokens.dims();
        let (theta, head_dim) = (self.config.rope_base(), self.config.head_width());
        let rope = RopeTables::new(theta, head_dim, 0, t, &tokens.device());
        let mut x = self.embed_tokens.forward(tokens); // [b, t, d]
        let mut outputs = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, &rope, None, (i, &Frozen));
            outputs.push(x.clone());
        }
        outputs
    }

    /// The embedding, then the first `n_layers` decoder layers.
    fn layers_forward(
        &self,
        tokens: Tensor<2, Int>,
        start: usize,
        mut cache: Option<&mut KvCache>,
        n_layers: usize,
        adapter: &dyn Adapter,
    ) -> Tensor<3> {
        let [_, t] = tokens.dims();
        let (theta, head_dim) = (self.config.rope_base(), self.config.head_width());
        let rope = RopeTables::new(theta, head_dim, start, t, &tokens.device());
        let mut x = self.embed_tokens.forward(tokens); // [b, t, d]
        for (i, layer) in self.layers.iter().take(n_layers).enumerate() {
            x = layer.forward(x, &rope, cache.as_deref_mut(), (i, adapter));
        }
        x
    }

    fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(head) => head.forward(hidden),
            // Tied: logits = h E^T with E the [vocab, d] embedding. Computed as
            // (E h^T)^T so E is read in its stored order: multiplying by a
            // transposed view of it made a decode step 13x slower on the CPU.
            None => {
                let [b, t, d] = hidden.dims();
                let vocab = self.config.vocab_size;
                let h = hidden.reshape([b * t, d]);
                let e = self.embed_tokens.weight.val(); // [vocab, d]
                e.matmul(h.transpose()) // [vocab, b*t]
                    .transpose()
                    .reshape([b, t, vocab])
            }
        }
    }

    /// Every parameter under its Hugging Face name, for loading, saving and
    /// reading gradients. Linear weights are held in burn's `[in, out]`
    /// layout ([`HfParam::Linear`]), the transpose of HF's `[out, in]`.
    pub fn hf_params_mut(&mut self) -> Vec<(String, HfParam<'_>)> {
        let mut out = vec![(
            "model.embed_tokens.weight".to_string(),
            HfParam::Matrix(&mut self.embed_tokens.weight),
        )];
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let linears = projections(&mut layer.self_attn, &mut layer.mlp);
            let norms = [
                ("input_layernorm", &mut layer.input_layernorm),
                (
                    "post_attention_layernorm",
                    &mut layer.post_attention_layernorm,
                ),
            ];
            let name = |site: &str| format!("model.layers.{i}.{site}.weight");
            out.extend(
                linears.map(|(site, l)| (name(site.hf_name()), HfParam::Linear(&mut l.weight))),
            );
            out.extend(norms.map(|(site, n)| (name(site), HfParam::Vector(&mut n.gamma))));
        }
        out.push((
            "model.norm.weight".to_string(),
            HfParam::Vector(&mut self.norm.gamma),
        ));
        if let Some(head) = self.lm_head.as_mut() {
            out.push((
                "lm_head.weight".to_string(),
                HfParam::Linear(&mut head.weight),
            ));
        }
        out
    }
}

/// A parameter as Hugging Face's weight files see it.
pub enum HfParam<'a> {
    /// A linear weight: HF stores `[out, in]`, burn holds `[in, out]`.
    Linear(&'a mut Param<Tensor<2>>),
    /// A matrix stored the same way in both (the embedding).
    Matrix(&'a mut Param<Tensor<2>>),
    /// A vector (norm weights).
    Vector(&'a mut Param<Tensor<1>>),
}

/// Negative log-likelihood of each next token: position `i` predicts token `i + 1`.
///
/// # Shapes
/// - logits: `[batch, seq, vocab]`, tokens: `[batch, seq]` -> `[batch, seq - 1]`
pub fn next_token_nll(logits: Tensor<3>, tokens: Tensor<2, Int>) -> Tensor<2> {
    let [b, t, v] = logits.dims();
    let predicted = logits.slice([0..b, 0..t - 1, 0..v]); // [b, t-1, v]
    let targets = tokens.slice([0..b, 1..t]).unsqueeze_dim::<3>(2); // [b, t-1, 1]
    let log_probs = log_softmax(predicted, 2);
    log_probs.gather(2, targets).squeeze_dim::<2>(2).neg()
}
