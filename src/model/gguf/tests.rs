//! Unit tests of the GGUF reader and the Llama importer, on small files built by hand.

use super::*;
use std::str::FromStr;

// GGUF value type ids.
const T_U8: u32 = 0;
const T_I32: u32 = 5;
const T_F32: u32 = 6;
const T_BOOL: u32 = 7;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;
const T_U64: u32 = 10;
const T_U32: u32 = 4;
// ggml type ids.
const G_F32: u32 = 0;
const G_F16: u32 = 1;
const G_Q4_0: u32 = 2;
const G_Q4_1: u32 = 3;
const G_Q8_0: u32 = 8;
const G_Q6_K: u32 = 14;
const G_BF16: u32 = 30;

/// A minimal GGUF writer for the tests.
struct Writer {
    version: u32,
    alignment: usize,
    kv: Vec<u8>,
    n_kv: u64,
    infos: Vec<u8>,
    n_tensors: u64,
    data: Vec<u8>,
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend((s.len() as u64).to_le_bytes());
    buf.extend(s.as_bytes());
}

impl Writer {
    fn new() -> Writer {
        Writer {
            version: 3,
            alignment: 32,
            kv: Vec::new(),
            n_kv: 0,
            infos: Vec::new(),
            n_tensors: 0,
            data: Vec::new(),
        }
    }
    /// A key with a value already encoded (type id + bytes).
    fn raw(&mut self, key: &str, ty: u32, value: &[u8]) -> &mut Self {
        put_str(&mut self.kv, key);
        self.kv.extend(ty.to_le_bytes());
        self.kv.extend(value);
        self.n_kv += 1;
        self
    }
    fn u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.raw(key, T_U32, &v.to_le_bytes())
    }
    fn f32(&mut self, key: &str, v: f32) -> &mut Self {
        self.raw(key, T_F32, &v.to_le_bytes())
    }
    fn bool(&mut self, key: &str, v: bool) -> &mut Self {
        self.raw(key, T_BOOL, &[u8::from(v)])
    }
    fn str(&mut self, key: &str, v: &str) -> &mut Self {
        let mut b = Vec::new();
        put_str(&mut b, v);
        self.raw(key, T_STRING, &b)
    }
    fn str_array(&mut self, key: &str, v: &[&str]) -> &mut Self {
        let mut b = Vec::new();
        b.extend(T_STRING.to_le_bytes());
        b.extend((v.len() as u64).to_le_bytes());
        for s in v {
            put_str(&mut b, s);
        }
        self.raw(key, T_ARRAY, &b)
    }
    fn i32_array(&mut self, key: &str, v: &[i32]) -> &mut Self {
        let mut b = Vec::new();
        b.extend(T_I32.to_le_bytes());
        b.extend((v.len() as u64).to_le_bytes());
        for x in v {
            b.extend(x.to_le_bytes());
        }
        self.raw(key, T_ARRAY, &b)
    }
    /// A tensor; `dims` in GGUF order (innermost first).
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, bytes: &[u8]) -> &mut Self {
        while !self.data.len().is_multiple_of(self.alignment) {
            self.data.push(0);
        }
        put_str(&mut self.infos, name);
        self.infos.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            self.infos.extend(d.to_le_bytes());
        }
        self.infos.extend(ty.to_le_bytes());
        self.infos.extend((self.data.len() as u64).to_le_bytes());
        self.data.extend(bytes);
        self.n_tensors += 1;
        self
    }
    fn f32_tensor(&mut self, name: &str, dims: &[u64], values: &[f32]) -> &mut Self {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, dims, G_F32, &bytes)
    }
    fn finish(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend(self.n_tensors.to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kv);
        out.extend(&self.infos);
        while !out.len().is_multiple_of(self.alignment) {
            out.push(0);
        }
        out.extend(&self.data);
        out
    }
}

fn f16(v: f32) -> [u8; 2] {
    half::f16::from_f32(v).to_le_bytes()
}

