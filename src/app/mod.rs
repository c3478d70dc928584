//! The Leptos app: one page, a header and four panels, left to right as the
//! work flows (docs/UX.md): Tasks, Train, Remember, Try. The page loads the
//! model with one staged progress bar, then keeps everything in a [`Lab`];
//! the computation runs in the library and reports through signals.

use leptos::prelude::*;
use leptos::task::spawn_local;

mod actions;
mod base_model;
mod base_panel;
mod browser;
mod charts;
mod config;
mod device_check;
mod engine;
mod in_worker;
mod lab;
mod remember;
mod run;
mod runner;
mod tasks;
mod train;
mod try_panel;
mod worker;

pub use in_worker::{in_worker, serve as serve_worker};

use config::AppConfig;
use device_check::DeviceCheck;
use engine::Loading;
use lab::Lab;
use mose_lab::backend::{self, BackendKind};
use remember::RememberPanel;
use tasks::TasksPanel;
use train::TrainPanel;
use try_panel::TryPanel;

/// Where the page is.
#[derive(Clone)]
enum Phase {
    Loading(Loading),
    Ready(Box<Lab>),
    Failed(String),
}

/// The whole page.
#[component]
pub fn App() -> impl IntoView {
    let phase = RwSignal::new_local(Phase::Loading(Loading {
        stage: "Starting".into(),
        fraction: 0.0,
    }));
    spawn_local(async move {
        let config = AppConfig::default();
        let report = move |loading: Loading| phase.set(Phase::Loading(loading));
        match engine::load(&config, report).await {
            Ok((engine, restored)) => {
                let lab = Lab::new(config, engine, restored);
                lab.refresh_storage();
                lab.find_interrupted();
                phase.set(Phase::Ready(Box::new(lab)));
            }
            Err(why) => phase.set(Phase::Failed(why)),
        }
    });
    let state = move || match &*phase.read() {
        Phase::Loading(_) => "loading",
        Phase::Ready(_) => "ready",
        Phase::Failed(_) => "failed",
    };
    view! {
        <div class="app" data-testid="app" data-state=state>
            <header class="masthead">
                <div>
                    <h1>"MoSE Lab"</h1>
                    <p class="tagline">
                        "Teach a small language model your own tasks, one after another, and watch it remember."
                    </p>
                </div>
                <p class="privacy" data-testid="privacy">
                    "Everything runs on this device. After the page has loaded, nothing you type or train is sent anywhere."
                </p>
            </header>
            {move || match phase.get() {
                Phase::Loading(loading) => view! { <LoadingView loading=loading/> }.into_any(),
                Phase::Failed(why) => view! {
                    <div class="load-failed" role="alert">
                        <h2>"MoSE Lab could not start"</h2>
                        <p data-testid="load-error">{why}</p>
                    </div>
                }.into_any(),
                Phase::Ready(lab) => {
                    provide_context(*lab);
                    view! { <Workspace/> }.into_any()
                }
            }}
        </div>
    }
}

/// The progress bar while loading.
#[component]
fn LoadingView(loading: Loading) -> impl IntoView {
    view! {
        <div class="loading" role="status" aria-live="polite">
            <p data-testid="loading-stage">{loading.stage.clone()}</p>
            <progress data-testid="loading-progress" max="1" value=loading.fraction
                aria-label="Loading MoSE Lab"></progress>
        </div>
    }
}

/// The header bar and the four panels.
#[component]
fn Workspace() -> impl IntoView {
    view! {
        <DeviceBar/>
        <Messages/>
        <main class="panels">
            <TasksPanel/>
            <TrainPanel/>
            <RememberPanel/>
            <TryPanel/>
        </main>
        <footer class="footer">
            <details>
                <summary>"Device check: train one adapted projection here and see the speed"</summary>
                <DeviceCheckLauncher/>
            </details>
        </footer>
    }
}

/// Runs the device check only when asked.
#[component]
fn DeviceCheckLauncher() -> impl IntoView {
    let open = RwSignal::new(false);
    move || {
        if open.get() {
            view! { <DeviceCheck/> }.into_any()
        } else {
            view! { <button data-testid="open-device-check" on:click=move |_| open.set(true)>"Run the device check"</button> }.into_any()
        }
    }
}

