//! The engine's Web Worker, as the page sees it ([`EngineWorker`]), and the
//! messages both sides send.
//!
//! In CPU mode a training step is hundreds of milliseconds of computation
//! that cannot yield inside: on the page's thread, the page would paint a
//! few frames a second while learning. So in CPU mode the page starts a
//! dedicated worker running this same WebAssembly module (the page hands it
//! its compiled `WebAssembly.Module` and the URL of its JavaScript glue;
//! `www/engine-worker.js` starts it, and `main` sees it is in a worker and
//! runs `in_worker::serve`). The worker opens its own copy of the base model
//! from the files the page loaded, and learns each task there, reporting
//! the same events the page's own runs do (`runner.rs`). On the GPU the page
//! runs the task itself: there the device computes and the page's thread
//! only waits for it.
//!
//! Messages are plain `postMessage` calls: a JSON header (serde) and the
//! byte parts (files, checkpoints, the project) as transferred
//! `Uint8Array`s. No messaging crate fits better: gloo-worker encodes
//! everything with bincode into one copied buffer and starts its workers
//! from a script of its own, and this protocol is a handful of messages.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures_util::StreamExt as _;
use js_sys::{Array, Object, Reflect, Uint8Array};
use mose_lab::project::Project;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::*;
use web_sys::{ErrorEvent, MessageEvent, Worker, WorkerOptions, WorkerType};

use super::base_model::{BaseSource, Files};
use super::browser::describe;
use super::lab::Control;
use super::runner::{RunEvent, RunHost, RunInput, RunJob};

/// What the page asks of the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    /// Open this base model; the parts are the files' bytes, in order.
    Open {
        /// The name projects record.
        name: String,
        /// Where it comes from.
        source: BaseSource,
        /// The files' names.
        files: Vec<String>,
    },
    /// Learn the next task. Parts: the project file, then, when resuming,
    /// the checkpoint and the finished methods' states.
    Learn(RunJob),
    /// Run, pause or cancel the task being learned (applied at once, not
    /// queued behind the task).
    Control(Control),
}

/// What the worker tells the page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromWorker {
    /// It listens: messages posted before this would have been lost.
    Ready,
    /// The base model is open.
    Opened,
    /// The base model could not be opened, and why.
    OpenFailed(String),
    /// The worker cannot run, and why (its module did not start).
    Broken(String),
    /// The bytes of the worker's WebAssembly memory (the most it has held),
    /// after it opens a model or learns a task.
    Memory(f64),
    /// Progress of the task being learned.
    Event(RunEvent),
    /// Keep the part (the one byte part) of the stored run.
    Keep(String),
    /// Learned this task; the part is the project file.
    Learned(String),
    /// The person cancelled.
    Cancelled,
    /// The run failed, and why (the project is as it was).
    Failed(String),
    /// The worker has no base model to learn on, and why: the page runs
    /// the task itself.
    Unavailable(String),
}

/// A message and its byte parts, as one JavaScript array: the JSON header
/// first, then one `Uint8Array` per part. Returns it with the parts'
/// buffers, to transfer.
pub fn encode<T: Serialize>(message: &T, parts: &[&[u8]]) -> (Array, Array) {
    let data = Array::new();
    let transfer = Array::new();
    // Serialising these plain enums cannot fail.
    data.push(&JsValue::from_str(
        &serde_json::to_string(message).unwrap_or_default(),
    ));
    for part in parts {
        let bytes = Uint8Array::from(*part);
        transfer.push(&bytes.buffer());
        data.push(&bytes);
    }
    (data, transfer)
}

/// The message and byte parts [`encode`] made.
///
/// # Errors
/// What is wrong with `data`, in words.
pub fn decode<T: DeserializeOwned>(data: &JsValue) -> Result<(T, Vec<Vec<u8>>), String> {
    let data: &Array = data.dyn_ref().ok_or("a message that is not an array")?;
    let header = data.get(0).as_string().ok_or("a message with no header")?;
    let message = serde_json::from_str(&header).map_err(|e| e.to_string())?;
    let parts = (1..data.length())
        .map(|i| data.get(i).dyn_into::<Uint8Array>().map(|b| b.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|_| "a message part that is not bytes".to_string())?;
    Ok((message, parts))
}

/// How a task the worker learned ended.
pub enum WorkerEnd {
    /// Learned: the task's name, and the project with its new scores and states.
    Learned(String, Box<Project>),
    /// The person cancelled.
    Cancelled,
    /// It failed, and why.
    Failed(String),
    /// The worker could not take the task (no base model, or it stopped
    /// before starting it): the page runs it instead.
    Unavailable,
}

/// Where the worker's base model stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum BaseState {
    Opening,
    Open,
    Failed,
}

