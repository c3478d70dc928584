//! Loads and saves [`Llama`] weights as safetensors with Hugging Face's tensor
//! names (`model.layers.{i}.self_attn.q_proj.weight`, ...), so a checkpoint
//! written by transformers loads here and one written here loads there.
//!
//! The names come from the model's own field layout
//! ([`Llama::hf_params_mut`]), not from a renaming table. HF stores linear
//! weights `[out, in]`; burn's `Linear` holds `[in, out]`, so they are
//! transposed on the way in and out. F32, F16 and BF16 files load; the model
//! computes in f32.

use std::collections::HashMap;

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};

use super::ModelError;
use super::{HfParam, Llama, LlamaConfig};

impl Llama {
    /// Builds the model of `config` with the weights in a safetensors file.
    ///
    /// Tensors the model does not use (an `lm_head.weight` beside a tied
    /// embedding, rotary buffers) are ignored.
    ///
    /// # Errors
    /// [`ModelError::Safetensors`] for a file that is truncated or not
    /// safetensors, [`ModelError::MissingTensor`], [`ModelError::WrongShape`] and
    /// [`ModelError::WrongDtype`] naming the first tensor that does not fit,
    /// and the config's own [`LlamaConfig::validate`] errors.
    pub fn from_safetensors(
        config: &LlamaConfig,
        bytes: &[u8],
        device: &Device,
    ) -> Result<Self, ModelError> {
        config.validate()?;
        let file = SafeTensors::deserialize(bytes)?;
        // Random-init closures are lazy in burn, so the throwaway values are never computed.
        let mut model = config.init(device);
        for (name, param) in model.hf_params_mut() {
            install_from(&file, &name, param, device)?;
        }
        Ok(model)
    }

    /// Writes every weight as f32 safetensors with HF names and `[out, in]`
    /// linear layout; `metadata` goes into the file's header.
    ///
    /// # Errors
    /// [`ModelError::Read`] when the device cannot hand a tensor back.
    pub async fn to_safetensors(
        &mut self,
        metadata: Option<HashMap<String, String>>,
    ) -> Result<Vec<u8>, ModelError> {
        let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
        for (name, param) in self.hf_params_mut() {
            let (shape, values) = match param {
                HfParam::Linear(p) => {
                    let [d_in, d_out] = p.shape().dims();
                    (
                        vec![d_out, d_in],
                        transpose(&read(p.val()).await?, d_in, d_out),
                    )
                }
                HfParam::Matrix(p) => (p.val().dims().to_vec(), read(p.val()).await?),
                HfParam::Vector(p) => (p.val().dims().to_vec(), read(p.val()).await?),
            };
            tensors.push((name, shape, values));
        }
        let views = tensors
            .iter()
            .map(|(name, shape, values)| (name.as_str(), F32View { shape, values }));
        Ok(safetensors::serialize(views, metadata)?)
    }
}

/// Puts the tensor `name` of a safetensors `file` into `param` on `device`
/// ([`install`]).
///
/// # Errors
/// [`ModelError::MissingTensor`], [`ModelError::WrongDtype`] and
/// [`ModelError::WrongShape`] naming the tensor.
pub(crate) fn install_from(
    file: &SafeTensors<'_>,
    name: &str,
    param: HfParam<'_>,
    device: &Device,
) -> Result<(), ModelError> {
    let view = file.tensor(name).map_err(|_| ModelError::MissingTensor {
        name: name.to_string(),
    })?;
    install(name, param, to_f32(name, &view)?, view.shape(), device)
}

/// Puts `values`, a tensor of HF shape `found` named `name`, into `param` on
/// `device` (linear weights transposed to burn's `[in, out]`).
///
/// # Errors
/// [`ModelError::WrongShape`] when `found` is not the parameter's HF shape.
pub(crate) fn install(
    name: &str,
    param: HfParam<'_>,
    values: Vec<f32>,
    found: &[usize],
    device: &Device,
) -> Result<(), ModelError> {
    match param {
        HfParam::Linear(p) => {
            let [d_in, d_out] = p.shape().dims();
            check_shape(name, &[d_out, d_in], found)?;
            *p = Param::from_data(
                TensorData::new(transpose(&values, d_out, d_in), [d_in, d_out]),
                device,
            );
        }
        HfParam::Matrix(p) => {
            let dims: [usize; 2] = p.shape().dims();
            check_shape(name, &dims, found)?;
            *p = Param::from_data(TensorData::new(values, dims), device);
        }
        HfParam::Vector(p) => {
            let dims: [usize; 1] = p.shape().dims();
            check_shape(name, &dims, found)?;
            *p = Param::from_data(TensorData::new(values, dims), device);
        }
    }
    Ok(())
}

async fn read<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, ModelError> {
    tensor
        .into_data_async()
        .await
        .map_err(|e| ModelError::Read(e.to_string()))?
        .try_into_vec::<f32>()
        .map_err(|e| ModelError::Read(format!("{e:?}")))
}

fn check_shape(name: &str, expected: &[usize], found: &[usize]) -> Result<(), ModelError> {
    if expected == found {
        Ok(())
    } else {
        Err(ModelError::WrongShape {
            name: name.to_string(),
            expected: expected.to_vec(),
            found: found.to_vec(),
        })
    }
}

/// A row-major `[rows, cols]` matrix as `[cols, rows]`.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

fn to_f32(name: &str, view: &TensorView<'_>) -> Result<Vec<f32>, ModelError> {
    let bytes = view.data();
    let values = match view.dtype() {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => {
            return Err(ModelError::WrongDtype {
                name: name.to_string(),
                found: format!("{other:?}"),
            });
        }
    };
    Ok(values)
}

/// f32 values seen as a safetensors tensor; shared with the GGUF importer.
pub(crate) struct F32View<'t> {
    /// The shape, row-major.
    pub(crate) shape: &'t [usize],
    /// The values.
    pub(crate) values: &'t [f32],
}

impl safetensors::View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Owned(self.values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
    fn data_len(&self) -> usize {
        self.values.len().saturating_mul(4)
    }
}
