//! Every number of the app ([`AppConfig`]), the defaults each kind of
//! device gets, and the settings a person can change before the next task.

use mose_lab::model::generate::GenerationConfig;
use mose_lab::mose::Method;
use mose_lab::project::Project;
use serde::{Deserialize, Serialize};

/// Settings for one kind of device: a GPU trains the full setting, the CPU
/// fallback a smaller one (docs/UX.md: "CPU mode: slower, smaller model").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceDefaults {
    /// Optimiser steps per task.
    pub steps: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// Token ids per example.
    pub max_seq_len: usize,
    /// Training samples a starter pack task takes (a seeded random subset).
    pub pack_train_samples: usize,
    /// Held-out samples scored per task.
    pub heldout_samples: usize,
}

/// Every number of the app.
#[derive(Debug, Clone, PartialEq)]
pub struct AppConfig {
    /// The IndexedDB database.
    pub db_name: &'static str,
    /// Where the project is saved in it.
    pub project_key: &'static str,
    /// Where a stored project this build cannot read is kept, untouched.
    pub unreadable_key: &'static str,
    /// Where the place of an interrupted run is kept: `<key>.meta`,
    /// `<key>.checkpoint` and `<key>.learner.<k>`.
    pub run_key: &'static str,
    /// The embedded base model's folder in the served site.
    pub model_dir: &'static str,
    /// The starter packs' folder in the served site.
    pub packs_dir: &'static str,
    /// The folder of the models the app serves beside itself, listed in its
    /// `index.json` (absent when it serves none).
    pub served_dir: &'static str,
    /// Where the base model choice is saved (and files from disk the person
    /// keeps, under `<key>.file.<i>`).
    pub base_key: &'static str,
    /// The name projects record for the embedded model (the CLI's folder name).
    pub model_name: &'static str,
    /// On a GPU.
    pub gpu: DeviceDefaults,
    /// On the CPU.
    pub cpu: DeviceDefaults,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Share of a pasted or chosen task's samples held out (docs/UX.md: 85/15).
    pub heldout_fraction: f64,
    /// Seeds splits, subsets and initialisation.
    pub seed: u64,
    /// Sequences per forward pass when scoring.
    pub eval_batch: usize,
    /// A task with fewer training samples gets a warning.
    pub few_samples: usize,
    /// A task with fewer tokens gets a warning.
    pub few_tokens: usize,
    /// Share of a task's samples also in another task above which both warn.
    pub duplicate_share: f64,
    /// Quiet time after typing before the router runs, in milliseconds.
    pub route_debounce_ms: u32,
    /// How "Generate" continues a prompt (its length is the Try panel's default).
    pub generation: GenerationConfig,
    /// The most new tokens the Try panel lets a person ask for.
    pub most_new_tokens: usize,
    /// Steps between two saved checkpoints of a running task.
    pub checkpoint_every: usize,
    /// How often a paused task looks whether it may go on, in milliseconds.
    pub pause_poll_ms: u32,
    /// The script that starts the engine's Web Worker in CPU mode
    /// (`www/engine-worker.js`).
    pub worker_script: &'static str,
    /// The most memory a base model may need to load (its files and its
    /// weights in f32 twice, [`base_model::memory_needed`]): a wasm32 page
    /// addresses 4 GiB, and the app's own state needs some of it.
    pub most_model_memory: u64,
    /// After a failure on the GPU, how long to wait for the browser to say
    /// whether it lost the device, in milliseconds, and how often to look.
    pub gpu_lost_wait_ms: u32,
    /// See `gpu_lost_wait_ms`.
    pub gpu_lost_poll_ms: u32,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            db_name: "mose-lab",
            project_key: "project",
            unreadable_key: "project.unreadable",
            run_key: "run",
            model_dir: "model",
            packs_dir: "packs",
            served_dir: "served",
            base_key: "base",
            model_name: "model",
            gpu: DeviceDefaults {
                steps: 60,
                batch_size: 8,
                max_seq_len: 128,
                pack_train_samples: 400,
                heldout_samples: 48,
            },
            cpu: DeviceDefaults {
                steps: 30,
                batch_size: 4,
                max_seq_len: 64,
                pack_train_samples: 160,
                heldout_samples: 24,
            },
            learning_rate: 3e-3,
            heldout_fraction: 0.15,
            seed: 0,
            eval_batch: 16,
            few_samples: 8,
            few_tokens: 1500,
            duplicate_share: 0.5,
            route_debounce_ms: 300,
            generation: GenerationConfig {
                max_new_tokens: 48,
                temperature: 0.8,
                top_k: Some(40),
                top_p: 0.95,
                repetition_penalty: 1.1,
                stop: Vec::new(),
                stop_at_eos: true,
                seed: 0,
                merge_adapter: true,
            },
            most_new_tokens: 512,
            checkpoint_every: 10,
            pause_poll_ms: 100,
            worker_script: "./engine-worker.js",
            most_model_memory: 3_500_000_000,
            gpu_lost_wait_ms: 500,
            gpu_lost_poll_ms: 50,
        }
    }
}
/// The settings a person can change before learning the next task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Steps per task.
    pub steps: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Sequences per step.
    pub batch_size: usize,
    /// Rank of each sub-expert.
    pub rank: usize,
    /// New sub-experts per site for each task.
    pub experts_per_task: usize,
    /// Held-out samples scored per task.
    pub heldout: usize,
    /// Token ids per example (fixed once learning starts).
    pub max_seq_len: usize,
    /// Train plain LoRA on the same tasks, to compare.
    pub compare_lora: bool,
}

/// The settings panel's values for `project`.
pub(super) fn settings_of(project: &Project, defaults: DeviceDefaults) -> Settings {
    Settings {
        steps: project.train.steps_per_task,
        learning_rate: project.train.learning_rate,
        batch_size: project.train.batch_size,
        rank: project.mose.rank,
        experts_per_task: project.mose.new_experts_per_task,
        heldout: defaults.heldout_samples,
        max_seq_len: project.data.max_seq_len,
        compare_lora: project.trained.is_empty() || project.trained(Method::SeqLora).is_some(),
    }
    .clamped()
}

impl Settings {
    /// The settings with every count at least 1.
    pub fn clamped(self) -> Self {
        Self {
            steps: self.steps.max(1),
            batch_size: self.batch_size.max(1),
            rank: self.rank.max(1),
            experts_per_task: self.experts_per_task.max(1),
            heldout: self.heldout.max(1),
            max_seq_len: self.max_seq_len.max(2),
            ..self
        }
    }
}
