//! Panel 2, Train: learn the next task, with progress, speed, time left and
//! the live loss; pause, resume, cancel; settings folded away; plain LoRA
//! trained beside MoSE on the same data when compared.

use leptos::prelude::*;
use leptos::task::spawn_local;
use mose_lab::mose::Method;

use super::browser;
use super::charts::{CATEGORICAL, LineChart, Series};
use super::config::Settings;
use super::lab::{Control, Lab, TrainState};

/// The colour of a method's line and heading.
pub fn method_colour(method: Method) -> &'static str {
    match method {
        Method::Mose => CATEGORICAL[0],
        _ => CATEGORICAL[5],
    }
}

/// A method's name for people.
pub fn method_title(method: Method) -> &'static str {
    match method {
        Method::Mose => "MoSE",
        Method::SeqLora => "plain LoRA",
        Method::LoraPerTask => "LoRA per task",
        Method::MoeLora => "MoE-LoRA",
    }
}

/// `m:ss` for a number of seconds.
fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

/// The train panel.
#[component]
pub fn TrainPanel() -> impl IntoView {
    let lab = expect_context::<Lab>();
    let state = move || lab.train_state.get();
    let busy = move || lab.train_state.with(TrainState::busy);
    let learned = move || lab.project.with(|p| p.learned());
    let next_task = move || {
        lab.project
            .with(|p| p.tasks.get(p.learned()).map(|t| t.name.clone()))
    };
    let started = move || lab.project.with(|p| !p.trained.is_empty());
    let progress_text = move || {
        let p = lab.progress.get();
        if let Some((done, of)) = p.scoring {
            return format!(
                "Scoring every task with {} ({} of {of})",
                p.method.map_or("", method_title),
                done + 1
            );
        }
        match (&p.step, lab.train_state.get()) {
            (_, TrainState::Starting) => format!(
                "{}: reading the task through the frozen model to place its key…",
                p.method.map_or("", method_title)
            ),
            (Some(step), _) => format!(
                "{} · step {} of {} · {:.0} tokens/s · {} left",
                p.method.map_or("", method_title),
                step.step,
                step.steps,
                step.tokens_per_second,
                clock(p.seconds_per_step * p.steps_left as f64)
            ),
            (None, _) => String::new(),
        }
    };
    let fraction = move || {
        let p = lab.progress.get();
        p.step
            .map_or(0.0, |s| s.step as f64 / s.steps.max(1) as f64)
    };
    let chart = move || {
        let losses = lab.losses.get();
        let steps = lab
            .progress
            .with(|p| p.step.as_ref().map(|s| s.steps))
            .or_else(|| losses.iter().map(|l| l.step).max())
            .unwrap_or_else(|| lab.settings.with(|s| s.steps));
        let series: Vec<Series> = [Method::Mose, Method::SeqLora]
            .into_iter()
            .filter(|m| losses.iter().any(|l| l.method == *m))
            .map(|m| Series {
                name: method_title(m).to_string(),
                colour: method_colour(m),
                points: losses
                    .iter()
                    .filter(|l| l.method == m)
                    .map(|l| (l.step as f64, l.loss as f64))
                    .collect(),
            })
            .collect();
        view! {
            <LineChart id="loss-chart-svg".to_string() caption="Training loss of the task being learned, per step".to_string()
                x_name="step".to_string() y_name="loss (nats)".to_string() x_last=steps as f64 series=series/>
        }
    };

    view! {
        <section class="panel" data-testid="panel-train" aria-labelledby="train-title">
            <h2 id="train-title">"2 · Train"</h2>
            <p class="status">
                <span data-testid="learned-count">{learned}</span>
                {move || format!(" of {} tasks learned.", lab.project.with(|p| p.tasks.len()))}
                {move || next_task().map(|n| format!(" Next: {n}."))}
            </p>
            <div class="actions">
                <button class="primary" data-testid="learn-next" on:click=move |_| lab.learn_next()
                    disabled=move || busy() || next_task().is_none() || lab.gpu_lost.with(Option::is_some)>
                    {move || next_task().map_or_else(|| "Add a task to learn".to_string(), |n| format!("Learn next task: {n}"))}
                </button>
                <button data-testid="pause" disabled=move || state() != TrainState::Running
                    on:click=move |_| lab.set_control(Control::Pause)>"Pause"</button>
                <button data-testid="resume" disabled=move || state() != TrainState::Paused
                    on:click=move |_| lab.set_control(Control::Run)>"Resume"</button>
                <button data-testid="cancel" disabled=move || !busy()
                    on:click=move |_| lab.set_control(Control::Cancel)>"Cancel"</button>
            </div>
            {move || lab.gpu_lost.get().map(|lost| view! {
                <div class="interrupted" data-testid="gpu-lost" role="alert">
                    <p>{format!(
                        "The GPU stopped working ({}), and nothing is lost. Go on here on the CPU (slower), \
                         or reload the page to go on with the GPU.",
                        lost.reason.trim_end_matches('.')
                    )}</p>
                    <button class="primary" data-testid="continue-on-cpu" disabled=busy
                        on:click=move |_| spawn_local(async move { lab.report(lab.continue_on_cpu().await) })>
                        {match lost.task {
                            Some(task) => format!("Continue learning {task} on the CPU"),
                            None => "Continue on the CPU".to_string(),
                        }}
                    </button>
                    " "
                    <button data-testid="reload-page" on:click=move |_| browser::reload()>"Reload the page"</button>
                </div>
            })}
            {move || lab.interrupted.get().filter(|_| lab.gpu_lost.with(Option::is_none)).map(|run| view! {
                <div class="interrupted" data-testid="interrupted">
                    <p>{format!(
                        "Learning {} stopped at step {} of {} when the page was closed or reloaded.",
                        run.task, run.step, run.steps
                    )}</p>
                    <button class="primary" data-testid="resume-run" disabled=busy
                        on:click=move |_| lab.resume_interrupted()>{format!("Resume after step {}", run.step)}</button>
                    " "
                    <button data-testid="discard-run" on:click=move |_| lab.discard_interrupted()>"Discard"</button>
                </div>
            })}
            <div data-testid="train-state" data-state=move || lab.train_state.with(TrainState::name)
                role="status" aria-live="polite" class="train-status">
                <span data-testid="train-task">{move || busy().then(|| lab.progress.get().task)}</span>
                " "
                <span data-testid="train-progress">{move || match state() {
                    TrainState::Paused => format!("Paused. {}", progress_text()),
                    TrainState::Saving => "Saving the project…".to_string(),
                    TrainState::Failed(why) => why,
                    _ => progress_text(),
                }}</span>
            </div>
            <progress max="1" value=fraction aria-label="Progress of the task being learned"></progress>
            <div data-testid="loss-chart">{chart}</div>
            <label class="check">
                <input type="checkbox" data-testid="compare-lora" disabled=started
                    prop:checked=move || lab.settings.with(|s| s.compare_lora)
                    on:change=move |ev| { let on = event_target_checked(&ev); lab.settings.update(|s| s.compare_lora = on); }/>
                " Compare with plain LoRA: it learns the same tasks one after another in one shared adapter, and forgets"
            </label>
            {move || started().then(|| view! { <p class="hint">"Set before the first task; start over to change it."</p> })}
            <SettingsForm/>
            <div class="actions">
                <button data-testid="start-over" disabled=move || busy() || !started()
                    on:click=move |_| lab.start_over()>"Start over (keep the tasks)"</button>
            </div>
        </section>
    }
}

