//! The frozen base model (docs/METHOD.md, "Base model"): a Llama-family transformer
//! ([`Llama`]), its config as Hugging Face writes it ([`LlamaConfig`]), weight
//! loading and saving with HF tensor names, GGUF import ([`gguf`]) and text
//! generation ([`generate`]).
//!
//! ```no_run
//! use mose_lab::{backend, model::Checkpoint, model::generate::{generate, GenerationConfig}};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let checkpoint = Checkpoint::from_gguf(&std::fs::read("SmolLM2-135M-Instruct.Q4_1.gguf")?)?;
//! checkpoint.write_dir("smollm2-hf".as_ref())?; // config.json, model.safetensors, tokenizer.json
//! let device = backend::cpu().device;
//! let (model, tokenizer) = (checkpoint.model(&device)?, checkpoint.tokenizer()?);
//! let settings = GenerationConfig { max_new_tokens: 8, ..Default::default() }; // greedy
//! let out = pollster::block_on(generate(&model, &tokenizer, "The capital of France is", &settings, &device,
//!     |piece| print!("{piece}")))?; // " Paris.\n\nThe answer is:"
//! # Ok(()) }
//! ```

mod config;
pub mod generate;
pub mod gguf;
mod llama;
mod load;
mod weights;

use crate::tokenizer::{SpecialTokens, Tokenizer, TokenizerError};

pub use config::{ForwardFlops, LlamaConfig, RopeParameters, TokenIds};
pub use llama::{Adapter, Frozen, HfParam, KvCache, Llama, Site, next_token_nll};
pub use load::{Fnv1a, LoadProgress, LoadedModel};
pub(crate) use weights::F32View;

/// Why a model could not be built, loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A model folder could not be packed as one archive.
    #[error(
        "the model could not be packed as a zip archive ({0}); try again, or export it with `mose export`"
    )]
    Archive(String),
    /// `config.json` is not JSON, or lacks a field a Llama config must have.
    #[error(
        "config.json is not a valid Llama config ({0}); use the config.json that came with the weights"
    )]
    ConfigJson(serde_json::Error),
    /// The config describes a model this crate cannot compute.
    #[error("config field {field} = {value} is not supported: {reason}")]
    UnsupportedConfig {
        /// The field, with HF's name.
        field: String,
        /// Its value in the file.
        value: String,
        /// Why it does not fit.
        reason: String,
    },
    /// The weights file is not safetensors, or is cut short.
    #[error(
        "the weights file is not a complete safetensors file ({0}); it may be truncated: copy or export it again"
    )]
    Safetensors(#[from] safetensors::SafeTensorError),
    /// A tensor the config needs is not in the file.
    #[error(
        "tensor {name} is missing from the weights file; check that config.json belongs to these weights"
    )]
    MissingTensor {
        /// Its HF name.
        name: String,
    },
    /// A tensor has a different shape than the config implies.
    #[error(
        "tensor {name}: expected shape {expected:?}, found {found:?}; check that config.json belongs to these weights"
    )]
    WrongShape {
        /// Its HF name.
        name: String,
        /// The shape the config implies (HF layout).
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor is stored in a number type the loader does not read.
    #[error(
        "tensor {name} is stored as {found}; only F32, F16 and BF16 weights load (convert the checkpoint)"
    )]
    WrongDtype {
        /// Its HF name.
        name: String,
        /// The dtype in the file.
        found: String,
    },
    /// A GGUF file could not be imported.
    #[error(transparent)]
    Gguf(#[from] gguf::GgufError),
    /// Files chosen as a model are neither one GGUF file nor a Hugging Face
    /// folder's files.
    #[error(
        "{0} is missing: choose one .gguf file, or a Hugging Face model folder's config.json, \
         model.safetensors and tokenizer.json together"
    )]
    MissingFile(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// The device could not hand a tensor back.
    #[error("reading a tensor back from the device failed: {0}")]
    Read(String),
}

/// The file transformers 5 keeps a model's chat template in.
pub const CHAT_TEMPLATE_FILE: &str = "chat_template.jinja";

/// The chat template in a `tokenizer_config.json`: its `chat_template`, a
/// string or a list of named templates (the one named `default`).
fn chat_template_of(tokenizer_config: &[u8]) -> Option<String> {
    let config: serde_json::Value = serde_json::from_slice(tokenizer_config).ok()?;
    match &config["chat_template"] {
        serde_json::Value::String(source) => Some(source.clone()),
        serde_json::Value::Array(named) => named
            .iter()
            .find(|t| t["name"] == "default")
            .and_then(|t| t["template"].as_str())
            .map(str::to_string),
        _ => None,
    }
}

/// The frozen base model as every run on it takes it: the model, the id its
/// batches are padded with, and the device it is on. One value instead of
/// three arguments that always travel together.
#[derive(Debug, Clone, Copy)]
pub struct FrozenBase<'a> {
    /// The model; its weights never change.
    pub model: &'a Llama,
    /// The id batches are padded with (the tokenizer's `pad_id`).
    pub pad_id: u32,
    /// Where the model's tensors are.
    pub device: &'a burn::tensor::Device,
}

