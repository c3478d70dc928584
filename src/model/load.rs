//! Loading a base model as a person chose it (one GGUF file, or a Hugging
//! Face folder's files) straight onto a device, one tensor at a time.
//!
//! [`Checkpoint::from_gguf`](super::Checkpoint::from_gguf) de-quantises a
//! whole GGUF into one f32 `model.safetensors` before the model is built: for
//! SmolLM2-135M that is 0.54 GB next to the 98 MB file and the model itself,
//! more than a browser page should hold. Here each tensor is read (a GGUF
//! tensor de-quantised, a safetensors tensor widened to f32), put on the
//! device and dropped before the next, and the caller hears of each one and
//! gets a turn (a page repaints its progress bar).
//!
//! The identity a project records (`project::BaseModel`) fingerprints the
//! weights as a `model.safetensors` file: the folder's own file, or for a GGUF
//! the file `Checkpoint::from_gguf` writes, hashed here tensor by tensor in
//! that file's order. So a model loaded here and the same model imported by
//! the CLI are one base model.

use std::collections::HashMap;

use burn::tensor::Device;
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, Metadata, TensorInfo};

use super::gguf::{self, Gguf, PlannedTensor};
use super::weights::{install, install_from};
use super::{Chosen, HfParam, Llama, LlamaConfig, ModelError, ModelText, chosen};
use crate::backend::yield_now;

/// Bytes of a weight file hashed between two turns given back to the caller.
const HASH_CHUNK: usize = 64 << 20;

/// FNV-1a, 64 bits: a stable fingerprint of a byte stream, fed in pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    /// The fingerprint of `bytes` alone.
    pub fn of(bytes: &[u8]) -> u64 {
        let mut hash = Self::default();
        hash.update(bytes);
        hash.finish()
    }

    /// Adds `bytes` to the stream.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0 = bytes.iter().fold(self.0, |hash, &b| {
            (hash ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
    }

    /// The fingerprint of everything added so far.
    pub fn finish(self) -> u64 {
        self.0
    }
}

/// How far a load is: `done` of `total` tensors on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadProgress {
    /// Tensors loaded.
    pub done: usize,
    /// Tensors in all.
    pub total: usize,
}

/// A model loaded from a person's files.
#[derive(Debug)]
pub struct LoadedModel {
    /// The model, on the device.
    pub model: Llama,
    /// Its config, tokenizer and chat template.
    pub text: ModelText,
    /// FNV-1a 64 of its weights as a `model.safetensors` file.
    pub fingerprint: u64,
}

impl LoadedModel {
    /// The model in `files` (one GGUF, or a folder's `config.json`,
    /// `model.safetensors` and `tokenizer.json`, as
    /// [`Checkpoint::from_files`](super::Checkpoint::from_files) reads them)
    /// on `device`, one tensor at a time; `progress` hears of each tensor.
    ///
    /// # Errors
    /// The errors of `Checkpoint::from_files` and of
    /// [`Llama::from_safetensors`].
    pub async fn from_files(
        files: &[(String, Vec<u8>)],
        device: &Device,
        progress: impl FnMut(LoadProgress),
    ) -> Result<Self, ModelError> {
        match chosen(files)? {
            Chosen::Gguf(bytes) => from_gguf(bytes, device, progress).await,
            Chosen::Folder { text, weights } => {
                from_safetensors(*text, weights, device, progress).await
            }
        }
    }
}

/// A folder's model: each tensor the model needs from the weight file, then
/// the file's fingerprint.
async fn from_safetensors(
    text: ModelText,
    weights: &[u8],
    device: &Device,
    mut progress: impl FnMut(LoadProgress),
) -> Result<LoadedModel, ModelError> {
    text.config.validate()?;
    let file = SafeTensors::deserialize(weights)?;
    let mut model = text.config.init(device);
    let params = model.hf_params_mut();
    let total = params.len();
    for (done, (name, param)) in params.into_iter().enumerate() {
        install_from(&file, &name, param, device)?;
        progress(LoadProgress {
            done: done + 1,
            total,
        });
        yield_now().await;
    }
    let mut hash = Fnv1a::default();
    for chunk in weights.chunks(HASH_CHUNK) {
        hash.update(chunk);
        yield_now().await;
    }
    Ok(LoadedModel {
        model,
        text,
        fingerprint: hash.finish(),
    })
}

/// A GGUF's model: each planned tensor de-quantised, hashed as the f32
/// `model.safetensors` would hold it, and put on the device.
async fn from_gguf(
    bytes: &[u8],
    device: &Device,
    mut progress: impl FnMut(LoadProgress),
) -> Result<LoadedModel, ModelError> {
    let gguf = Gguf::parse(bytes)?;
    let plan = gguf::plan_llama(&gguf)?;
    let config: LlamaConfig =
        serde_json::from_value(plan.config.clone()).map_err(ModelError::ConfigJson)?;
    config.validate()?;

    // The file (as `safetensors::serialize` lays it out) starts with its
    // header, then holds the tensors, all f32, in name order.
    let mut order: Vec<&PlannedTensor> = plan.tensors.iter().collect();
    order.sort_by(|a, b| a.name.cmp(&b.name));
    let mut hash = Fnv1a::default();
    hash.update(&safetensors_header(&order)?);

    let mut model = config.init(device);
    let mut params: HashMap<String, HfParam<'_>> = model.hf_params_mut().into_iter().collect();
    let total = order.len();
    for (done, tensor) in order.into_iter().enumerate() {
        let values = tensor.read(&gguf)?;
        for value in &values {
            hash.update(&value.to_le_bytes());
        }
        // A tied model has no parameter of its own for the output projection.
        if let Some(param) = params.remove(&tensor.name) {
            install(&tensor.name, param, values, &tensor.shape, device)?;
        }
        progress(LoadProgress {
            done: done + 1,
            total,
        });
        yield_now().await;
    }
    if let Some(name) = params.into_keys().next() {
        return Err(ModelError::MissingTensor { name });
    }
    let text = ModelText {
        config,
        tokenizer_json: plan.tokenizer_json,
        chat_template: plan.chat_template,
    };
    Ok(LoadedModel {
        model,
        text,
        fingerprint: hash.finish(),
    })
}

/// The header of an f32 safetensors file holding `tensors` in this order:
/// the header's length (u64, little-endian), then its JSON padded with
/// spaces to a multiple of 8 bytes.
fn safetensors_header(tensors: &[&PlannedTensor]) -> Result<Vec<u8>, ModelError> {
    let mut offset = 0;
    let infos = tensors
        .iter()
        .map(|t| {
            let len = t.shape.iter().product::<usize>() * 4;
            offset += len;
            let info = TensorInfo {
                dtype: Dtype::F32,
                shape: t.shape.clone(),
                data_offsets: (offset - len, offset),
            };
            (t.name.clone(), info)
        })
        .collect();
    let metadata = Metadata::new(None, infos)?;
    let mut json = serde_json::to_string(&metadata)
        .map_err(|e| ModelError::Safetensors(e.into()))?
        .into_bytes();
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut header = (json.len() as u64).to_le_bytes().to_vec();
    header.extend(json);
    Ok(header)
}
