//! A learned task taken elsewhere: the base model with one task's adapter
//! folded into its weights, as a Hugging Face model folder (`config.json`,
//! `model.safetensors`, `tokenizer.json`) that transformers loads as a plain
//! `LlamaForCausalLM` (and llama.cpp after its own conversion).
//!
//! At every adapted projection ([`Adapter::merge`](crate::model::Adapter::merge)):
//!
//! `W' = W diag(1 + m) + (alpha / r) sum_j w_j A_j B_j`
//!
//! with the task's modulation `m` and sub-expert weights `w_j` (for MoSE,
//! every sub-expert the task uses, its own and the earlier tasks' it reuses).
//! The exported model computes what the routed model computes when the
//! router picks that task alone; the frozen weights of every other tensor
//! are copied as they are. Weights are written as f32, and the config says so.

use std::collections::HashMap;

use burn::tensor::Device;

use crate::model::{Checkpoint, Llama, LlamaConfig, ModelError};
use crate::mose::Learner;

/// The safetensors header entries an export writes: `format` (transformers
/// reads PyTorch's), and where the weights came from.
const FORMAT: (&str, &str) = ("format", "pt");
const TASK_KEY: &str = "mose_lab.task";
const METHOD_KEY: &str = "mose_lab.method";

/// What is exported: one learned task of a routed method, or the one shared
/// adapter of a baseline that has no tasks of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exported {
    /// Task `t` (in learning order) of MoSE or LoRA per task.
    Task(usize),
    /// seq-lora's one adapter, as it stands after every task.
    Shared,
}

/// Why a task cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The task index is past the learned tasks.
    #[error(
        "task {task} is not learned: the state holds {learned} learned tasks; pick one of them or learn it first"
    )]
    NotLearned {
        /// The task asked for.
        task: usize,
        /// Tasks the state holds.
        learned: usize,
    },
    /// A routed method was asked for its shared adapter, or a shared one for a task.
    #[error("{method} keeps {holds}; export {ask}")]
    WrongKind {
        /// The state's method.
        method: &'static str,
        /// What the state holds.
        holds: &'static str,
        /// What to ask for instead.
        ask: &'static str,
    },
    /// Per-token routing (MoE-LoRA) has no single set of weights.
    #[error(
        "{method} mixes its LoRAs per token, which no single set of weights computes; export a mose, lora-per-task or seq-lora state"
    )]
    PerToken {
        /// The state's method.
        method: &'static str,
    },
    /// Writing the weights failed.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// The model part of an export: `config.json` and `model.safetensors`.
#[derive(Debug, Clone)]
pub struct MergedModel {
    /// The base model's config, saying the weights are f32.
    pub config: LlamaConfig,
    /// The weights with the adapter folded in, as safetensors (f32, HF
    /// names and layout); the header names the task and the method.
    pub weights: Vec<u8>,
}

impl MergedModel {
    /// The whole folder: these weights with the base model's tokenizer
    /// (its `tokenizer.json` as loaded) and chat template, which an adapter
    /// does not change.
    pub fn with_tokenizer(
        self,
        tokenizer_json: String,
        chat_template: Option<String>,
    ) -> Checkpoint {
        Checkpoint {
            config: self.config,
            weights: self.weights,
            tokenizer_json,
            chat_template,
        }
    }
}

/// The base `model` with `what` of `learner` folded into its weights.
///
/// # Errors
/// [`ExportError::NotLearned`] and [`ExportError::WrongKind`] for a choice
/// the state does not hold, [`ExportError::PerToken`] for MoE-LoRA, and
/// [`ExportError::Model`] when the device cannot hand a weight back.
pub async fn export(
    model: &Llama,
    learner: &Learner,
    what: Exported,
    device: &Device,
) -> Result<MergedModel, ExportError> {
    let method = learner.method();
    let route = match (what, method.is_routed()) {
        (Exported::Task(task), true) => {
            let learned = learner.tasks_learned();
            if task >= learned {
                return Err(ExportError::NotLearned { task, learned });
            }
            learner.oracle_route(task)
        }
        (Exported::Shared, false) => learner.oracle_route(0),
        (Exported::Task(_), false) => {
            return Err(ExportError::WrongKind {
                method: method.name(),
                holds: "one adapter for every task",
                ask: "the shared adapter",
            });
        }
        (Exported::Shared, true) => {
            return Err(ExportError::WrongKind {
                method: method.name(),
                holds: "one adapter per task",
                ask: "one task",
            });
        }
    };
    // Per-token routing (MoE-LoRA) is the adapter no single matrix merges.
    let per_token = || ExportError::PerToken {
        method: method.name(),
    };
    let mut merged = match learner.adapter(&route, device) {
        Some(adapter) => model.merged(&adapter).ok_or_else(per_token)?,
        None => model.clone(),
    };
    let name = match what {
        Exported::Task(task) => learner.task_names()[task].to_string(),
        Exported::Shared => "every task".to_string(),
    };
    let metadata = HashMap::from([
        (FORMAT.0.to_string(), FORMAT.1.to_string()),
        (TASK_KEY.to_string(), name),
        (METHOD_KEY.to_string(), method.name().to_string()),
    ]);
    let weights = merged.to_safetensors(Some(metadata)).await?;
    let mut config = model.config().clone();
    for key in ["dtype", "torch_dtype"] {
        config
            .other
            .insert(key.to_string(), serde_json::Value::from("float32"));
    }
    Ok(MergedModel { config, weights })
}
