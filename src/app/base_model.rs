//! The base model a project is made on (docs/UX.md, "The base model"): the
//! embedded one, a model the app serves beside itself (listed in
//! `served/index.json`), or files a person opens from disk (one GGUF file, or
//! a Hugging Face folder's files). The choice is saved so a reload loads the
//! same model; files from disk are kept in the browser's storage only when
//! the person asks, with their size shown.

use burn::module::Module as _;
use burn::tensor::Device;
use mose_lab::backend::Compute;
use mose_lab::model::generate::{GenerationConfig, generate};
use mose_lab::model::{FrozenBase, Llama, LlamaConfig, LoadProgress, LoadedModel};
use mose_lab::mose::{BACKGROUND_FILE, Background};
use mose_lab::project::BaseModel;
use mose_lab::tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};

use super::browser::{self, Store};
use super::config::AppConfig;

/// Files by name, as a person picks them or the app downloads them.
pub type Files = Vec<(String, Vec<u8>)>;

/// Where the base model comes from; saved so that a reload loads the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BaseSource {
    /// The small model shipped with the app.
    Embedded,
    /// A model file the app serves beside itself.
    Served {
        /// Its name, as the list gives it.
        name: String,
        /// Its file in the served folder.
        file: String,
    },
    /// Files opened from disk.
    Disk {
        /// The name projects record.
        name: String,
        /// Their total size in bytes.
        bytes: u64,
        /// Whether they are kept in this browser's storage.
        kept: bool,
    },
}

impl BaseSource {
    /// Where it came from, in words.
    pub fn origin(&self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Served { .. } => "served by this app",
            Self::Disk { kept: true, .. } => "from disk, kept in this browser",
            Self::Disk { kept: false, .. } => "from disk, not kept",
        }
    }
}

/// One model `served/index.json` lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServedModel {
    /// Its name, which projects record.
    pub name: String,
    /// The file in the served folder.
    pub file: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// One line about it.
    pub description: String,
}

/// The base model loaded on the device, with what comes with it.
pub struct Base {
    /// Where it came from.
    pub source: BaseSource,
    /// The frozen model.
    pub model: Llama,
    /// Its shape.
    pub model_config: LlamaConfig,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Its `tokenizer.json` as loaded, for the model folder a learned task
    /// exports to.
    pub tokenizer_json: String,
    /// Its chat template as loaded (none for a plain model).
    pub chat_template: Option<String>,
    /// The identity projects record.
    pub identity: BaseModel,
    /// The statistics of the base model's own text its files carry, for the
    /// router's "none of these" (without them, a project on it routes
    /// without the background: writing the texts in a page takes too long).
    pub background: Option<Background>,
    /// Its number of weights.
    pub parameters: usize,
}

impl Base {
    /// The model in `files` ([`LoadedModel::from_files`], one tensor at a
    /// time, with a `background.safetensors` among them adopted), on
    /// `compute`'s device, its kernels warmed up by generating two tokens;
    /// `progress` hears of each tensor.
    ///
    /// # Errors
    /// What is wrong with the files, or the device's failure, in words.
    pub async fn open(
        files: &Files,
        name: &str,
        source: BaseSource,
        compute: &Compute,
        progress: impl FnMut(LoadProgress),
    ) -> Result<Self, String> {
        let background = files
            .iter()
            .find(|(n, _)| n == BACKGROUND_FILE)
            .and_then(|(_, bytes)| Background::from_bytes(bytes).ok());
        let loaded = LoadedModel::from_files(files, &compute.device, progress)
            .await
            .map_err(|e| e.to_string())?;
        let tokenizer = loaded.text.tokenizer().map_err(|e| e.to_string())?;
        let identity = BaseModel::of_loaded(name, &loaded);
        let warm = GenerationConfig {
            max_new_tokens: 2,
            ..GenerationConfig::default()
        };
        generate(
            &loaded.model,
            &tokenizer,
            "The",
            &warm,
            &compute.device,
            |_| {},
        )
        .await
        .map_err(|e| gpu_failed(&e.to_string()))?;
        let LoadedModel { model, text, .. } = loaded;
        Ok(Self {
            source,
            parameters: model.num_params(),
            model,
            model_config: text.config,
            tokenizer,
            tokenizer_json: text.tokenizer_json,
            chat_template: text.chat_template,
            identity,
            background,
        })
    }