#[test]
fn metadata_round_trip() {
    let mut nested = Vec::new(); // array of 2 arrays of u8: [[1, 2], [3]]
    nested.extend(T_ARRAY.to_le_bytes());
    nested.extend(2u64.to_le_bytes());
    for inner in [&[1u8, 2][..], &[3u8][..]] {
        nested.extend(T_U8.to_le_bytes());
        nested.extend((inner.len() as u64).to_le_bytes());
        nested.extend(inner);
    }
    let bytes = Writer::new()
        .str("general.architecture", "llama")
        .u32("llama.block_count", 30)
        .raw("big", T_U64, &(1u64 << 40).to_le_bytes())
        .raw("neg", T_I32, &(-5i32).to_le_bytes())
        .f32("eps", 1e-5)
        .raw("f64", 12, &2.5f64.to_le_bytes())
        .bool("flag", true)
        .str_array("tokens", &["a", "Ġb", "你好", ""])
        .i32_array("types", &[1, 3, 4, -1])
        .raw("nested", T_ARRAY, &nested)
        .finish();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.version(), 3);
    assert_eq!(g.alignment(), 32);
    assert!(g.tensors().is_empty());
    let keys: Vec<&str> = g.metadata().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            "general.architecture",
            "llama.block_count",
            "big",
            "neg",
            "eps",
            "f64",
            "flag",
            "tokens",
            "types",
            "nested"
        ]
    );
    assert_eq!(g.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(g.get_u64("llama.block_count").unwrap(), 30);
    assert_eq!(g.get_u64("big").unwrap(), 1 << 40);
    assert_eq!(g.get("neg"), Some(&MetadataValue::I32(-5)));
    assert_eq!(g.get_f64("eps").unwrap(), f64::from(1e-5f32));
    assert_eq!(g.get_f64("f64").unwrap(), 2.5);
    assert!(g.get_bool("flag").unwrap());
    assert_eq!(g.get_str_array("tokens").unwrap(), ["a", "Ġb", "你好", ""]);
    assert_eq!(g.get_int_array("types").unwrap(), [1, 3, 4, -1]);
    assert_eq!(
        g.get("nested"),
        Some(&MetadataValue::Array(MetadataArray::Array(vec![
            MetadataArray::U8(vec![1, 2]),
            MetadataArray::U8(vec![3])
        ])))
    );
    // Typed errors for wrong types and missing keys.
    assert!(matches!(
        g.get_u64("neg"),
        Err(GgufError::WrongMetadataType {
            expected: "a non-negative integer",
            found: "int32",
            ..
        })
    ));
    assert!(matches!(
        g.get_str("llama.block_count"),
        Err(GgufError::WrongMetadataType {
            found: "uint32",
            ..
        })
    ));
    assert!(matches!(
        g.get_str_array("types"),
        Err(GgufError::WrongMetadataType {
            found: "array of int32",
            ..
        })
    ));
    let missing = g.get_str("nope").unwrap_err();
    assert!(matches!(&missing, GgufError::MissingMetadata { key } if key == "nope"));
    assert!(missing.to_string().contains("\"nope\""));
    // Version 2 has the same layout.
    let mut w = Writer::new();
    w.version = 2;
    w.u32("x", 7);
    assert_eq!(Gguf::parse(&w.finish()).unwrap().get_u64("x").unwrap(), 7);
}

#[test]
fn custom_alignment_and_float_types() {
    let mut w = Writer::new();
    w.alignment = 64;
    w.u32("general.alignment", 64);
    w.f32_tensor("a", &[3], &[1.0, -2.5, 3.25]);
    // F16: 0x3C00 = 1.0, 0xC000 = -2.0, 0x3800 = 0.5, 0x7BFF = 65504 (largest f16)
    w.tensor(
        "h",
        &[4],
        G_F16,
        &[0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38, 0xFF, 0x7B],
    );
    // BF16 is the top half of an f32: 0x3F80 = 1.0, 0xC040 = -3.0, 0x3E20 = 0.15625
    w.tensor("b", &[3], G_BF16, &[0x80, 0x3F, 0x40, 0xC0, 0x20, 0x3E]);
    let bytes = w.finish();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.alignment(), 64);
    assert!(g.tensors().iter().all(|t| t.offset % 64 == 0));
    assert_eq!(g.tensor_f32("a").unwrap(), (vec![3], vec![1.0, -2.5, 3.25]));
    assert_eq!(g.tensor_f32("h").unwrap().1, [1.0, -2.0, 0.5, 65504.0]);
    assert_eq!(g.tensor_f32("b").unwrap().1, [1.0, -3.0, 0.15625]);
    assert!(matches!(g.tensor_f32("zz"), Err(GgufError::MissingTensor { name }) if name == "zz"));
}