impl<'a> FrozenBase<'a> {
    /// `model` on `device`, its batches padded with `tokenizer`'s pad id.
    pub fn new(model: &'a Llama, tokenizer: &Tokenizer, device: &'a burn::tensor::Device) -> Self {
        Self {
            model,
            pad_id: tokenizer.pad_id(),
            device,
        }
    }
}

/// A checkpoint in Hugging Face form, as the three files hold it.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// `config.json`.
    pub config: LlamaConfig,
    /// `model.safetensors`.
    pub weights: Vec<u8>,
    /// `tokenizer.json`.
    pub tokenizer_json: String,
    /// The chat template of an instruct model (`chat_template.jinja`, or
    /// `chat_template` in `tokenizer_config.json`; GGUF's
    /// `tokenizer.chat_template`); `None` for a plain model.
    pub chat_template: Option<String>,
}

impl Checkpoint {
    /// The model, on `device`.
    ///
    /// # Errors
    /// The weight file's errors ([`Llama::from_safetensors`]).
    pub fn model(&self, device: &burn::tensor::Device) -> Result<Llama, ModelError> {
        Llama::from_safetensors(&self.config, &self.weights, device)
    }

    /// The tokenizer, with the special tokens the config names taking
    /// precedence over the tokenizer file's own, and the chat template.
    ///
    /// # Errors
    /// [`TokenizerError::Load`] when `tokenizer.json` is not a tokenizer;
    /// [`TokenizerError::Chat`] when the chat template is not a template.
    pub fn tokenizer(&self) -> Result<Tokenizer, TokenizerError> {
        tokenizer_of(
            &self.config,
            &self.tokenizer_json,
            self.chat_template.as_deref(),
        )
    }

    /// Imports a Llama GGUF file (llama.cpp's format): de-quantised to f32,
    /// q and k rows un-permuted, the tokenizer rebuilt from its metadata.
    ///
    /// # Errors
    /// [`ModelError::Gguf`] naming what the file lacks or holds that cannot be
    /// imported; [`ModelError::UnsupportedConfig`] for a model this crate
    /// cannot run.
    pub fn from_gguf(bytes: &[u8]) -> Result<Self, ModelError> {
        let imported = gguf::import_llama(bytes)?;
        let config: LlamaConfig =
            serde_json::from_value(imported.config.clone()).map_err(ModelError::ConfigJson)?;
        config.validate()?;
        let weights = imported.safetensors_bytes()?;
        Ok(Self {
            config,
            weights,
            tokenizer_json: imported.tokenizer_json,
            chat_template: imported.chat_template,
        })
    }

    /// A model from files chosen by name, as a person picks them from disk:
    /// one GGUF file (by its magic or its `.gguf` name), or a Hugging Face
    /// folder's `config.json`, `model.safetensors` and `tokenizer.json`, with
    /// its chat template from `chat_template.jinja` or `tokenizer_config.json`
    /// where one is given. Other files are ignored.
    ///
    /// # Errors
    /// [`ModelError::MissingFile`] naming the first file a folder lacks, and
    /// the errors of [`Checkpoint::from_gguf`] and of the config.
    pub fn from_files(files: &[(String, Vec<u8>)]) -> Result<Self, ModelError> {
        match chosen(files)? {
            Chosen::Gguf(bytes) => Self::from_gguf(bytes),
            Chosen::Folder { text, weights } => Ok(Self {
                config: text.config,
                weights: weights.to_vec(),
                tokenizer_json: text.tokenizer_json,
                chat_template: text.chat_template,
            }),
        }
    }