/// A message from the worker with its byte parts.
type Heard = (FromWorker, Vec<Vec<u8>>);

/// What the page's handlers share with [`EngineWorker`].
struct Shared {
    worker: Worker,
    /// Messages waiting for [`FromWorker::Ready`]; `None` once sent.
    outbox: RefCell<Option<Vec<(Array, Array)>>>,
    base: RefCell<BaseState>,
    /// Why the worker stopped, once it has.
    broken: RefCell<Option<String>>,
    /// What [`FromWorker::Memory`] said last.
    memory: Cell<f64>,
    /// The running task's channel.
    inbox: RefCell<Option<UnboundedSender<Heard>>>,
}

impl Shared {
    fn post(&self, (data, transfer): (Array, Array)) {
        if let Some(outbox) = self.outbox.borrow_mut().as_mut() {
            outbox.push((data, transfer));
            return;
        }
        if let Err(e) = self.worker.post_message_with_transfer(&data, &transfer) {
            self.stop(describe(e));
        }
    }

    fn heard(&self, message: FromWorker, parts: Vec<Vec<u8>>) {
        match message {
            FromWorker::Ready => {
                let waiting = self.outbox.borrow_mut().take().unwrap_or_default();
                for message in waiting {
                    self.post(message);
                }
            }
            FromWorker::Opened => *self.base.borrow_mut() = BaseState::Open,
            FromWorker::OpenFailed(_) => *self.base.borrow_mut() = BaseState::Failed,
            FromWorker::Broken(why) => self.stop(why),
            FromWorker::Memory(bytes) => self.memory.set(bytes),
            other => {
                if let Some(inbox) = self.inbox.borrow().as_ref() {
                    let _ = inbox.unbounded_send((other, parts));
                }
            }
        }
    }

    /// The worker is gone: a task it was learning fails with `why`.
    fn stop(&self, why: String) {
        self.broken.replace(Some(why.clone()));
        self.worker.terminate();
        if let Some(inbox) = self.inbox.borrow_mut().take() {
            let _ = inbox.unbounded_send((FromWorker::Failed(stopped(&why)), Vec::new()));
        }
    }
}

/// The page's handle on the engine's worker.
pub struct EngineWorker {
    shared: Rc<Shared>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(ErrorEvent)>,
}

#[wasm_bindgen]
extern "C" {
    /// This module's JavaScript glue, which the worker imports.
    #[wasm_bindgen(thread_local_v2, js_namespace = ["import", "meta"], js_name = url)]
    static GLUE_URL: String;
}

