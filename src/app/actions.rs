//! What a person does to the project, on [`Lab`]: add, rename, move and
//! delete tasks (the library's task edits, with the app's lock, undo and
//! storage), start over, change the base model, import and export, and
//! delete everything stored.

use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use mose_lab::backend::{self, Compute};
use mose_lab::data::DataError;
use mose_lab::export::{Exported, export};
use mose_lab::model::LoadProgress;
use mose_lab::mose::{Learner, Method};
use mose_lab::project::{Project, ProjectTask};
use mose_lab::tasks::{self, EditError};

use super::base_model::{self, Base, BaseSource, ServedModel};
use super::browser;
use super::config::settings_of;
use super::engine::{download_pack, empty_project, learners_of, open_project};
use super::lab::{Lab, TrainState, Undo};

/// A base model a person picks.
pub enum BaseChoice {
    /// The embedded model.
    Embedded,
    /// A model the app serves.
    Served(ServedModel),
    /// Files opened from disk, kept in this browser when `keep`.
    Disk {
        /// The files by name.
        files: base_model::Files,
        /// Whether the person asked to keep them.
        keep: bool,
    },
}

impl Lab {
    /// Changes the project, keeping the previous one for "Undo" under `label`.
    fn change_with_undo(self, label: &str, change: impl FnOnce(&mut Project)) {
        let before = self.project.get_untracked();
        self.project.update(change);
        self.undo.set(Some(Undo {
            label: label.to_string(),
            project: before,
        }));
        self.save();
    }

    /// Puts `project` in place of the current one, with its learners, the
    /// settings it implies and an empty loss chart; "Undo" (labelled
    /// `label`) brings the current one back.
    fn replace(self, label: &str, project: Project, learners: Vec<Learner>) {
        let before = self.project.get_untracked();
        self.settings
            .set(settings_of(&project, self.engine().defaults));
        self.learners.set_value(learners);
        self.losses.set(Vec::new());
        self.project.set(project);
        self.undo.set(Some(Undo {
            label: label.to_string(),
            project: before,
        }));
    }

    /// Puts back the project the last destructive change replaced.
    pub fn undo(self) {
        let Some(undo) = self.undo.get_untracked() else {
            return;
        };
        if self.busy() {
            self.fail("Wait until the task being learned is done, then undo.");
            return;
        }
        match learners_of(&undo.project, &self.engine()) {
            Ok(learners) => {
                self.learners.set_value(learners);
                self.project.set(undo.project);
                self.undo.set(None);
                self.tell(format!("Undone: {}.", undo.label));
                self.save();
            }
            Err(why) => self.fail(format!("That cannot be undone: {why}")),
        }
    }

    /// Adds a task from text a person pasted or chose.
    pub fn add_text_task(self, name: &str, bytes: &[u8]) -> Result<(), String> {
        let seed = self.config.with_value(|c| c.seed);
        let task = self
            .project
            .with_untracked(|p| tasks::text_task(p, name, bytes, seed))
            .map_err(|e| edit_message(&e))?;
        self.push_task(task)
    }

    /// Adds starter pack `name` as a task: a seeded subset of its training
    /// samples and its whole held-out split (cut to the held-out setting
    /// when it is first scored).
    pub async fn add_pack_task(self, name: &str) -> Result<(), String> {
        let engine = self.engine();
        let Some(info) = engine.packs.iter().find(|p| p.name == name) else {
            return Err(format!("There is no starter pack {name}."));
        };
        let config = self.config.get_value();
        self.pack_loading.set(Some(info.title.clone()));
        let downloaded = download_pack(&config, info).await;
        self.pack_loading.set(None);
        let (train, test) = downloaded?;
        let (keep, seed) = (engine.defaults.pack_train_samples, config.seed);
        let task = self
            .project
            .with_untracked(|p| tasks::pack_task(p, &info.title, &train, &test, keep, seed))
            .map_err(|e| edit_message(&e))?;
        self.push_task(task)
    }

    fn push_task(self, task: ProjectTask) -> Result<(), String> {
        let name = task.name.clone();
        let mut project = self.project.get_untracked();
        tasks::add_task(&mut project, task, &self.engine().base.tokenizer)
            .map_err(|e| edit_message(&e))?;
        self.project.set(project);
        self.tell(format!("Added the task {name}."));
        self.save();
        Ok(())
    }

    /// Renames task `index` (not yet learned).
    pub fn rename_task(self, index: usize, name: &str) -> Result<(), String> {
        self.edit(|p| tasks::rename_task(p, index, name))
    }