/// The advanced settings, folded away.
#[component]
fn SettingsForm() -> impl IntoView {
    let lab = expect_context::<Lab>();
    let started = move || lab.project.with(|p| !p.trained.is_empty());
    let number = move |id: &'static str,
                       label: &'static str,
                       hint: &'static str,
                       get: fn(&Settings) -> f64,
                       set: fn(&mut Settings, f64),
                       step: &'static str,
                       fixed: bool| {
        view! {
            <label for=id>{label}</label>
            <input id=id data-testid=id type="number" min="0" step=step
                disabled=move || fixed && started()
                prop:value=move || lab.settings.with(get).to_string()
                on:change=move |ev| {
                    if let Ok(v) = event_target_value(&ev).parse::<f64>()
                        && v.is_finite()
                        && v > 0.0
                    {
                        lab.settings.update(|s| {
                            set(s, v);
                            *s = s.clone().clamped();
                        });
                    }
                }/>
            <span class="hint">{hint}</span>
        }
    };
    view! {
        <details class="settings" data-testid="train-settings">
            <summary>"Settings"</summary>
            <div class="form-grid">
                {number("train-steps", "Steps per task", "More steps learn more, and take longer.",
                    |s| s.steps as f64, |s, v| s.steps = v as usize, "1", false)}
                {number("train-lr", "Learning rate", "Peak of the schedule.",
                    |s| s.learning_rate, |s, v| s.learning_rate = v, "0.0005", false)}
                {number("train-batch", "Batch size", "Sequences per step; lower it if memory runs out.",
                    |s| s.batch_size as f64, |s, v| s.batch_size = v as usize, "1", false)}
                {number("train-seq-len", "Sequence length", "Tokens per example; fixed once learning starts.",
                    |s| s.max_seq_len as f64, |s, v| s.max_seq_len = v as usize, "1", true)}
                {number("train-rank", "Rank of a sub-expert", "Fixed once the first task is learned.",
                    |s| s.rank as f64, |s, v| s.rank = v as usize, "1", true)}
                {number("train-experts", "Sub-experts per task", "New at each site for each task; fixed once learning starts.",
                    |s| s.experts_per_task as f64, |s, v| s.experts_per_task = v as usize, "1", true)}
                {number("train-heldout", "Held-out samples scored", "Per task, when it is first scored.",
                    |s| s.heldout as f64, |s, v| s.heldout = v as usize, "1", false)}
            </div>
        </details>
    }
}