    /// The model as runs take it on `device`: model, pad id and device.
    pub fn frozen<'a>(&'a self, device: &'a Device) -> FrozenBase<'a> {
        FrozenBase::new(&self.model, &self.tokenizer, device)
    }

    /// What it is, in words: "SmolLM2-135M-Instruct (served by this app,
    /// 134.5 M weights)".
    pub fn describe(&self) -> String {
        format!(
            "{} ({}, {:.1} M weights)",
            self.identity.name,
            self.source.origin(),
            self.parameters as f64 / 1e6
        )
    }
}

/// The device failed while running the model.
pub fn gpu_failed(e: &str) -> String {
    format!(
        "the device failed while running the model ({e}). Reload the page; if it fails again, \
         close other GPU-heavy tabs, or turn WebGPU off to use CPU mode"
    )
}

/// The name a model opened from disk records: a GGUF file's name without
/// `.gguf`, else "model from disk".
pub fn disk_name(files: &Files) -> String {
    files
        .iter()
        .find_map(|(n, _)| {
            let lower = n.to_lowercase();
            lower
                .ends_with(".gguf")
                .then(|| n[..n.len() - 5].to_string())
        })
        .unwrap_or_else(|| "model from disk".into())
}

/// The models the app serves, or none when it serves none (the list is
/// optional: `scripts/serve.sh` writes it where it has the files).
pub async fn served_models(config: &AppConfig) -> Vec<ServedModel> {
    let Ok(bytes) =
        browser::download(&format!("{}/index.json", config.served_dir), |_, _| {}).await
    else {
        return Vec::new();
    };
    serde_json::from_slice(&bytes).unwrap_or_default()
}

/// The model a page starts on. The saved choice, when there is one (a choice
/// that cannot be read is the embedded model). With none, the embedded model
/// under a project saved before the choice existed (its states fit it);
/// otherwise the first served model on a hardware GPU, and the embedded model
/// on the CPU or a software adapter (SwiftShader, lavapipe), where one
/// training step of a 135 M model takes tens of seconds.
pub async fn starting_source(
    config: &AppConfig,
    store: Option<&Store>,
    served: &[ServedModel],
    compute: &Compute,
) -> BaseSource {
    if let Some(store) = store {
        match store.get(config.base_key).await {
            Ok(Some(bytes)) => {
                return serde_json::from_slice(&bytes).unwrap_or(BaseSource::Embedded);
            }
            Ok(None) if matches!(store.get(config.project_key).await, Ok(Some(_))) => {
                return BaseSource::Embedded;
            }
            Err(_) => return BaseSource::Embedded,
            Ok(None) => {}
        }
    }
    let hardware_gpu = compute.adapter.as_ref().is_some_and(|a| !a.is_software());
    match served.first() {
        Some(model) if hardware_gpu => BaseSource::Served {
            name: model.name.clone(),
            file: model.file.clone(),
        },
        _ => BaseSource::Embedded,
    }
}

/// Saves the choice, and for files from disk that the person keeps, the
/// files under `<base_key>.file.<i>` (earlier kept files are deleted first).
///
/// # Errors
/// The storage's error (the quota is full, say).
pub async fn save_source(
    config: &AppConfig,
    store: &Store,
    source: &BaseSource,
    files: &Files,
) -> Result<(), String> {
    forget_files(config, store).await?;
    if matches!(source, BaseSource::Disk { kept: true, .. }) {
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        let list = serde_json::to_vec(&names).map_err(|e| e.to_string())?;
        for (i, (_, bytes)) in files.iter().enumerate() {
            store
                .put(&format!("{}.file.{i}", config.base_key), bytes)
                .await?;
        }
        store
            .put(&format!("{}.files", config.base_key), &list)
            .await?;
    }
    let bytes = serde_json::to_vec(source).map_err(|e| e.to_string())?;
    store.put(config.base_key, &bytes).await
}

