//! The file shape that saved states ([`crate::mose::Learner::to_bytes`]) and
//! training checkpoints ([`crate::train::TaskRun::checkpoint`]) share: one
//! safetensors file of f32 tensors whose metadata holds a JSON description
//! under a key of its own, with a `format_version` field read before
//! anything else.

use std::collections::HashMap;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::F32View;

/// Why a file could not be read as a described file.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Not a safetensors file at all.
    NotSafetensors(String),
    /// A safetensors file without a description under the key.
    NoDescription,
    /// The description has another `format_version` (`None`: it has none).
    Version(Option<u64>),
    /// The description does not parse.
    Json(String),
}

/// `tensors` (name, shape, values) and `description` under `key`, as one file.
pub(crate) fn write(
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    key: &str,
    description: &impl Serialize,
) -> Result<Vec<u8>, String> {
    let json = serde_json::to_string(description).map_err(|e| e.to_string())?;
    let metadata = HashMap::from([(key.to_string(), json)]);
    let views = tensors
        .iter()
        .map(|(name, shape, values)| (name.as_str(), F32View { shape, values }));
    safetensors::serialize(views, Some(metadata)).map_err(|e| e.to_string())
}

/// The description under `key`, once its `format_version` is one of `versions`.
/// Only the file's header is read: the tensors are not checked yet.
pub(crate) fn read_description<T: DeserializeOwned>(
    bytes: &[u8],
    key: &str,
    versions: std::ops::RangeInclusive<u32>,
) -> Result<T, ReadError> {
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| ReadError::NotSafetensors(e.to_string()))?;
    let json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(key))
        .ok_or(ReadError::NoDescription)?;
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| ReadError::Json(e.to_string()))?;
    let found = value.get("format_version").and_then(|v| v.as_u64());
    if !found.is_some_and(|v| u32::try_from(v).is_ok_and(|v| versions.contains(&v))) {
        return Err(ReadError::Version(found));
    }
    serde_json::from_value(value).map_err(|e| ReadError::Json(e.to_string()))
}

/// Why a tensor could not be read ([`f32_tensor`]).
#[derive(Debug)]
pub(crate) enum TensorError {
    /// The file has no tensor of that name.
    Missing,
    /// It is not f32, or of another shape (the shape it has).
    Mismatch(Vec<usize>),
}

/// The values of `file`'s f32 tensor `name` of shape `shape`.
pub(crate) fn f32_tensor(
    file: &SafeTensors<'_>,
    name: &str,
    shape: &[usize],
) -> Result<Vec<f32>, TensorError> {
    let view = file.tensor(name).map_err(|_| TensorError::Missing)?;
    match f32_values(&view) {
        Some(values) if view.shape() == shape => Ok(values),
        _ => Err(TensorError::Mismatch(view.shape().to_vec())),
    }
}

/// A tensor's values, `None` unless it holds f32.
pub(crate) fn f32_values(view: &TensorView<'_>) -> Option<Vec<f32>> {
    (view.dtype() == Dtype::F32).then(|| {
        view.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    })
}
