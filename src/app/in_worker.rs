//! The engine's side of its Web Worker (`worker.rs` says why there is one):
//! it opens the base model the page sends, on the CPU, and learns the tasks
//! the page asks for with the same run the page would (`runner.rs`), one
//! message at a time; "pause" and "cancel" apply at once.

use std::cell::Cell;
use std::rc::Rc;

use futures_channel::mpsc::unbounded;
use futures_util::StreamExt as _;
use mose_lab::backend::{self, Compute};
use mose_lab::project::Project;
use mose_lab::session::open_learners;
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::*;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use super::base_model::Base;
use super::browser;
use super::lab::Control;
use super::runner::{self, ResumeBytes, RunEnd, RunEvent, RunHost, RunInput, RunJob};
use super::worker::{FromWorker, ToWorker, decode, encode};

/// Whether this module runs in a dedicated worker rather than a page.
pub fn in_worker() -> bool {
    js_sys::global().is_instance_of::<DedicatedWorkerGlobalScope>()
}

/// Listens to the page until the worker is terminated.
pub fn serve() {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let control = Rc::new(Cell::new(Control::Run));
    let (queue, mut queued) = unbounded();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new({
        let (scope, control) = (scope.clone(), control.clone());
        move |event: MessageEvent| match decode::<ToWorker>(&event.data()) {
            Ok((ToWorker::Control(asked), _)) => control.set(asked),
            Ok(message) => {
                let _ = queue.unbounded_send(message);
            }
            Err(why) => post(
                &scope,
                &FromWorker::Broken(format!("the page sent {why}")),
                &[],
            ),
        }
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The handler lives as long as the worker.
    on_message.forget();
    let worker = Engine {
        scope: scope.clone(),
        control,
        compute: backend::cpu(),
        base: None,
    };
    wasm_bindgen_futures::spawn_local(async move {
        let mut worker = worker;
        while let Some((message, parts)) = queued.next().await {
            worker.handle(message, parts).await;
        }
    });
    post(&scope, &FromWorker::Ready, &[]);
}

/// What the worker holds.
struct Engine {
    scope: DedicatedWorkerGlobalScope,
    control: Rc<Cell<Control>>,
    compute: Compute,
    base: Option<Base>,
}

impl Engine {
    async fn handle(&mut self, message: ToWorker, parts: Vec<Vec<u8>>) {
        match message {
            ToWorker::Open {
                name,
                source,
                files,
            } => {
                self.base = None;
                let files: Vec<_> = files.into_iter().zip(parts).collect();
                let opened = Base::open(&files, &name, source, &self.compute, |_| {}).await;
                let reply = match opened {
                    Ok(base) => {
                        self.base = Some(base);
                        FromWorker::Opened
                    }
                    Err(why) => FromWorker::OpenFailed(why),
                };
                post(&self.scope, &reply, &[]);
                self.tell_memory();
            }
            ToWorker::Learn(job) => {
                let (reply, project) = self.learn(job, parts).await;
                self.tell_memory();
                let part: Vec<&[u8]> = project.iter().map(Vec::as_slice).collect();
                post(&self.scope, &reply, &part);
            }
            ToWorker::Control(asked) => self.control.set(asked),
        }
    }

    fn tell_memory(&self) {
        let bytes = browser::wasm_memory_bytes();
        post(&self.scope, &FromWorker::Memory(bytes), &[]);
    }

    /// Learns the task `job` asks for; the reply, and the learned project's
    /// file when learned.
    async fn learn(&self, job: RunJob, parts: Vec<Vec<u8>>) -> (FromWorker, Option<Vec<u8>>) {
        let Some(base) = &self.base else {
            return (
                FromWorker::Unavailable("the worker has no base model open".into()),
                None,
            );
        };
        let mut parts = parts.into_iter();
        let project = match Project::from_bytes(&parts.next().unwrap_or_default()) {
            Ok(project) => project,
            Err(e) => return (FromWorker::Unavailable(e.to_string()), None),
        };
        let resume = parts.next().map(|checkpoint| ResumeBytes {
            checkpoint,
            finished: parts.collect(),
        });
        let device = &self.compute.device;
        let learners = match open_learners(&project, &base.model_config, device) {
            Ok(learners) => learners,
            Err(e) => return (FromWorker::Unavailable(e.to_string()), None),
        };
        let input = RunInput {
            job,
            project,
            resume,
        };
        let host = Host {
            scope: &self.scope,
            control: &self.control,
        };
        match runner::learn(base, device, input, learners, &host).await {
            Ok(RunEnd::Learned { task, project, .. }) => match project.to_bytes() {
                Ok(bytes) => (FromWorker::Learned(task), Some(bytes)),
                Err(e) => (FromWorker::Failed(e.to_string()), None),
            },
            Ok(RunEnd::Cancelled) => (FromWorker::Cancelled, None),
            Err(why) => (FromWorker::Failed(why), None),
        }
    }
}

/// A run's host in the worker: events and kept parts go to the page.
struct Host<'a> {
    scope: &'a DedicatedWorkerGlobalScope,
    control: &'a Cell<Control>,
}

impl RunHost for Host<'_> {
    fn event(&self, event: RunEvent) {
        post(self.scope, &FromWorker::Event(event), &[]);
    }

    fn control(&self) -> Control {
        self.control.get()
    }

    async fn keep(&self, part: String, bytes: Vec<u8>) {
        post(self.scope, &FromWorker::Keep(part), &[&bytes]);
    }
}

/// Posts `message` to the page; a page that is gone hears nothing.
fn post(scope: &DedicatedWorkerGlobalScope, message: &FromWorker, parts: &[&[u8]]) {
    let (data, transfer) = encode(message, parts);
    let _ = scope.post_message_with_transfer(&data, &transfer);
}
