//! The device check panel: which device this browser gives us (WebGPU or the
//! CPU fallback), then a short training run of one adapted projection with
//! its loss curve and speed (see `mose_lab::check`).

use leptos::prelude::*;
use leptos::task::spawn_local;
use mose_lab::backend::{self, BackendError, BackendKind, Compute};
use mose_lab::check::{self, CheckReport, CheckStep, DeviceCheckConfig};

/// Where the check is.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Detecting,
    Running,
    Done(CheckReport),
    Failed(String),
}

impl Phase {
    /// The value of `data-state`, which the end-to-end test reads.
    fn state(&self) -> &'static str {
        match self {
            Phase::Detecting => "detecting",
            Phase::Running => "running",
            Phase::Done(_) => "done",
            Phase::Failed(_) => "failed",
        }
    }

    fn busy(&self) -> bool {
        matches!(self, Phase::Detecting | Phase::Running)
    }
}

/// The devices found on this page, kept so a re-run does not detect again.
#[derive(Clone)]
struct Devices {
    gpu: Result<Compute, BackendError>,
}

/// The device check: detects the device on mount and runs the check on it.
#[component]
pub fn DeviceCheck() -> impl IntoView {
    let phase = RwSignal::new(Phase::Detecting);
    let devices: RwSignal<Option<Devices>, LocalStorage> = RwSignal::new_local(None);
    let current = RwSignal::new(BackendKind::Cpu);
    let steps = RwSignal::new(Vec::<CheckStep>::new());
    let config = StoredValue::new(DeviceCheckConfig::new());
    let total_steps = config.with_value(|config| config.steps);

    let launch = move |compute: Compute| {
        current.set(compute.kind);
        steps.set(Vec::new());
        phase.set(Phase::Running);
        spawn_local(async move {
            let config = config.get_value();
            let outcome = check::run(&config, &compute.device, |step| {
                steps.update(|all| all.push(step))
            })
            .await;
            phase.set(match outcome {
                Ok(report) => Phase::Done(report),
                Err(e) => Phase::Failed(format!(
                    "{e}. Reload the page to try again; if it fails again on the GPU, run the check on the CPU."
                )),
            });
        });
    };
    let run_on = move |kind: BackendKind| {
        if phase.get_untracked().busy() {
            return;
        }
        let Some(found) = devices.get_untracked() else {
            return;
        };
        launch(match (kind, found.gpu) {
            (BackendKind::Wgpu, Ok(gpu)) => gpu,
            _ => backend::cpu(),
        });
    };

    spawn_local(async move {
        let gpu = backend::gpu().await;
        let first = gpu.clone().unwrap_or_else(|_| backend::cpu());
        devices.set(Some(Devices { gpu }));
        launch(first);
    });

    let gpu_available =
        move || devices.with(|found| found.as_ref().is_some_and(|found| found.gpu.is_ok()));

    view! {
        <section class="panel" aria-labelledby="device-check-title">
            <h2 id="device-check-title">"Device check"</h2>
            <DeviceSummary devices=devices current=current/>
            <div class="check-status" data-testid="check-state" data-state=move || phase.with(Phase::state)
                role="status" aria-live="polite">
                {move || match phase.get() {
                    Phase::Detecting => "Looking for a GPU…".to_string(),
                    Phase::Running => format!(
                        "Training an adapter on the {}: step {} of {}",
                        current.get().name(),
                        steps.with(Vec::len),
                        total_steps
                    ),
                    Phase::Done(_) => "Finished: this device can train MoSE adapters.".to_string(),
                    Phase::Failed(message) => format!("The check failed: {message}"),
                }}
            </div>
            <LossChart steps=steps total_steps=total_steps/>
            {move || phase.with(|phase| match phase {
                Phase::Done(report) => Some(view! { <Results report=report.clone()/> }),
                _ => None,
            })}
            <div class="actions">
                <button data-testid="run-gpu" on:click=move |_| run_on(BackendKind::Wgpu)
                    disabled=move || phase.with(Phase::busy) || !gpu_available()>
                    "Run on the GPU"
                </button>
                <button data-testid="run-cpu" on:click=move |_| run_on(BackendKind::Cpu)
                    disabled=move || phase.with(Phase::busy) || devices.with(Option::is_none)>
                    "Run on the CPU"
                </button>
            </div>
        </section>
    }
}