    /// Moves task `index` by `by` places (both ends not yet learned).
    pub fn move_task(self, index: usize, by: isize) -> Result<(), String> {
        self.edit(|p| tasks::move_task(p, index, by))
    }

    /// Deletes task `index` (not yet learned); "Undo" brings it back.
    pub fn delete_task(self, index: usize) -> Result<(), String> {
        let before = self.project.get_untracked();
        let name = self.edit(|p| tasks::delete_task(p, index).map(|t| t.name))?;
        self.undo.set(Some(Undo {
            label: format!("deleting {name}"),
            project: before,
        }));
        self.tell(format!("Deleted the task {name}."));
        Ok(())
    }

    /// Applies `edit` to the task list, unless a task is being learned or
    /// `edit` refuses; saves the project when it changed.
    fn edit<T>(self, edit: impl FnOnce(&mut Project) -> Result<T, EditError>) -> Result<T, String> {
        if self.busy() {
            return Err("The task list is fixed while a task is being learned.".into());
        }
        let mut project = self.project.get_untracked();
        let done = edit(&mut project).map_err(|e| edit_message(&e))?;
        if self.project.with_untracked(|p| *p != project) {
            self.project.set(project);
            self.save();
        }
        Ok(done)
    }

    /// Forgets everything learned, keeping the tasks ("Undo" brings it back).
    pub fn start_over(self) {
        if self.busy() {
            return;
        }
        self.change_with_undo("starting over", |p| p.trained.clear());
        self.learners.set_value(Vec::new());
        self.losses.set(Vec::new());
        self.tell("Everything learned is forgotten; the tasks are kept.");
    }

    /// Why the base model cannot change now, if it cannot: a task is being
    /// learned, or the project has learned tasks on this model.
    pub fn base_locked(self) -> Option<String> {
        if self.busy() {
            return Some("Wait until the task being learned is done.".into());
        }
        self.project.with(|p| p.learned() > 0).then(|| {
            "The base model can change only before the first task is learned: start over \
                 (or export this project first) to use another one."
                .into()
        })
    }

    /// Makes `choice` the base model: loads it on the device, and on
    /// success starts the project over on it, keeping its tasks (a project
    /// kept aside because it was made on that model opens instead), and
    /// saves the choice so that a reload loads the same model.
    pub async fn choose_base(self, choice: BaseChoice) -> Result<(), String> {
        if let Some(why) = self.base_locked() {
            return Err(why);
        }
        let config = self.config.get_value();
        let engine = self.engine();
        let (source, files) = match choice {
            BaseChoice::Embedded => (BaseSource::Embedded, None),
            BaseChoice::Served(model) => (
                BaseSource::Served {
                    name: model.name,
                    file: model.file,
                },
                None,
            ),
            BaseChoice::Disk { files, keep } => (
                BaseSource::Disk {
                    name: base_model::disk_name(&files),
                    bytes: files.iter().map(|(_, b)| b.len() as u64).sum(),
                    kept: keep,
                },
                Some(files),
            ),
        };
        let loaded = self
            .load_base(&source, files, &engine.compute, "onto the device")
            .await;
        let (base, files) = loaded.map_err(|why| {
            format!(
                "{} cannot be the base model: {why}",
                base_model::name_of(&source, &config)
            )
        })?;
        let description = base.describe();
        let engine = Rc::new(engine.with_base(&config, base, &files));
        self.set_engine(engine.clone());
        let kept_aside = match &engine.store {
            Ok(store) => store.get(config.unreadable_key).await.ok().flatten(),
            Err(_) => None,
        };
        let (project, learners) = match kept_aside.and_then(|b| open_project(&b, &engine).ok()) {
            Some(opened) => {
                if let Ok(store) = &engine.store {
                    let _ = store.delete(config.unreadable_key).await;
                }
                self.kept_aside.set(false);
                opened
            }
            None => {
                let mut project = empty_project(&config, &engine);
                project.tasks = self.project.with_untracked(|p| p.tasks.clone());
                (project, Vec::new())
            }
        };
        self.settings.set(settings_of(&project, engine.defaults));
        self.learners.set_value(learners);
        self.losses.set(Vec::new());
        self.undo.set(None);
        self.project.set(project);
        self.save();
        if let Ok(store) = &engine.store {
            base_model::save_source(&config, store, &engine.base.source, &files).await?;
            self.kept_model.set(match engine.base.source {
                BaseSource::Disk {
                    bytes, kept: true, ..
                } => Some(bytes),
                _ => None,
            });
            self.refresh_storage();
        }
        self.tell(format!(
            "The base model is now {description}. Tasks learned from here on adapt it."
        ));
        Ok(())
    }