#[test]
fn q8_0_block() {
    // d = 0.5 (f16 0x3800); qs = -128, -1, 0, 1, 127, then 5, 6, ..., 31.
    // Expected y[j] = qs[j] * 0.5: -64, -0.5, 0, 0.5, 63.5, 2.5, 3, ..., 15.5.
    let mut qs: Vec<i8> = vec![-128, -1, 0, 1, 127];
    qs.extend(5..32);
    let mut block = f16(0.5).to_vec();
    block.extend(qs.iter().map(|&q| q as u8));
    // A second block, d = -2: element 32 + j is -2 * (j - 16).
    block.extend(f16(-2.0));
    block.extend((0..32).map(|j| (j - 16i32) as i8 as u8));
    let bytes = Writer::new().tensor("q", &[32, 2], G_Q8_0, &block).finish();
    let g = Gguf::parse(&bytes).unwrap();
    let (shape, v) = g.tensor_f32("q").unwrap();
    assert_eq!(shape, [2, 32]); // GGUF [32, 2] is HF [2, 32]
    let mut expected: Vec<f32> = qs.iter().map(|&q| f32::from(q) * 0.5).collect();
    expected.extend((0..32).map(|j| -2.0 * (j - 16) as f32));
    assert_eq!(&v[..5], &[-64.0, -0.5, 0.0, 0.5, 63.5]);
    assert_eq!(v, expected);
}

#[test]
fn q4_0_block() {
    // d = 2.0; byte j = j | (15 - j) << 4.
    // Low nibbles are elements 0..16: y[j] = (j - 8) * 2      -> -16, -14, ..., 14
    // High nibbles are elements 16..32: y[16 + j] = (15 - j - 8) * 2 = (7 - j) * 2 -> 14, ..., -16
    let mut block = f16(2.0).to_vec();
    block.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    let bytes = Writer::new().tensor("q", &[32], G_Q4_0, &block).finish();
    let (_, v) = Gguf::parse(&bytes).unwrap().tensor_f32("q").unwrap();
    let expected: Vec<f32> = (0..16)
        .map(|j| (j - 8) as f32 * 2.0)
        .chain((0..16).map(|j| (7 - j) as f32 * 2.0))
        .collect();
    assert_eq!(&v[..3], &[-16.0, -14.0, -12.0]);
    assert_eq!(&v[16..19], &[14.0, 12.0, 10.0]);
    assert_eq!(v, expected);
}

#[test]
fn q4_1_block() {
    // d = 0.5, m = -1.0; byte j = j | (15 - j) << 4.
    // y[j] = j * 0.5 - 1 -> -1, -0.5, ..., 6.5; y[16 + j] = (15 - j) * 0.5 - 1 -> 6.5, ..., -1
    let mut block = f16(0.5).to_vec();
    block.extend(f16(-1.0));
    block.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    let bytes = Writer::new().tensor("q", &[32], G_Q4_1, &block).finish();
    let (_, v) = Gguf::parse(&bytes).unwrap().tensor_f32("q").unwrap();
    let expected: Vec<f32> = (0..16)
        .map(|j| j as f32 * 0.5 - 1.0)
        .chain((0..16).map(|j| (15 - j) as f32 * 0.5 - 1.0))
        .collect();
    assert_eq!(&v[..3], &[-1.0, -0.5, 0.0]);
    assert_eq!(v[16], 6.5);
    assert_eq!(v, expected);
}