/// Deletes the kept files, if any.
///
/// # Errors
/// The storage's error.
pub async fn forget_files(config: &AppConfig, store: &Store) -> Result<(), String> {
    let key = format!("{}.files", config.base_key);
    let count = match store.get(&key).await? {
        Some(bytes) => serde_json::from_slice::<Vec<String>>(&bytes)
            .map(|names| names.len())
            .unwrap_or(0),
        None => return Ok(()),
    };
    store.delete(&key).await?;
    for i in 0..count {
        store
            .delete(&format!("{}.file.{i}", config.base_key))
            .await?;
    }
    Ok(())
}

/// The files of `source`: downloaded from the app (embedded, served) or
/// read from storage (kept files from disk), reporting bytes received.
///
/// # Errors
/// Why they cannot be had, in words that say what to do.
pub async fn files_of(
    source: &BaseSource,
    config: &AppConfig,
    store: Option<&Store>,
    on_weights: impl FnMut(f64, f64) + 'static,
) -> Result<Files, String> {
    let fetch = |path: String| async move { browser::download(&path, |_, _| {}).await };
    match source {
        BaseSource::Embedded => {
            let dir = config.model_dir;
            let mut files = Vec::new();
            for name in ["config.json", "tokenizer.json"] {
                files.push((name.into(), fetch(format!("{dir}/{name}")).await?));
            }
            let weights =
                browser::download(&format!("{dir}/model.safetensors"), on_weights).await?;
            files.push(("model.safetensors".into(), weights));
            // Optional: without it the first task writes the texts itself.
            if let Ok(bytes) = fetch(format!("{dir}/{BACKGROUND_FILE}")).await {
                files.push((BACKGROUND_FILE.into(), bytes));
            }
            Ok(files)
        }
        BaseSource::Served { file, .. } => {
            let path = format!("{}/{file}", config.served_dir);
            let bytes = browser::download(&path, on_weights).await?;
            Ok(vec![(file.clone(), bytes)])
        }
        BaseSource::Disk { name, kept, .. } => {
            let missing = || {
                format!("{name} was opened from disk and not kept in this browser; open it again")
            };
            let store = store.filter(|_| *kept).ok_or_else(missing)?;
            let list = store
                .get(&format!("{}.files", config.base_key))
                .await?
                .ok_or_else(missing)?;
            let names: Vec<String> = serde_json::from_slice(&list).map_err(|e| e.to_string())?;
            let mut files = Vec::with_capacity(names.len());
            for (i, n) in names.into_iter().enumerate() {
                let bytes = store
                    .get(&format!("{}.file.{i}", config.base_key))
                    .await?
                    .ok_or_else(missing)?;
                files.push((n, bytes));
            }
            Ok(files)
        }
    }
}

/// The name a source's model records.
pub fn name_of(source: &BaseSource, config: &AppConfig) -> String {
    match source {
        BaseSource::Embedded => config.model_name.into(),
        BaseSource::Served { name, .. } | BaseSource::Disk { name, .. } => name.clone(),
    }
}

/// The memory a page needs to load the model in `files`, in bytes: the
/// files, the weights in f32 on the device (or in memory, on the CPU), and
/// the largest tensor twice while it is read and laid out
/// ([`LoadedModel::from_files`]). `None` when the files do not say.
pub fn memory_needed(files: &Files) -> Option<u64> {
    let held: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    let sizes: Vec<u64> = files.iter().find_map(|(name, bytes)| {
        if let Ok(gguf) = mose_lab::model::gguf::Gguf::parse(bytes) {
            return Some(gguf.tensors().iter().map(|t| t.n_elements * 4).collect());
        }
        (name == "model.safetensors")
            .then(|| safetensors::SafeTensors::read_metadata(bytes).ok())
            .flatten()
            .map(|(_, meta)| {
                meta.tensors()
                    .values()
                    .map(|t| t.shape.iter().product::<usize>() as u64 * 4)
                    .collect()
            })
    })?;
    let largest = sizes.iter().copied().max().unwrap_or(0);
    Some(held + sizes.iter().sum::<u64>() + 2 * largest)
}

/// A size in MB, for the page.
pub fn megabytes(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1e6)
}