    /// After the browser took the GPU away: loads the base model again on
    /// the CPU, opens the learners there from the project, and goes on with
    /// the task the loss stopped (from its kept checkpoint, or from its
    /// first step when it had none). The project is untouched until the
    /// model is on the CPU; if that fails, a reload is the way on.
    pub async fn continue_on_cpu(self) -> Result<(), String> {
        let Some(lost) = self.gpu_lost.get_untracked() else {
            return Ok(());
        };
        if self.busy() {
            return Err("Wait until the model has loaded.".into());
        }
        let config = self.config.get_value();
        let engine = self.engine();
        let compute = backend::cpu();
        let source = engine.base.source.clone();
        let loaded = self.load_base(&source, None, &compute, "on the CPU").await;
        let name = base_model::name_of(&source, &config);
        let (base, files) = loaded.map_err(|why| {
            format!("{name} could not be loaded on the CPU: {why}. Reload the page to go on; the project is kept")
        })?;
        let engine = Rc::new(engine.moved(&config, compute, (base, &files), config.cpu));
        let learners = self.project.with_untracked(|p| learners_of(p, &engine))?;
        self.set_engine(engine);
        self.learners.set_value(learners);
        self.gpu_lost.set(None);
        self.train_state.set(TrainState::Idle);
        self.tell(format!(
            "{name} now runs on the CPU: slower, and nothing is lost."
        ));
        if self.interrupted.with_untracked(Option::is_some) {
            self.resume_interrupted();
        } else if lost.task.is_some() {
            self.learn_next();
        }
        Ok(())
    }

    /// Loads the base model `source` names on `compute`, from `files` when
    /// the person just chose them, else downloaded (or read from this
    /// browser's storage when kept), refusing one too large for a page;
    /// `base_loading` says how far it is (`onto` names where the tensors
    /// go) and is cleared at the end. Returns the model and its files.
    async fn load_base(
        self,
        source: &BaseSource,
        files: Option<base_model::Files>,
        compute: &Compute,
        onto: &str,
    ) -> Result<(Base, base_model::Files), String> {
        let config = self.config.get_value();
        let engine = self.engine();
        let name = base_model::name_of(source, &config);
        self.base_loading.set(Some(format!("Loading {name}")));
        let loaded = async {
            let files = match files {
                Some(files) => files,
                None => {
                    let name = name.clone();
                    let on_bytes = move |got: f64, total: f64| {
                        self.base_loading.set(Some(format!(
                            "Downloading {name}: {:.1} of {:.1} MB",
                            got / 1e6,
                            total / 1e6
                        )))
                    };
                    let store = engine.store.as_ref().ok();
                    base_model::files_of(source, &config, store, on_bytes).await?
                }
            };
            if let Some(needed) = base_model::memory_needed(&files)
                && needed > config.most_model_memory
            {
                return Err(format!(
                    "loading it takes about {:.1} GB of memory (its weights expanded to 32-bit floats), \
                     more than a browser page can hold ({:.1} GB): choose a smaller model",
                    needed as f64 / 1e9,
                    config.most_model_memory as f64 / 1e9
                ));
            }
            let on_tensors = |p: LoadProgress| {
                self.base_loading.set(Some(format!(
                    "Loading {name} {onto}: {} of {} tensors",
                    p.done, p.total
                )))
            };
            let base = Base::open(&files, &name, source.clone(), compute, on_tensors).await?;
            Ok((base, files))
        }
        .await;
        self.base_loading.set(None);
        loaded
    }

    /// Deletes the model files kept in this browser; the model stays loaded
    /// until the page is reloaded.
    pub async fn forget_kept_base(self) -> Result<(), String> {
        self.drop_kept_files().await?;
        self.refresh_storage();
        self.tell(
            "The model's files are deleted from this browser; after a reload, open them again to use it.",
        );
        Ok(())
    }

    /// Deletes kept model files and saves the choice as not kept.
    async fn drop_kept_files(self) -> Result<(), String> {
        let config = self.config.get_value();
        let engine = self.engine();
        let Ok(store) = &engine.store else {
            return Ok(());
        };
        base_model::forget_files(&config, store).await?;
        if let BaseSource::Disk { name, bytes, .. } = &engine.base.source {
            let source = BaseSource::Disk {
                name: name.clone(),
                bytes: *bytes,
                kept: false,
            };
            base_model::save_source(&config, store, &source, &Vec::new()).await?;
        }
        self.kept_model.set(None);
        Ok(())
    }

    /// The project as one file, for "Export".
    pub fn export(self) -> Result<Vec<u8>, String> {
        self.project
            .with_untracked(Project::to_bytes)
            .map_err(|e| format!("The project could not be written: {e}"))
    }