    /// Reads `config.json`, `model.safetensors` and `tokenizer.json` from a
    /// folder, and the chat template where the folder has one
    /// ([`Checkpoint::from_files`]).
    ///
    /// # Errors
    /// [`ModelError::Io`] naming a file that cannot be read, and the errors
    /// of [`Checkpoint::from_files`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_dir(dir: &std::path::Path) -> Result<Self, ModelError> {
        let mut files = Vec::new();
        for name in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            CHAT_TEMPLATE_FILE,
            "tokenizer_config.json",
        ] {
            let path = dir.join(name);
            match std::fs::read(&path) {
                Ok(bytes) => files.push((name.to_string(), bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(ModelError::Io {
                        path: path.display().to_string(),
                        source,
                    });
                }
            }
        }
        Self::from_files(&files).map_err(|e| match e {
            ModelError::MissingFile(name) => ModelError::Io {
                path: dir.join(name).display().to_string(),
                source: std::io::ErrorKind::NotFound.into(),
            },
            e => e,
        })
    }

    /// The folder's files by name, as transformers reads them:
    /// `config.json`, `tokenizer.json`, `chat_template.jinja` for an
    /// instruct model, and `model.safetensors` last.
    fn files(&self) -> Vec<(&'static str, std::borrow::Cow<'_, [u8]>)> {
        use std::borrow::Cow;
        let chat = self
            .chat_template
            .as_ref()
            .map(|t| (CHAT_TEMPLATE_FILE, Cow::Borrowed(t.as_bytes())));
        [
            (
                "config.json",
                Cow::Owned(self.config.to_json().into_bytes()),
            ),
            (
                "tokenizer.json",
                Cow::Borrowed(self.tokenizer_json.as_bytes()),
            ),
        ]
        .into_iter()
        .chain(chat)
        .chain([("model.safetensors", Cow::Borrowed(&self.weights[..]))])
        .collect()
    }

    /// Writes `config.json`, `model.safetensors` and `tokenizer.json` (and
    /// `chat_template.jinja` for an instruct model) into a folder (made if
    /// missing), the layout transformers reads.
    ///
    /// # Errors
    /// [`ModelError::Io`] naming the file that could not be written.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn write_dir(&self, dir: &std::path::Path) -> Result<(), ModelError> {
        let io = |path: &std::path::Path| {
            let path = path.display().to_string();
            move |source| ModelError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        for (name, bytes) in self.files() {
            std::fs::write(dir.join(name), bytes).map_err(io(&dir.join(name)))?;
        }
        Ok(())
    }

    /// The same folder as one zip archive (stored, not compressed: weights
    /// barely compress), its files under `folder/`: what a browser can
    /// download where it cannot write a folder.
    ///
    /// # Errors
    /// [`ModelError::Archive`] when the archive cannot be written, which for
    /// a folder under 4 GiB held in memory does not happen.
    pub fn to_zip(&self, folder: &str) -> Result<Vec<u8>, ModelError> {
        use std::io::Write as _;
        let archive = |e: &dyn std::fmt::Display| ModelError::Archive(e.to_string());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(self.weights.len() as u64 >= u32::MAX as u64);
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, bytes) in self.files() {
            zip.start_file(format!("{folder}/{name}"), options)
                .map_err(|e| archive(&e))?;
            zip.write_all(&bytes).map_err(|e| archive(&e))?;
        }
        Ok(zip.finish().map_err(|e| archive(&e))?.into_inner())
    }
}

/// The text files of a model: its config, its tokenizer and its chat template.
#[derive(Debug, Clone)]
pub struct ModelText {
    /// `config.json`.
    pub config: LlamaConfig,
    /// `tokenizer.json`.
    pub tokenizer_json: String,
    /// The chat template of an instruct model; `None` for a plain model.
    pub chat_template: Option<String>,
}

impl ModelText {
    /// The tokenizer ([`Checkpoint::tokenizer`]).
    ///
    /// # Errors
    /// As [`Checkpoint::tokenizer`].
    pub fn tokenizer(&self) -> Result<Tokenizer, TokenizerError> {
        tokenizer_of(
            &self.config,
            &self.tokenizer_json,
            self.chat_template.as_deref(),
        )
    }
}

/// Files a person chose as a model: one GGUF file, or a Hugging Face
/// folder's text files and its weight file, borrowed.
enum Chosen<'f> {
    Gguf(&'f [u8]),
    Folder {
        text: Box<ModelText>,
        weights: &'f [u8],
    },
}

/// Which model `files` hold ([`Checkpoint::from_files`]).
fn chosen(files: &[(String, Vec<u8>)]) -> Result<Chosen<'_>, ModelError> {
    let is_gguf = |(name, bytes): &&(String, Vec<u8>)| {
        bytes.starts_with(gguf::MAGIC) || name.to_lowercase().ends_with(".gguf")
    };
    if let Some((_, bytes)) = files.iter().find(is_gguf) {
        return Ok(Chosen::Gguf(bytes));
    }
    let file = |name: &str| {
        files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, bytes)| bytes.as_slice())
    };
    let needed = |name: &str| file(name).ok_or_else(|| ModelError::MissingFile(name.into()));
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let config = LlamaConfig::from_json(&text(needed("config.json")?))?;
    let tokenizer_json = text(needed("tokenizer.json")?);
    let weights = needed("model.safetensors")?;
    let chat_template = match file(CHAT_TEMPLATE_FILE) {
        Some(bytes) => Some(text(bytes)),
        None => file("tokenizer_config.json").and_then(chat_template_of),
    };
    Ok(Chosen::Folder {
        text: Box::new(ModelText {
            config,
            tokenizer_json,
            chat_template,
        }),
        weights,
    })
}

/// The tokenizer of `tokenizer_json`, with the special tokens `config` names
/// taking precedence over the file's own, and the chat template.
fn tokenizer_of(
    config: &LlamaConfig,
    tokenizer_json: &str,
    chat_template: Option<&str>,
) -> Result<Tokenizer, TokenizerError> {
    let special = SpecialTokens {
        bos: config.bos_token_id,
        eos: config.eos_ids().first().copied(),
        pad: config.pad_token_id,
    };
    let tokenizer = Tokenizer::from_json(tokenizer_json)?.with_special(special);
    Ok(match chat_template {
        Some(source) => tokenizer.with_chat_template(source)?,
        None => tokenizer,
    })
}