/// llama.cpp's forward permutation, index by index from the numpy expression
/// `w.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2).reshape(rows, cols)`:
/// output row (h, i, j) (index h*hd + 2i + j) is input row (h, j, i) (index h*hd + j*hd/2 + i).
fn permute_rows(w: &[f32], rows: usize, cols: usize, n_head: usize) -> Vec<f32> {
    let hd = rows / n_head;
    let mut out = Vec::new();
    for h in 0..n_head {
        for i in 0..hd / 2 {
            for j in 0..2 {
                let src = h * hd + j * (hd / 2) + i;
                out.extend_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

#[test]
fn unpermute_known_matrix() {
    // 2 heads of size 6, 2 columns; original row r holds [10r, 10r + 1].
    // numpy: np.arange(12).reshape(2, 2, 3).swapaxes(1, 2).reshape(12)
    //        = [0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11]: the stored row order.
    let stored_order = [0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11];
    let stored: Vec<f32> = stored_order
        .iter()
        .flat_map(|&r| [10.0 * r as f32, 10.0 * r as f32 + 1.0])
        .collect();
    let original: Vec<f32> = (0..12)
        .flat_map(|r| [10.0 * r as f32, 10.0 * r as f32 + 1.0])
        .collect();
    assert_eq!(permute_rows(&original, 12, 2, 2), stored);
    assert_eq!(unpermute_rows(&stored, 12, 2, 2).unwrap(), original);
    // And on a bigger matrix: unpermute(permute(w)) == w, with 3 heads of 8.
    let w: Vec<f32> = (0..24 * 5).map(|x| x as f32 * 0.25 - 7.0).collect();
    assert_eq!(
        unpermute_rows(&permute_rows(&w, 24, 5, 3), 24, 5, 3).unwrap(),
        w
    );
    // Bad geometry is an error, not a panic.
    assert!(unpermute_rows(&w, 24, 5, 5).is_err());
    assert!(unpermute_rows(&w, 24, 4, 3).is_err());
    assert!(unpermute_rows(&w, 24, 5, 0).is_err());
}

#[test]
fn not_gguf() {
    let err = Gguf::parse(b"PK\x03\x04 a zip file").unwrap_err();
    assert!(matches!(&err, GgufError::NotGguf { found } if found == "50 4b 03 04"));
    assert_eq!(
        err.to_string(),
        "this file is not a GGUF model (it starts with bytes 50 4b 03 04, expected \"GGUF\"); \
         choose a .gguf file exported by llama.cpp"
    );
    assert!(matches!(Gguf::parse(b""), Err(GgufError::NotGguf { .. })));
    assert!(matches!(Gguf::parse(b"GG"), Err(GgufError::NotGguf { .. })));
    assert!(matches!(
        import_llama(b"{\"json\": 1}"),
        Err(GgufError::NotGguf { .. })
    ));
}

#[test]
fn unsupported_versions() {
    let mut w = Writer::new();
    w.version = 1;
    assert!(matches!(
        Gguf::parse(&w.finish()),
        Err(GgufError::UnsupportedVersion { version: 1, .. })
    ));
    w.version = 3u32.swap_bytes();
    let err = Gguf::parse(&w.finish()).unwrap_err();
    assert!(err.to_string().contains("big-endian"), "{err}");
}

#[test]
fn truncated_anywhere_is_an_error() {
    let mut block = f16(0.5).to_vec();
    block.extend([1u8; 32]);
    let bytes = Writer::new()
        .str("general.architecture", "llama")
        .str_array("tokenizer.ggml.tokens", &["a", "b", "c"])
        .f32("eps", 1e-5)
        .f32_tensor("x", &[2, 2], &[1.0, 2.0, 3.0, 4.0])
        .tensor("q", &[32], G_Q8_0, &block)
        .finish();
    assert!(Gguf::parse(&bytes).is_ok());
    for cut in 0..bytes.len() {
        match Gguf::parse(&bytes[..cut]) {
            Err(GgufError::NotGguf { .. }) => assert!(cut < 4),
            Err(GgufError::Truncated { .. }) => assert!(cut >= 4),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    let err = Gguf::parse(&bytes[..bytes.len() - 1]).unwrap_err();
    assert!(err.to_string().contains("tensor \"q\""), "{err}");
}

#[test]
fn q6_k_is_unsupported_with_a_helpful_message() {
    let bytes = Writer::new()
        .tensor("output.weight", &[256], G_Q6_K, &[0u8; 210])
        .finish();
    let g = Gguf::parse(&bytes).unwrap();
    let err = g.tensor_f32("output.weight").unwrap_err();
    assert!(
        matches!(&err, GgufError::UnsupportedTensorType { name, ggml_type: "Q6_K" } if name == "output.weight")
    );
    let msg = err.to_string();
    assert!(
        msg.contains("Q6_K") && msg.contains("Q8_0") && msg.contains("llama-quantize"),
        "{msg}"
    );
    // An unknown type id is reported as such too.
    let bytes = Writer::new().tensor("t", &[4], 999, &[0u8; 16]).finish();
    let g = Gguf::parse(&bytes).unwrap();
    assert!(matches!(
        g.tensor_f32("t"),
        Err(GgufError::UnsupportedTensorType {
            ggml_type: "unknown",
            ..
        })
    ));
}

#[test]
fn corrupt_counts_do_not_allocate() {
    // An array of u8 claiming 2^62 elements.
    let mut value = T_U8.to_le_bytes().to_vec();
    value.extend((1u64 << 62).to_le_bytes());
    let bytes = Writer::new().raw("huge", T_ARRAY, &value).finish();
    assert!(matches!(
        Gguf::parse(&bytes),
        Err(GgufError::TooLarge { .. })
    ));
    // An array of strings claiming 2^27 elements (under the cap, over the bytes there).
    let mut value = T_STRING.to_le_bytes().to_vec();
    value.extend((1u64 << 27).to_le_bytes());
    let bytes = Writer::new().raw("many", T_ARRAY, &value).finish();
    assert!(matches!(
        Gguf::parse(&bytes),
        Err(GgufError::Truncated { .. })
    ));
    // A string of u64::MAX bytes.
    let mut value = Vec::new();
    value.extend(u64::MAX.to_le_bytes());
    let bytes = Writer::new().raw("s", T_STRING, &value).finish();
    assert!(Gguf::parse(&bytes).is_err());
    // Deeply nested arrays.
    let mut value = Vec::new();
    for _ in 0..100 {
        value.extend(T_ARRAY.to_le_bytes());
        value.extend(1u64.to_le_bytes());
    }
    let bytes = Writer::new().raw("deep", T_ARRAY, &value).finish();
    assert!(matches!(
        Gguf::parse(&bytes),
        Err(GgufError::TooLarge { .. })
    ));
    // Header counts.
    let mut bytes = Writer::new().finish();
    bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        Gguf::parse(&bytes),
        Err(GgufError::TooLarge { .. })
    ));
    let mut bytes = Writer::new().finish();
    bytes[16..24].copy_from_slice(&(1u64 << 19).to_le_bytes());
    assert!(matches!(
        Gguf::parse(&bytes),
        Err(GgufError::Truncated { .. })
    ));
    // A tensor whose dimensions overflow, and one pointing past the end.
    let bytes = Writer::new()
        .tensor("t", &[u64::MAX, 4], G_F32, &[])
        .finish();
    assert!(matches!(
        Gguf::parse(&bytes),
        Err(GgufError::TooLarge { .. })
    ));
    let bytes = Writer::new()
        .tensor("t", &[1 << 40], G_F32, &[0; 8])
        .finish();
    assert!(matches!(
        Gguf::parse(&bytes),
        Err(GgufError::Truncated { .. })
    ));
    // Unknown value type, duplicate key, bad alignment.
    let bytes = Writer::new().raw("k", 77, &[0; 8]).finish();
    assert!(matches!(
        Gguf::parse(&bytes),
        Err(GgufError::Corrupt { .. })
    ));
    let bytes = Writer::new().u32("k", 1).u32("k", 2).finish();
    assert!(matches!(
        Gguf::parse(&bytes),
        Err(GgufError::Corrupt { .. })
    ));
    let bytes = Writer::new().u32("general.alignment", 48).finish();
    assert!(matches!(
        Gguf::parse(&bytes),
        Err(GgufError::Corrupt { .. })
    ));
}

#[test]
fn random_corruption_never_panics() {
    // Flip bytes of a valid model at pseudo-random places (a fixed LCG, so the test is
    // reproducible) and import each damaged copy: every outcome must be Ok or an error.
    let good = tiny_llama(|_| {});
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    let mut errors = 0;
    for _ in 0..3000 {
        let mut bytes = good.clone();
        for _ in 0..1 + next() % 4 {
            let at = next() % bytes.len();
            bytes[at] = match next() % 3 {
                0 => 0xFF,
                1 => 0x00,
                _ => next() as u8,
            };
        }
        errors += usize::from(import_llama(&bytes).is_err());
    }
    assert!(errors > 0);
}

// A tiny Llama: width 8, 2 heads of 4, 1 key/value head, FFN 12, 2 layers, vocabulary 10.
const TOKENS: [&str; 10] = [
    "<|endoftext|>",
    "<|im_start|>",
    "a",
    "b",
    "ab",
    "Ġ",
    "Ġab",
    "1",
    "2",
    "<tool>",
];
const TYPES: [i32; 10] = [3, 3, 1, 1, 1, 1, 1, 1, 1, 4];

fn ramp(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| ((i as f32) * 0.37 + seed).sin()).collect()
}

fn tiny_llama(edit: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::new();
    w.str("general.architecture", "llama")
        .u32("llama.block_count", 2)
        .u32("llama.context_length", 64)
        .u32("llama.embedding_length", 8)
        .u32("llama.feed_forward_length", 12)
        .u32("llama.attention.head_count", 2)
        .u32("llama.attention.head_count_kv", 1)
        .f32("llama.rope.freq_base", 100000.0)
        .f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
        .str("tokenizer.ggml.model", "gpt2")
        .str("tokenizer.ggml.pre", "smollm")
        .str_array("tokenizer.ggml.tokens", &TOKENS)
        .i32_array("tokenizer.ggml.token_type", &TYPES)
        .str_array("tokenizer.ggml.merges", &["a b", "Ġ ab"])
        .u32("tokenizer.ggml.bos_token_id", 1)
        .u32("tokenizer.ggml.eos_token_id", 0)
        .bool("tokenizer.ggml.add_bos_token", true)
        .str("tokenizer.chat_template", "{{ messages }}");
    edit(&mut w);
    w.f32_tensor("token_embd.weight", &[8, 10], &ramp(80, 0.0));
    for l in 0..2u64 {
        let s = l as f32;
        w.f32_tensor(
            &format!("blk.{l}.attn_norm.weight"),
            &[8],
            &ramp(8, 1.0 + s),
        );
        w.f32_tensor(
            &format!("blk.{l}.attn_q.weight"),
            &[8, 8],
            &ramp(64, 2.0 + s),
        );
        w.f32_tensor(
            &format!("blk.{l}.attn_k.weight"),
            &[8, 4],
            &ramp(32, 3.0 + s),
        );
        w.f32_tensor(
            &format!("blk.{l}.attn_v.weight"),
            &[8, 4],
            &ramp(32, 4.0 + s),
        );
        w.f32_tensor(
            &format!("blk.{l}.attn_output.weight"),
            &[8, 8],
            &ramp(64, 5.0 + s),
        );
        w.f32_tensor(&format!("blk.{l}.ffn_norm.weight"), &[8], &ramp(8, 6.0 + s));
        w.f32_tensor(
            &format!("blk.{l}.ffn_gate.weight"),
            &[8, 12],
            &ramp(96, 7.0 + s),
        );
        w.f32_tensor(
            &format!("blk.{l}.ffn_up.weight"),
            &[8, 12],
            &ramp(96, 8.0 + s),
        );
        w.f32_tensor(
            &format!("blk.{l}.ffn_down.weight"),
            &[12, 8],
            &ramp(96, 9.0 + s),
        );
    }
    w.f32_tensor("output_norm.weight", &[8], &ramp(8, 10.0));
    w.finish()
}

#[test]
fn import_tiny_llama() {
    let bytes = tiny_llama(|_| {});
    let m = import_llama(&bytes).unwrap();
    let c = &m.config;
    assert_eq!(c["architectures"], serde_json::json!(["LlamaForCausalLM"]));
    assert_eq!(c["model_type"], "llama");
    assert_eq!(c["vocab_size"], 10);
    assert_eq!(c["hidden_size"], 8);
    assert_eq!(c["intermediate_size"], 12);
    assert_eq!(c["num_hidden_layers"], 2);
    assert_eq!(c["num_attention_heads"], 2);
    assert_eq!(c["num_key_value_heads"], 1);
    assert_eq!(c["head_dim"], 4);
    assert_eq!(c["max_position_embeddings"], 64);
    assert_eq!(c["rms_norm_eps"], 1e-5); // not 9.99999974737875e-6
    assert_eq!(c["rope_theta"], 100000.0);
    assert_eq!(c["tie_word_embeddings"], true);
    assert_eq!(c["bos_token_id"], 1);
    assert_eq!(c["eos_token_id"], 0);
    assert!(c.get("pad_token_id").is_none());
    assert_eq!(c["hidden_act"], "silu");
    assert_eq!(m.chat_template.as_deref(), Some("{{ messages }}"));

    // embedding + 2 layers × 9 + final norm, no lm_head (tied).
    assert_eq!(m.tensors.len(), 20);
    assert!(m.tensor("lm_head.weight").is_none());
    let q = m.tensor("model.layers.1.self_attn.q_proj.weight").unwrap();
    assert_eq!(q.shape, [8, 8]);
    assert_eq!(q.data, unpermute_rows(&ramp(64, 3.0), 8, 8, 2).unwrap());
    assert_ne!(q.data, ramp(64, 3.0));
    let k = m.tensor("model.layers.0.self_attn.k_proj.weight").unwrap();
    assert_eq!(k.shape, [4, 8]);
    assert_eq!(k.data, unpermute_rows(&ramp(32, 3.0), 4, 8, 1).unwrap());
    let v = m.tensor("model.layers.0.self_attn.v_proj.weight").unwrap();
    assert_eq!(v.data, ramp(32, 4.0)); // not permuted
    assert_eq!(
        m.tensor("model.layers.0.mlp.down_proj.weight")
            .unwrap()
            .shape,
        [8, 12]
    );
    assert_eq!(
        m.tensor("model.layers.0.mlp.up_proj.weight").unwrap().shape,
        [12, 8]
    );
    assert_eq!(
        m.tensor("model.embed_tokens.weight").unwrap().shape,
        [10, 8]
    );
    assert_eq!(m.tensor("model.norm.weight").unwrap().data, ramp(8, 10.0));

    // safetensors round trip.
    let st_bytes = m.safetensors_bytes().unwrap();
    let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
    assert_eq!(st.len(), 20);
    let view = st.tensor("model.layers.1.self_attn.q_proj.weight").unwrap();
    assert_eq!(view.dtype(), safetensors::Dtype::F32);
    assert_eq!(view.shape(), [8, 8]);
    let back: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(back, q.data);

    // The tokenizer loads back and encodes as llama.cpp would.
    let tok = tokenizers::Tokenizer::from_str(&m.tokenizer_json).unwrap();
    // "ab ab12": words "ab", "Ġab", then digits one by one; BOS added (add_bos_token).
    let enc = tok.encode("ab ab12", true).unwrap();
    assert_eq!(enc.get_ids(), [1, 4, 6, 7, 8]);
    let enc = tok.encode("<|endoftext|>ab<tool>", false).unwrap();
    assert_eq!(enc.get_ids(), [0, 4, 9]);
    assert_eq!(tok.decode(&[4, 6], true).unwrap(), "ab ab");
    assert_eq!(tok.decode(&[1, 4], true).unwrap(), "ab"); // control tokens are special
    assert!(m.tokenizer_json.contains("\"Digits\""));
}

#[test]
fn import_errors() {
    let err = |edit: fn(&mut Writer)| import_llama(&tiny_llama(edit)).unwrap_err();
    // Later keys cannot replace earlier ones (duplicates are corrupt), so edits add new keys.
    assert!(matches!(
        err(|w| {
            w.str("llama.rope.scaling.type", "linear");
        }),
        GgufError::Unsupported { feature } if feature.contains("linear")
    ));
    assert!(matches!(
        err(|w| {
            w.f32_tensor("rope_freqs.weight", &[2], &[1.0, 1.0]);
        }),
        GgufError::Unsupported { feature } if feature.contains("rope_freqs")
    ));
    assert!(matches!(
        err(|w| {
            w.f32_tensor("blk.0.attn_q.bias", &[8], &[0.0; 8]);
        }),
        GgufError::Unsupported { feature } if feature.contains("attn_q.bias")
    ));
    assert!(matches!(
        err(|w| {
            w.u32("llama.vocab_size", 11);
        }),
        GgufError::Corrupt { .. }
    ));
    assert!(matches!(
        err(|w| {
            w.u32("llama.attention.key_length", 6);
        }),
        GgufError::ShapeMismatch { name, .. } if name == "blk.0.attn_q.weight"
    ));

    // Keys that tiny_llama writes first: build variants by hand.
    let without = |skip: &str, extra: &dyn Fn(&mut Writer)| {
        let mut w = Writer::new();
        let g_bytes = tiny_llama(|_| {});
        let g = Gguf::parse(&g_bytes).unwrap();
        for (k, v) in g.metadata() {
            if k == skip {
                continue;
            }
            match v {
                MetadataValue::String(s) => w.str(k, s),
                MetadataValue::U32(x) => w.u32(k, *x),
                MetadataValue::F32(x) => w.f32(k, *x),
                MetadataValue::Bool(x) => w.bool(k, *x),
                MetadataValue::Array(MetadataArray::String(a)) => {
                    w.str_array(k, &a.iter().map(String::as_str).collect::<Vec<_>>())
                }
                MetadataValue::Array(MetadataArray::I32(a)) => w.i32_array(k, a),
                other => panic!("{other:?}"),
            };
        }
        extra(&mut w);
        for t in g.tensors() {
            if t.name != skip {
                w.tensor(&t.name, &t.dims, G_F32, g.tensor_bytes(&t.name).unwrap());
            }
        }
        import_llama(&w.finish())
    };
    assert!(without("nothing", &|_| {}).is_ok());
    assert!(matches!(
        without("general.architecture", &|w| {
            w.str("general.architecture", "gpt2");
        }),
        Err(GgufError::UnsupportedArchitecture { architecture }) if architecture == "gpt2"
    ));
    assert!(matches!(
        without("llama.embedding_length", &|_| {}),
        Err(GgufError::MissingMetadata { key }) if key == "llama.embedding_length"
    ));
    assert!(matches!(
        without("blk.1.ffn_up.weight", &|_| {}),
        Err(GgufError::MissingTensor { name }) if name == "blk.1.ffn_up.weight"
    ));
    assert!(matches!(
        without("llama.block_count", &|w| {
            w.u32("llama.block_count", u32::MAX);
        }),
        Err(GgufError::MissingTensor { name }) if name == "blk.2.attn_norm.weight"
    ));
    assert!(matches!(
        without("tokenizer.ggml.pre", &|w| {
            w.str("tokenizer.ggml.pre", "default");
        }),
        Err(GgufError::UnsupportedTokenizer { key: "tokenizer.ggml.pre", value, .. }) if value == "default"
    ));
    assert!(matches!(
        without("tokenizer.ggml.model", &|w| {
            w.str("tokenizer.ggml.model", "llama");
        }),
        Err(GgufError::UnsupportedTokenizer {
            key: "tokenizer.ggml.model",
            ..
        })
    ));
    assert!(matches!(
        without("tokenizer.ggml.merges", &|w| {
            w.str_array("tokenizer.ggml.merges", &["a b", "x y"]);
        }),
        Err(GgufError::TokenizerBuild { .. })
    ));
    // Plain GPT-2 pre-tokenizer: digits stay together ("12" is not in this vocabulary,
    // so it is still two tokens, but it must build and load).
    let m = without("tokenizer.ggml.pre", &|w| {
        w.str("tokenizer.ggml.pre", "gpt2");
    })
    .unwrap();
    assert!(!m.tokenizer_json.contains("\"Digits\""));
    assert!(tokenizers::Tokenizer::from_str(&m.tokenizer_json).is_ok());
    // add_bos_token false: no post-processor adding BOS.
    let m = without("tokenizer.ggml.add_bos_token", &|_| {}).unwrap();
    let tok = tokenizers::Tokenizer::from_str(&m.tokenizer_json).unwrap();
    assert_eq!(tok.encode("ab", true).unwrap().get_ids(), [4]);
}