    /// Learned task `index` as a model of its own: MoSE's sub-experts and
    /// modulation for it folded into the base model's weights, as a zip of
    /// a Hugging Face folder (config.json, model.safetensors,
    /// tokenizer.json) named after the task. Returns the bytes and the
    /// file's name.
    pub async fn export_task_model(self, index: usize) -> Result<(Vec<u8>, String), String> {
        let engine = self.engine();
        let name = self
            .project
            .with_untracked(|p| p.tasks.get(index).map(|t| t.name.clone()))
            .ok_or("That task is gone; export another one.")?;
        let mose = self
            .learners
            .get_value()
            .into_iter()
            .find(|l| l.method() == Method::Mose)
            .ok_or("Learn a task first, then download it as a model.")?;
        let cannot = |e: &dyn std::fmt::Display| format!("{name} could not be exported: {e}.");
        let checkpoint = export(
            &engine.base.model,
            &mose,
            Exported::Task(index),
            &engine.compute.device,
        )
        .await
        .map_err(|e| cannot(&e))?
        .with_tokenizer(
            engine.base.tokenizer_json.clone(),
            engine.base.chat_template.clone(),
        );
        let folder = file_stem(&name);
        let bytes = checkpoint.to_zip(&folder).map_err(|e| cannot(&e))?;
        Ok((bytes, format!("{folder}.zip")))
    }

    /// Replaces the project with an exported one ("Undo" brings back the old one).
    pub fn import(self, bytes: &[u8]) -> Result<(), String> {
        if self.busy() {
            return Err("Wait until the task being learned is done, then import.".into());
        }
        let engine = self.engine();
        let (project, learners) = open_project(bytes, &engine)
            .map_err(|e| format!("That file cannot be imported: {e}."))?;
        let summary = format!(
            "Imported a project with {} tasks, {} learned.",
            project.tasks.len(),
            project.learned()
        );
        self.replace("the import", project, learners);
        self.save();
        self.tell(summary);
        Ok(())
    }

    /// Deletes the stored project and starts an empty one ("Undo" brings it back).
    pub fn clear(self) {
        if self.busy() {
            self.fail("Wait until the task being learned is done, then delete.");
            return;
        }
        let engine = self.engine();
        let config = self.config.get_value();
        self.replace(
            "deleting everything",
            empty_project(&config, &engine),
            Vec::new(),
        );
        self.kept_aside.set(false);
        spawn_local(async move {
            if let Ok(store) = &engine.store {
                for key in [config.project_key, config.unreadable_key] {
                    if let Err(why) = store.delete(key).await {
                        self.fail(why);
                    }
                }
            }
            if let Err(why) = self.drop_kept_files().await {
                self.fail(why);
            }
            self.storage.set(browser::storage_use().await);
        });
        self.tell("Everything stored in this browser is deleted.");
    }

    /// The project kept aside because this build could not read it.
    pub async fn unreadable(self) -> Option<Vec<u8>> {
        let engine = self.engine();
        let store = engine.store.as_ref().ok()?;
        let key = self.config.with_value(|c| c.unreadable_key);
        store.get(key).await.ok().flatten()
    }
}

/// A data error as a sentence that names the task.
pub(super) fn data_message(name: &str, e: &DataError) -> String {
    format!("{name}: {}", sentence(&e.to_string()))
}

/// An edit's refusal as the page says it: a sentence, a task's data error
/// as [`data_message`] says it.
fn edit_message(e: &EditError) -> String {
    match e {
        EditError::Data { task, source } => data_message(task, source),
        // It starts with the task's name, as the person wrote it.
        EditError::Learned { .. } => format!("{e}."),
        other => sentence(&other.to_string()),
    }
}

/// `text` with a capital and a full stop.
fn sentence(text: &str) -> String {
    let mut text = text.to_string();
    if let Some(first) = text.get(0..1) {
        text.replace_range(0..1, &first.to_uppercase());
    }
    format!("{text}.")
}

/// A task's name as a file or folder name: letters, digits, `-` and `_`
/// kept, runs of anything else one `-`, with `-mose` after it.
fn file_stem(name: &str) -> String {
    let mut stem = String::new();
    for c in name.chars() {
        match c.is_alphanumeric() || c == '_' || c == '-' {
            true => stem.push(c),
            false if !stem.ends_with('-') && !stem.is_empty() => stem.push('-'),
            false => {}
        }
    }
    let stem = stem.trim_end_matches('-');
    match stem.is_empty() {
        true => "task-mose".to_string(),
        false => format!("{stem}-mose"),
    }
}