impl EngineWorker {
    /// Starts the worker from `script` (`www/engine-worker.js`) with this
    /// page's module.
    ///
    /// # Errors
    /// Why the browser refused to start it.
    pub fn start(script: &str) -> Result<Self, String> {
        let options = WorkerOptions::new();
        options.set_type(WorkerType::Module);
        let worker = Worker::new_with_options(script, &options).map_err(describe)?;
        let shared = Rc::new(Shared {
            worker: worker.clone(),
            outbox: RefCell::new(Some(Vec::new())),
            base: RefCell::new(BaseState::Opening),
            broken: RefCell::new(None),
            memory: Cell::new(0.0),
            inbox: RefCell::new(None),
        });
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new({
            let shared = shared.clone();
            move |event: MessageEvent| match decode::<FromWorker>(&event.data()) {
                Ok((message, parts)) => shared.heard(message, parts),
                Err(why) => shared.stop(format!("it sent {why}")),
            }
        });
        let on_error = Closure::<dyn FnMut(ErrorEvent)>::new({
            let shared = shared.clone();
            move |event: ErrorEvent| {
                // Handled here: not an error of the page's own.
                event.prevent_default();
                shared.stop(event.message());
            }
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        let start = Object::new();
        let glue = GLUE_URL.with(Clone::clone);
        let set = |key: &str, value: &JsValue| Reflect::set(&start, &key.into(), value);
        set("glue", &glue.into())
            .and_then(|_| set("module", &wasm_bindgen::module()))
            .and_then(|_| worker.post_message(&start))
            .map_err(describe)?;
        Ok(Self {
            shared,
            _on_message: on_message,
            _on_error: on_error,
        })
    }

    /// Whether the worker is still there (it stops when its module fails).
    pub fn running(&self) -> bool {
        self.shared.broken.borrow().is_none()
    }

    /// The bytes of the worker's WebAssembly memory, as it last said.
    pub fn memory_bytes(&self) -> f64 {
        self.shared.memory.get()
    }

    /// Whether the worker can take a task: running, and its base model
    /// opening or open.
    pub fn usable(&self) -> bool {
        self.shared.broken.borrow().is_none() && *self.shared.base.borrow() != BaseState::Failed
    }

    /// Opens the base model in `files` in the worker, in place of its last.
    pub fn open(&self, files: &Files, name: &str, source: &BaseSource) {
        self.shared.base.replace(BaseState::Opening);
        let message = ToWorker::Open {
            name: name.to_string(),
            source: source.clone(),
            files: files.iter().map(|(n, _)| n.clone()).collect(),
        };
        let parts: Vec<&[u8]> = files.iter().map(|(_, b)| b.as_slice()).collect();
        self.shared.post(encode(&message, &parts));
    }

    /// Tells the task being learned what the person asks.
    pub fn control(&self, control: Control) {
        self.shared.post(encode(&ToWorker::Control(control), &[]));
    }

    /// Learns `input` in the worker; `host` hears its events, keeps its
    /// checkpoints and is asked nothing (controls go by [`Self::control`]).
    pub async fn learn(&self, input: &RunInput, host: &impl RunHost) -> WorkerEnd {
        if !self.usable() {
            return WorkerEnd::Unavailable;
        }
        let project = match input.project.to_bytes() {
            Ok(bytes) => bytes,
            Err(e) => return WorkerEnd::Failed(e.to_string()),
        };
        let mut parts: Vec<&[u8]> = vec![&project];
        if let Some(resume) = &input.resume {
            parts.push(&resume.checkpoint);
            parts.extend(resume.finished.iter().map(Vec::as_slice));
        }
        let (sender, mut inbox): (_, UnboundedReceiver<Heard>) = unbounded();
        self.shared.inbox.replace(Some(sender));
        self.control(host.control());
        self.shared
            .post(encode(&ToWorker::Learn(input.job.clone()), &parts));
        let end = loop {
            let Some((message, mut parts)) = inbox.next().await else {
                break WorkerEnd::Failed(stopped("it stopped answering"));
            };
            match message {
                FromWorker::Event(event) => host.event(event),
                FromWorker::Keep(part) => host.keep(part, parts.pop().unwrap_or_default()).await,
                FromWorker::Learned(task) => {
                    break match Project::from_bytes(&parts.pop().unwrap_or_default()) {
                        Ok(project) => WorkerEnd::Learned(task, Box::new(project)),
                        Err(e) => WorkerEnd::Failed(stopped(&e.to_string())),
                    };
                }
                FromWorker::Cancelled => break WorkerEnd::Cancelled,
                FromWorker::Failed(why) => break WorkerEnd::Failed(why),
                FromWorker::Unavailable(_) => break WorkerEnd::Unavailable,
                FromWorker::Ready
                | FromWorker::Memory(_)
                | FromWorker::Opened
                | FromWorker::OpenFailed(_)
                | FromWorker::Broken(_) => {}
            }
        };
        self.shared.inbox.replace(None);
        end
    }
}

impl Drop for EngineWorker {
    fn drop(&mut self) {
        self.shared.worker.terminate();
    }
}

/// A failure of the worker itself, as the page says it (`run.rs` adds
/// what is kept).
fn stopped(why: &str) -> String {
    format!("The engine's worker stopped while learning ({why}); the project is as it was")
}