/// What device the page found, in plain words.
#[component]
fn DeviceSummary(
    /// The detection result, once there is one.
    devices: RwSignal<Option<Devices>, LocalStorage>,
    /// The backend of the current run.
    current: RwSignal<BackendKind>,
) -> impl IntoView {
    move || {
        let Some(found) = devices.get() else {
            return view! { <p class="device">"Detecting…"</p> }.into_any();
        };
        let backend_name = current.get().name();
        match found.gpu {
            Ok(Compute {
                adapter: Some(adapter),
                ..
            }) => {
                let name = if adapter.name.is_empty() {
                    "adapter name hidden by the browser".to_string()
                } else {
                    adapter.name.clone()
                };
                let software = adapter
                    .is_software()
                    .then_some(" (a software adapter: correct, but much slower than a real GPU)");
                let mib = |bytes: u64| bytes / (1024 * 1024);
                view! {
                    <p class="device" data-testid="device">
                        "WebGPU: " <strong>{name}</strong> {software}
                        " · running on " <span data-testid="backend">{backend_name}</span>
                    </p>
                    <dl class="limits" aria-label="GPU limits">
                        <dt>"Largest buffer"</dt><dd>{mib(adapter.max_buffer_size)} " MiB"</dd>
                        <dt>"Largest storage binding"</dt>
                        <dd>{mib(adapter.max_storage_buffer_binding_size)} " MiB"</dd>
                        <dt>"Invocations per workgroup"</dt>
                        <dd>{adapter.max_compute_invocations_per_workgroup}</dd>
                        <dt>"Workgroup memory"</dt>
                        <dd>{adapter.max_compute_workgroup_storage_size / 1024} " KiB"</dd>
                        <dt>"Graphics API"</dt><dd>{adapter.api.clone()}</dd>
                    </dl>
                }
                .into_any()
            }
            Ok(_) | Err(_) => {
                let reason = found.gpu.err().map(|e| e.to_string()).unwrap_or_default();
                view! {
                    <p class="device cpu-mode" data-testid="device">
                        <strong>"CPU mode: slower, smaller model."</strong>
                        " This browser offered no WebGPU adapter, so MoSE Lab computes on the CPU, "
                        "compiled to WebAssembly · running on "
                        <span data-testid="backend">{backend_name}</span>
                    </p>
                    <p class="hint">
                        "To use your GPU: Chrome or Edge 113 or newer (on Linux, turn on "
                        <code>"chrome://flags/#enable-unsafe-webgpu"</code>
                        "), Safari 26 or newer, or Firefox 141 or newer on Windows. "
                        <span class="reason">"Details: " {reason}</span>
                    </p>
                }
                .into_any()
            }
        }
    }
}

/// The loss of every step so far, as a line, with a table behind it.
#[component]
fn LossChart(
    /// Steps so far.
    steps: RwSignal<Vec<CheckStep>>,
    /// Steps the run will take: the width of the x axis.
    total_steps: usize,
) -> impl IntoView {
    // Plot area and the margins that hold the axis labels, in SVG units.
    const WIDTH: f32 = 440.0;
    const HEIGHT: f32 = 130.0;
    const LEFT: f32 = 44.0;
    const BOTTOM: f32 = 20.0;
    let top_loss = move || steps.with(|s| s.iter().map(|s| s.loss).fold(0.0f32, f32::max));
    let points = move || {
        let (top, last) = (top_loss().max(f32::EPSILON), total_steps.max(2) - 1);
        steps.with(|steps| {
            steps
                .iter()
                .map(|s| {
                    let x = LEFT + (s.step - 1) as f32 / last as f32 * WIDTH;
                    let y = HEIGHT - s.loss / top * HEIGHT;
                    format!("{x:.1},{y:.1}")
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
    };
    view! {
        <figure class="loss-chart">
            <svg viewBox=format!("0 -6 {} {}", LEFT + WIDTH + 8.0, HEIGHT + BOTTOM + 6.0) role="img"
                aria-label="Training loss per step, falling as the adapter learns">
                <line x1=LEFT y1=HEIGHT x2=LEFT + WIDTH y2=HEIGHT class="axis"/>
                <line x1=LEFT y1="0" x2=LEFT y2=HEIGHT class="axis"/>
                <text x=LEFT - 6.0 y="8" class="tick" text-anchor="end">
                    {move || format!("{:.2}", top_loss())}
                </text>
                <text x=LEFT - 6.0 y=HEIGHT class="tick" text-anchor="end">"0"</text>
                <text x=LEFT y=HEIGHT + BOTTOM - 4.0 class="tick">"step 1"</text>
                <text x=LEFT + WIDTH y=HEIGHT + BOTTOM - 4.0 class="tick" text-anchor="end">
                    {total_steps}
                </text>
                <polyline points=points class="loss-line"/>
            </svg>
            <figcaption>"Training loss (cross-entropy, nats) at each step"</figcaption>
            <details>
                <summary>"Table"</summary>
                <table>
                    <thead><tr><th scope="col">"Step"</th><th scope="col">"Loss"</th></tr></thead>
                    <tbody>
                        <For each=move || steps.get() key=|s| s.step let:s>
                            <tr><td>{s.step}</td><td>{format!("{:.4}", s.loss)}</td></tr>
                        </For>
                    </tbody>
                </table>
            </details>
        </figure>
    }
}

/// The figures of a finished check.
#[component]
fn Results(
    /// The finished check.
    report: CheckReport,
) -> impl IntoView {
    view! {
        <dl class="results">
            <dt>"Loss"</dt>
            <dd>
                <span data-testid="first-loss">{format!("{:.4}", report.first_loss())}</span>
                " → "
                <span data-testid="last-loss">{format!("{:.4}", report.last_loss())}</span>
            </dd>
            <dt>"Speed"</dt>
            <dd>
                <span data-testid="steps-per-second">{format!("{:.1}", report.steps_per_second)}</span>
                " steps/s (first step, with shader compilation: "
                {format!("{:.2}", report.warmup_seconds)} " s)"
            </dd>
            <dt>"Frozen weights"</dt>
            <dd data-testid="frozen">
                {if report.frozen_unchanged { "unchanged, bit for bit" } else { "CHANGED: this is a bug" }}
            </dd>
            <dt>"Parameters"</dt>
            <dd>{report.trainable_params} " trained, " {report.frozen_params} " frozen"</dd>
        </dl>
    }
}