/// The device, the storage meter, and the project's file actions.
#[component]
fn DeviceBar() -> impl IntoView {
    let lab = expect_context::<Lab>();
    let engine = lab.engine();
    let backend = move || {
        lab.engine_changes.track();
        lab.engine().compute.kind.name()
    };
    let device = move || {
        lab.engine_changes.track();
        let compute = lab.engine().compute.clone();
        match (&compute.kind, &compute.adapter) {
            (BackendKind::Wgpu, Some(adapter)) => {
                let name = if adapter.name.is_empty() { "a GPU (name hidden by the browser)".to_string() } else { adapter.name.clone() };
                let software = if adapter.is_software() { " (software: correct, but slower than a real GPU)" } else { "" };
                view! { <span data-testid="device">"WebGPU: " <strong>{name}</strong>{software}</span> }.into_any()
            }
            _ => match backend::gpu_lost() {
                Some(why) => view! {
                    <span data-testid="device" class="cpu-mode"><strong>"CPU mode: slower."</strong>
                        {format!(" The GPU stopped working ({why}); reload the page to use it again.")}</span>
                }.into_any(),
                None => view! {
                    <span data-testid="device" class="cpu-mode"><strong>"CPU mode: slower, smaller model."</strong>
                        " This browser offered no WebGPU, so MoSE Lab computes on the CPU with shorter texts and fewer steps. "
                        "For your GPU: Chrome or Edge 113+ (on Linux turn on chrome://flags/#enable-unsafe-webgpu), Safari 26+, or Firefox 141+ on Windows."</span>
                }.into_any(),
            },
        }
    };
    let offline = match &engine.offline {
        Ok(()) => "Works offline.".to_string(),
        Err(why) => format!("No offline copy ({why})."),
    };
    let confirming = RwSignal::new(false);
    let storage = move || match lab.storage.get() {
        Some((used, quota)) => format!(
            "Storage: {:.1} MB used of {:.0} MB",
            used / 1e6,
            quota / 1e6
        ),
        None => "Storage: unknown".to_string(),
    };
    let export = move |_| match lab.export() {
        Ok(bytes) => browser::save_file(
            &bytes,
            "mose-lab-project.moselab",
            "application/octet-stream",
        ),
        Err(why) => lab.fail(why),
    };
    let import = move |ev| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        let files = browser::files_of(input.files());
        input.set_value("");
        spawn_local(async move {
            for file in files {
                match browser::read_file(&file).await {
                    Ok(bytes) => lab.report(lab.import(&bytes)),
                    Err(why) => lab.fail(format!("{} could not be read: {why}", file.name())),
                }
            }
        });
    };
    let export_unreadable = move |_| {
        spawn_local(async move {
            match lab.unreadable().await {
                Some(bytes) => browser::save_file(
                    &bytes,
                    "unreadable-project.moselab",
                    "application/octet-stream",
                ),
                None => lab.fail("There is no unreadable project stored."),
            }
        });
    };
    view! {
        <div class="device-bar">
            <p class="device">{device} " · backend " <span data-testid="backend">{backend}</span> " · " {offline}</p>
            <p class="storage"><span data-testid="storage">{storage}</span></p>
            <div class="file-actions">
                <button data-testid="export-project" on:click=export>"Export project"</button>
                <label class="button" for="import-project">"Import project"</label>
                <input id="import-project" class="visually-hidden" data-testid="import-project" type="file"
                    accept=".moselab,.safetensors" on:change=import/>
                {move || if confirming.get() {
                    view! {
                        <span class="confirm">"Delete the tasks, what was learned and the metrics from this browser? "
                            <button class="danger" data-testid="confirm-clear" on:click=move |_| { confirming.set(false); lab.clear(); }>"Delete everything"</button>
                            <button on:click=move |_| confirming.set(false)>"Keep"</button>
                        </span>
                    }.into_any()
                } else {
                    view! { <button data-testid="clear-storage" on:click=move |_| confirming.set(true)>"Delete everything…"</button> }.into_any()
                }}
                {move || lab.kept_aside.get().then(|| view! {
                    <button data-testid="export-unreadable" on:click=export_unreadable>"Export the unreadable project"</button>
                })}
            </div>
        </div>
    }
}

/// The latest notice and error, and "Undo".
#[component]
fn Messages() -> impl IntoView {
    let lab = expect_context::<Lab>();
    view! {
        <div class="messages">
            <p class="notice" data-testid="notice" role="status" aria-live="polite">
                {move || lab.notice.get()}
                {move || lab.undo.get().map(|u| view! {
                    " " <button data-testid="undo" on:click=move |_| lab.undo()>{format!("Undo {}", u.label)}</button>
                })}
            </p>
            <p class="error" data-testid="error" role="alert">
                {move || lab.error.get().map(|e| view! {
                    {e} " " <button class="dismiss" aria-label="Dismiss the message" on:click=move |_| lab.error.set(None)>"×"</button>
                })}
            </p>
        </div>
    }
}
