//! A Llama GGUF in Hugging Face form: config, un-permuted f32 weights and the rebuilt tokenizer.

use super::*;

/// Undoes llama.cpp's rotary permutation of the rows of a `[rows, cols]` row-major q or k
/// projection, with `n_head` heads (the key/value head count for k).
///
/// llama.cpp stored `w.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2)`, so the
/// stored row `h * head_dim + 2 * i + j` is the original row `h * head_dim + j * head_dim / 2 + i`.
pub fn unpermute_rows(data: &[f32], rows: usize, cols: usize, n_head: usize) -> Result<Vec<f32>> {
    let bad = || {
        corrupt(format!(
            "cannot un-permute {rows} rows for {n_head} heads: rows must be a multiple of 2 × heads"
        ))
    };
    if n_head == 0 || !rows.is_multiple_of(n_head) || !(rows / n_head).is_multiple_of(2) {
        return Err(bad());
    }
    if rows.checked_mul(cols) != Some(data.len()) {
        return Err(corrupt(format!(
            "cannot un-permute a tensor of {} values as {rows} × {cols}",
            data.len()
        )));
    }
    if cols == 0 {
        return Ok(Vec::new());
    }
    let head_dim = rows / n_head;
    let half = head_dim / 2;
    let mut out = vec![0.0f32; data.len()];
    let mut dst_rows = out.chunks_exact_mut(cols);
    for h in 0..n_head {
        for j in 0..2 {
            for i in 0..half {
                let src = (h * head_dim + 2 * i + j) * cols;
                let dst = dst_rows.next().ok_or_else(bad)?;
                let src = data.get(src..src + cols).ok_or_else(bad)?;
                dst.copy_from_slice(src);
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------------------------

/// `tokenizer.ggml.pre` values whose llama.cpp pre-tokenizer is "each digit alone, then the GPT-2
/// regex", which is Hugging Face's `Sequence[Digits(individual_digits), ByteLevel]`.
const DIGITS_THEN_GPT2: &[&str] = &[
    "smollm",
    "starcoder",
    "refact",
    "command-r",
    "codeshell",
    "exaone",
    "minerva",
];
const SUPPORTED_PRE: &str = "\"smollm\", \"starcoder\", \"refact\", \"command-r\", \
                             \"codeshell\", \"exaone\", \"minerva\", \"gpt2\"";

/// Rebuilds the Hugging Face tokenizer a GGUF file describes in its `tokenizer.ggml.*` metadata.
/// Only byte-level BPE (`tokenizer.ggml.model == "gpt2"`) is supported.
pub fn build_tokenizer(gguf: &Gguf<'_>) -> Result<tokenizers::Tokenizer> {
    use tokenizers::models::bpe::{BPE, Vocab};
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::digits::Digits;
    use tokenizers::pre_tokenizers::sequence::Sequence;
    use tokenizers::processors::template::{SpecialToken, TemplateProcessing};
    use tokenizers::{AddedToken, PreTokenizerWrapper, Tokenizer};

    let model = gguf.get_str("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(GgufError::UnsupportedTokenizer {
            key: "tokenizer.ggml.model",
            value: model.to_owned(),
            supported: "\"gpt2\" (byte-level BPE); sentencepiece (\"llama\") vocabularies are not supported yet",
        });
    }
    let pre_name = match gguf.get("tokenizer.ggml.pre") {
        None => "(missing)",
        Some(_) => gguf.get_str("tokenizer.ggml.pre")?,
    };
    let byte_level = ByteLevel::new(false, true, true);
    let pre: PreTokenizerWrapper = if DIGITS_THEN_GPT2.contains(&pre_name) {
        Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
    } else if pre_name == "gpt2" {
        byte_level.into()
    } else {
        // Note: llama.cpp's "default" is not plain GPT-2: it also splits punctuation and runs of
        // digits, which no Hugging Face pre-tokenizer here reproduces.
        return Err(GgufError::UnsupportedTokenizer {
            key: "tokenizer.ggml.pre",
            value: pre_name.to_owned(),
            supported: SUPPORTED_PRE,
        });
    };

    let tokens = gguf.get_str_array("tokenizer.ggml.tokens")?;
    let n_tokens = tokens.len();
    if n_tokens > u32::MAX as usize {
        return Err(too_large(
            "the vocabulary size",
            n_tokens as u64,
            u32::MAX.into(),
        ));
    }
    // A token listed twice keeps its last id, as in llama.cpp and transformers.
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let merges = gguf
        .get_str_array("tokenizer.ggml.merges")?
        .iter()
        .map(|m| {
            // As llama.cpp: split at the first space after the first character.
            let first = m.chars().next().map_or(0, char::len_utf8);
            let split = m
                .get(first..)
                .and_then(|rest| rest.find(' '))
                .map(|p| p + first);
            match split.and_then(|p| Some((m.get(..p)?, m.get(p + 1..)?))) {
                Some((a, b)) => Ok((a.to_owned(), b.to_owned())),
                None => Err(corrupt(format!(
                    "tokenizer merge \"{m}\" has no space separating its two parts"
                ))),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| GgufError::TokenizerBuild {
            message: e.to_string(),
        })?;

    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(pre));
    tokenizer.with_decoder(Some(ByteLevel::new(false, true, true)));

    let types = match gguf.get("tokenizer.ggml.token_type") {
        None => Vec::new(),
        Some(_) => gguf.get_int_array("tokenizer.ggml.token_type")?,
    };
    if !types.is_empty() && types.len() != n_tokens {
        return Err(corrupt(format!(
            "tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {n_tokens}",
            types.len()
        )));
    }
    let added = |kind: i64, special: bool| {
        tokens
            .iter()
            .zip(&types)
            .filter(move |&(_, &t)| t == kind)
            .map(move |(tok, _)| AddedToken::from(tok.clone(), special).normalized(false))
            .collect::<Vec<_>>()
    };
    let build_err = |e: tokenizers::Error| GgufError::TokenizerBuild {
        message: e.to_string(),
    };
    // 3 = CONTROL (special), 4 = USER_DEFINED (matched whole, not special).
    tokenizer
        .add_special_tokens(added(3, true))
        .map_err(build_err)?;
    tokenizer.add_tokens(added(4, false)).map_err(build_err)?;

    let add_bos = optional(gguf, "tokenizer.ggml.add_bos_token", Gguf::get_bool)?.unwrap_or(false);
    let add_eos = optional(gguf, "tokenizer.ggml.add_eos_token", Gguf::get_bool)?.unwrap_or(false);
    if add_bos || add_eos {
        let special = |key: &str, name: &str| -> Result<SpecialToken> {
            let id = token_id(gguf, key, n_tokens)?.ok_or_else(|| GgufError::MissingMetadata {
                key: key.to_owned(),
            })?;
            let content = tokens.get(id as usize).cloned().unwrap_or_default();
            SpecialToken::new(name.to_owned(), vec![id], vec![content]).map_err(build_err)
        };
        let mut specials = Vec::new();
        let (mut single, mut pair) = (Vec::new(), Vec::new());
        if add_bos {
            specials.push(special("tokenizer.ggml.bos_token_id", "bos")?);
            single.push("bos:0");
        }
        single.push("$A:0");
        if add_eos {
            specials.push(special("tokenizer.ggml.eos_token_id", "eos")?);
            single.push("eos:0");
        }
        pair.extend(single.iter().copied());
        if add_bos {
            pair.push("bos:1");
        }
        pair.push("$B:1");
        if add_eos {
            pair.push("eos:1");
        }
        let template_err = |e: String| GgufError::TokenizerBuild { message: e };
        let processor = TemplateProcessing::builder()
            .try_single(single)
            .map_err(template_err)?
            .try_pair(pair)
            .map_err(template_err)?
            .special_tokens(specials)
            .build()
            .map_err(|e| GgufError::TokenizerBuild {
                message: e.to_string(),
            })?;
        tokenizer.with_post_processor(Some(processor));
    }
    Ok(tokenizer)
}

fn optional<'g, 'a, T>(
    gguf: &'g Gguf<'a>,
    key: &str,
    get: impl Fn(&'g Gguf<'a>, &str) -> Result<T>,
) -> Result<Option<T>> {
    match gguf.get(key) {
        None => Ok(None),
        Some(_) => get(gguf, key).map(Some),
    }
}

/// A `tokenizer.ggml.*_token_id`, checked to be inside the vocabulary.
fn token_id(gguf: &Gguf<'_>, key: &str, n_tokens: usize) -> Result<Option<u32>> {
    let Some(id) = optional(gguf, key, Gguf::get_u64)? else {
        return Ok(None);
    };
    if id >= n_tokens as u64 {
        return Err(corrupt(format!(
            "{key} is {id}, outside the vocabulary of {n_tokens} tokens"
        )));
    }
    Ok(Some(id as u32))
}

// ---------------------------------------------------------------------------------------------
// Llama import
// ---------------------------------------------------------------------------------------------

/// One imported tensor, under its Hugging Face name, f32, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedTensor {
    /// Hugging Face name, such as `"model.layers.0.self_attn.q_proj.weight"`.
    pub name: String,
    /// Shape, Hugging Face order (`[out, in]` for linear weights).
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

/// One tensor of a Llama GGUF as the import will write it: where it is in
/// the file and what it becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTensor {
    /// llama.cpp's name in the file, such as `"blk.0.attn_q.weight"`.
    pub gguf_name: String,
    /// Hugging Face name, such as `"model.layers.0.self_attn.q_proj.weight"`.
    pub name: String,
    /// Shape, Hugging Face order (`[out, in]` for linear weights).
    pub shape: Vec<usize>,
    /// The heads whose rows llama.cpp permuted (q and k), to un-permute.
    unpermute_heads: Option<usize>,
}

impl PlannedTensor {
    /// De-quantises the tensor to f32 and un-permutes its rows where needed.
    ///
    /// # Errors
    /// The file's errors for this tensor (out of bounds, undecodable).
    pub fn read(&self, gguf: &Gguf<'_>) -> Result<Vec<f32>> {
        let (_, data) = gguf.tensor_f32(&self.gguf_name)?;
        match (self.unpermute_heads, self.shape.as_slice()) {
            (Some(heads), [rows, cols]) => unpermute_rows(&data, *rows, *cols, heads),
            _ => Ok(data),
        }
    }
}

/// A Llama GGUF's import, checked before any tensor is de-quantised: a
/// loader reads the tensors one at a time from it, so the whole model is
/// never in memory twice.
#[derive(Debug, Clone)]
pub struct LlamaPlan {
    /// The `config.json` object (transformers' `LlamaConfig` field names).
    pub config: serde_json::Value,
    /// The weights to read, Hugging Face names and shapes (no `lm_head.weight` when tied).
    pub tensors: Vec<PlannedTensor>,
    /// The `tokenizer.json` text.
    pub tokenizer_json: String,
    /// The chat template (`tokenizer.chat_template`), when the file has one.
    pub chat_template: Option<String>,
}

/// A Llama GGUF turned into Hugging Face form.
#[derive(Debug, Clone)]
pub struct ImportedLlama {
    /// The `config.json` object (transformers' `LlamaConfig` field names).
    pub config: serde_json::Value,
    /// The weights, f32, Hugging Face names and shapes (no `lm_head.weight` when tied).
    pub tensors: Vec<ImportedTensor>,
    /// The `tokenizer.json` text; it loads with `tokenizers::Tokenizer::from_str`.
    pub tokenizer_json: String,
    /// The chat template (`tokenizer.chat_template`, a Jinja template), when the file has one.
    pub chat_template: Option<String>,
}

impl ImportedLlama {
    /// The tensor with Hugging Face name `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&ImportedTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The bytes of a `model.safetensors` file holding every tensor as f32.
    pub fn safetensors_bytes(&self) -> Result<Vec<u8>> {
        let views = self.tensors.iter().map(|t| {
            let view = crate::model::weights::F32View {
                shape: &t.shape,
                values: &t.data,
            };
            (t.name.as_str(), view)
        });
        safetensors::serialize(views, None).map_err(|e| GgufError::Safetensors {
            message: e.to_string(),
        })
    }
}

/// `f32` metadata as the `f64` with the shortest decimal spelling of the same f32, so that an
/// epsilon stored as f32 `1e-5` reads `1e-05` in the config, as in the original `config.json`.
fn f32_to_json(v: f32) -> serde_json::Value {
    let decimal: f64 = format!("{v}").parse().unwrap_or(f64::from(v));
    serde_json::Number::from_f64(decimal).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

fn get_float_as_f32(gguf: &Gguf<'_>, key: &str) -> Result<f32> {
    // Every llama.cpp export writes these as float32; a float64 is narrowed the same way.
    gguf.get_f64(key).map(|v| v as f32)
}

/// Imports a Llama-architecture GGUF file: config, f32 weights under Hugging Face names with
/// q/k un-permuted, and the tokenizer.
pub fn import_llama(bytes: &[u8]) -> Result<ImportedLlama> {
    import_llama_from(&Gguf::parse(bytes)?)
}

/// As [`import_llama`], from an already parsed file.
pub fn import_llama_from(gguf: &Gguf<'_>) -> Result<ImportedLlama> {
    let plan = plan_llama(gguf)?;
    let tensors = plan
        .tensors
        .iter()
        .map(|t| {
            Ok(ImportedTensor {
                name: t.name.clone(),
                shape: t.shape.clone(),
                data: t.read(gguf)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ImportedLlama {
        config: plan.config,
        tensors,
        tokenizer_json: plan.tokenizer_json,
        chat_template: plan.chat_template,
    })
}

/// Checks a Llama-architecture GGUF file and plans its import: the config,
/// the tokenizer, and each tensor's name, shape and source, every shape and
/// type checked; nothing is de-quantised yet.
pub fn plan_llama(gguf: &Gguf<'_>) -> Result<LlamaPlan> {
    let architecture = gguf.get_str("general.architecture")?;
    if architecture != "llama" {
        return Err(GgufError::UnsupportedArchitecture {
            architecture: architecture.to_owned(),
        });
    }
    let usize_key = |key: &str| gguf.get_u64(key).and_then(|v| to_usize(v, key));
    let opt_usize = |key: &str| {
        optional(gguf, key, Gguf::get_u64)?
            .map(|v| to_usize(v, key))
            .transpose()
    };
    let unsupported = |feature: String| Err(GgufError::Unsupported { feature });

    let hidden = usize_key("llama.embedding_length")?;
    let n_layers = usize_key("llama.block_count")?;
    let n_head = usize_key("llama.attention.head_count")?;
    let n_kv_head = opt_usize("llama.attention.head_count_kv")?.unwrap_or(n_head);
    let ffn = usize_key("llama.feed_forward_length")?;
    let context = usize_key("llama.context_length")?;
    let eps = get_float_as_f32(gguf, "llama.attention.layer_norm_rms_epsilon")?;
    let rope_theta = match gguf.get("llama.rope.freq_base") {
        None => 10_000.0,
        Some(_) => get_float_as_f32(gguf, "llama.rope.freq_base")?,
    };
    if n_head == 0 || n_kv_head == 0 || hidden == 0 || n_head % n_kv_head != 0 {
        return Err(corrupt(format!(
            "the model has {n_head} attention heads, {n_kv_head} key/value heads and width {hidden}"
        )));
    }
    let head_dim = match opt_usize("llama.attention.key_length")? {
        Some(d) => d,
        None if hidden % n_head == 0 => hidden / n_head,
        None => {
            return unsupported(format!(
                "a width of {hidden} not divisible by its {n_head} heads"
            ));
        }
    };
    if head_dim == 0 || head_dim % 2 != 0 {
        return unsupported(format!(
            "a head size of {head_dim} (it must be even for rotary embeddings)"
        ));
    }
    if let Some(v) = opt_usize("llama.attention.value_length")?
        && v != head_dim
    {
        return unsupported(format!(
            "llama.attention.value_length = {v}, unlike key_length {head_dim}"
        ));
    }
    if let Some(rot) = opt_usize("llama.rope.dimension_count")?
        && rot != head_dim
    {
        return unsupported(format!(
            "partial rotary embeddings (llama.rope.dimension_count = {rot}, head size {head_dim})"
        ));
    }
    if let Some(kind) = optional(gguf, "llama.rope.scaling.type", Gguf::get_str)?
        && kind != "none"
    {
        return unsupported(format!(
            "rope scaling (llama.rope.scaling.type = \"{kind}\")"
        ));
    }
    if let Some(scale) = optional(gguf, "llama.rope.scale_linear", Gguf::get_f64)?
        && scale != 1.0
    {
        return unsupported(format!(
            "linear rope scaling (llama.rope.scale_linear = {scale})"
        ));
    }
    if let Some(experts) = opt_usize("llama.expert_count")?
        && experts > 0
    {
        return unsupported(format!(
            "a mixture of experts (llama.expert_count = {experts})"
        ));
    }

    // Hugging Face shapes; the vocabulary size is the embedding's.
    let embd = gguf.require_tensor("token_embd.weight")?.shape();
    let vocab = match embd.as_slice() {
        [v, h] if *h == hidden => *v,
        _ => {
            return Err(GgufError::ShapeMismatch {
                name: "token_embd.weight".into(),
                expected: vec![embd.first().copied().unwrap_or(0), hidden],
                found: embd,
            });
        }
    };
    if let Some(v) = opt_usize("llama.vocab_size")?
        && v != vocab
    {
        return Err(corrupt(format!(
            "llama.vocab_size is {v} but token_embd.weight has {vocab} rows"
        )));
    }
    let tied = gguf.tensor_info("output.weight").is_none();
    if n_layers > gguf.tensors().len() {
        // A corrupt block count: name the first missing block instead of planning billions.
        let missing = (0..=gguf.tensors().len())
            .map(|l| format!("blk.{l}.attn_norm.weight"))
            .find(|name| gguf.tensor_info(name).is_none())
            .unwrap_or_default();
        return Err(GgufError::MissingTensor { name: missing });
    }
    let q_rows = n_head
        .checked_mul(head_dim)
        .ok_or_else(|| too_large("heads × head size", u64::MAX, usize::MAX as u64))?;
    let kv_rows = n_kv_head
        .checked_mul(head_dim)
        .ok_or_else(|| too_large("heads × head size", u64::MAX, usize::MAX as u64))?;

    // (gguf name, hf name, shape, heads to un-permute with)
    let mut plan: Vec<(String, String, Vec<usize>, Option<usize>)> = Vec::new();
    plan.push((
        "token_embd.weight".into(),
        "model.embed_tokens.weight".into(),
        vec![vocab, hidden],
        None,
    ));
    for l in 0..n_layers {
        let g = |s: &str| format!("blk.{l}.{s}.weight");
        let h = |s: &str| format!("model.layers.{l}.{s}.weight");
        plan.push((g("attn_norm"), h("input_layernorm"), vec![hidden], None));
        plan.push((
            g("attn_q"),
            h("self_attn.q_proj"),
            vec![q_rows, hidden],
            Some(n_head),
        ));
        plan.push((
            g("attn_k"),
            h("self_attn.k_proj"),
            vec![kv_rows, hidden],
            Some(n_kv_head),
        ));
        plan.push((
            g("attn_v"),
            h("self_attn.v_proj"),
            vec![kv_rows, hidden],
            None,
        ));
        plan.push((
            g("attn_output"),
            h("self_attn.o_proj"),
            vec![hidden, q_rows],
            None,
        ));
        plan.push((
            g("ffn_norm"),
            h("post_attention_layernorm"),
            vec![hidden],
            None,
        ));
        plan.push((g("ffn_gate"), h("mlp.gate_proj"), vec![ffn, hidden], None));
        plan.push((g("ffn_up"), h("mlp.up_proj"), vec![ffn, hidden], None));
        plan.push((g("ffn_down"), h("mlp.down_proj"), vec![hidden, ffn], None));
    }
    plan.push((
        "output_norm.weight".into(),
        "model.norm.weight".into(),
        vec![hidden],
        None,
    ));
    if !tied {
        plan.push((
            "output.weight".into(),
            "lm_head.weight".into(),
            vec![vocab, hidden],
            None,
        ));
    }

    // Every tensor in the file must be one we use: anything else (biases, rope_freqs for
    // Llama 3.1 rope scaling, experts) would be silently dropped otherwise.
    let used: HashSet<&str> = plan.iter().map(|(g, ..)| g.as_str()).collect();
    if let Some(extra) = gguf
        .tensors()
        .iter()
        .find(|t| !used.contains(t.name.as_str()))
    {
        return if extra.name == "rope_freqs.weight" {
            unsupported("Llama 3.1-style rope scaling (tensor \"rope_freqs.weight\")".into())
        } else {
            unsupported(format!(
                "tensor \"{}\", which a plain Llama model does not have",
                extra.name
            ))
        };
    }
    // Check every shape and type before dequantising anything.
    for (g, _, shape, _) in &plan {
        let info = gguf.require_tensor(g)?;
        if !info.ggml_type.is_supported() {
            return Err(GgufError::UnsupportedTensorType {
                name: g.clone(),
                ggml_type: info.ggml_type.name(),
            });
        }
        if info.shape() != *shape {
            return Err(GgufError::ShapeMismatch {
                name: g.clone(),
                expected: shape.clone(),
                found: info.shape(),
            });
        }
    }

    let tokenizer = build_tokenizer(gguf)?;
    let n_tokens = gguf.get_str_array("tokenizer.ggml.tokens")?.len();
    if n_tokens > vocab {
        return Err(corrupt(format!(
            "the tokenizer has {n_tokens} tokens but the embedding only {vocab} rows"
        )));
    }
    let tokenizer_json = tokenizer
        .to_string(true)
        .map_err(|e| GgufError::TokenizerBuild {
            message: e.to_string(),
        })?;
    drop(tokenizer);

    let tensors = plan
        .into_iter()
        .map(|(gguf_name, name, shape, unpermute_heads)| PlannedTensor {
            gguf_name,
            name,
            shape,
            unpermute_heads,
        })
        .collect();

    let mut config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": ffn,
        "num_hidden_layers": n_layers,
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv_head,
        "head_dim": head_dim,
        "max_position_embeddings": context,
        "rms_norm_eps": f32_to_json(eps),
        "rope_theta": f32_to_json(rope_theta),
        "tie_word_embeddings": tied,
        "hidden_act": "silu",
        "attention_bias": false,
        "mlp_bias": false,
        "torch_dtype": "float32",
    });
    for (key, field) in [
        ("tokenizer.ggml.bos_token_id", "bos_token_id"),
        ("tokenizer.ggml.eos_token_id", "eos_token_id"),
        ("tokenizer.ggml.padding_token_id", "pad_token_id"),
    ] {
        if let (Some(id), Some(obj)) = (token_id(gguf, key, n_tokens)?, config.as_object_mut()) {
            obj.insert(field.to_owned(), id.into());
        }
    }
    let chat_template =
        optional(gguf, "tokenizer.chat_template", Gguf::get_str)?.map(str::to_owned);
    Ok(LlamaPlan {
        config,
        tensors,
        tokenizer_json,
        chat_template,
    })
}
