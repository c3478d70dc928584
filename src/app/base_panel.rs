//! The base model box at the top of the Tasks panel (docs/UX.md, "The base
//! model"): which model the project adapts, the models the app serves, a
//! model opened from disk, and the files kept in this browser.

use leptos::prelude::*;
use leptos::task::spawn_local;
use mose_lab::mose::MoseConfig;

use super::actions::BaseChoice;
use super::base_model::{Base, BaseSource, megabytes};
use super::browser;
use super::lab::Lab;

/// What a model opened from disk may be made of.
const MODEL_FILES: &str = ".gguf,.json,.safetensors,.jinja";

/// How the project's router tells its tasks from the base model's own text
/// ("none of these", docs/METHOD.md, "The base model's own text").
fn router_note(mose: &MoseConfig, base: &Base) -> String {
    let adopted = base
        .background
        .as_ref()
        .filter(|b| b.fits(&base.identity.fingerprint, mose));
    match (mose.background_texts, adopted) {
        (0, _) => format!(
            "The router judges \"none of these\" among your learned tasks alone: {}",
            match base.background {
                None =>
                    "this model came without statistics of its own text (the CLI's \
                         `mose background` writes them, as background.safetensors to open \
                         with the model's files)",
                Some(_) =>
                    "this project's settings leave out the statistics of the model's own text",
            }
        ),
        (_, Some(b)) => format!(
            "The router knows this model's own text ({} texts it wrote, whose statistics came \
             with the model): a prompt like none of your tasks goes to the base model",
            b.recipe().texts
        ),
        (texts, None) => format!(
            "With the first task, the model writes {texts} texts of its own for the router, \
             so that a prompt like none of your tasks goes to the base model"
        ),
    }
}

/// The base model box.
#[component]
pub fn BaseModelPicker() -> impl IntoView {
    let lab = expect_context::<Lab>();
    let keep = RwSignal::new(false);
    // The engine is not a signal; a change of base always sets the project.
    let described = move || {
        lab.project.track();
        lab.engine().base.describe()
    };
    let embedded = move || {
        lab.project.track();
        lab.engine().base.source == BaseSource::Embedded
    };
    let locked = move || {
        lab.train_state.track();
        lab.base_loading.track();
        lab.base_locked()
    };
    let choose = move |choice: BaseChoice| {
        lab.error.set(None);
        spawn_local(async move {
            if let Err(why) = lab.choose_base(choice).await {
                lab.fail(why);
            }
        })
    };
    let served = lab
        .engine()
        .served
        .iter()
        .map(|model| {
            let label = format!("Use {} ({}, served by this app)", model.name, megabytes(model.bytes));
            let chosen = model.clone();
            let name = model.name.clone();
            let current = move || {
                lab.project.track();
                matches!(&lab.engine().base.source, BaseSource::Served { name: n, .. } if *n == name)
            };
            view! {
                <button data-testid="base-served" data-model=model.name.clone() title=model.description.clone()
                    disabled=move || locked().is_some() || current()
                    on:click=move |_| choose(BaseChoice::Served(chosen.clone()))>{label}</button>
            }
        })
        .collect_view();
    let open_files = move |files: Vec<web_sys::File>| {
        if files.is_empty() {
            return;
        }
        let keep = keep.get_untracked();
        lab.error.set(None);
        spawn_local(async move {
            let mut read = Vec::with_capacity(files.len());
            for file in files {
                match browser::read_file(&file).await {
                    Ok(bytes) => read.push((file.name(), bytes)),
                    Err(why) => {
                        lab.fail(format!("{} could not be read: {why}", file.name()));
                        return;
                    }
                }
            }
            if let Err(why) = lab
                .choose_base(BaseChoice::Disk { files: read, keep })
                .await
            {
                lab.fail(why);
            }
        });
    };

    view! {
        <div class="base-model" data-testid="base-model">
            <h3>"Base model"</h3>
            <p data-testid="base-model-name">{described}</p>
            <p class="hint" data-testid="base-model-router">{move || {
                lab.project.with(|p| router_note(&p.mose, &lab.engine().base))
            }}</p>
            <p class="figures" data-testid="base-model-memory">{move || {
                lab.project.track();
                lab.engine_changes.track();
                let page = format!("This page's memory: {:.0} MB at most so far", browser::wasm_memory_bytes() / 1e6);
                // In CPU mode the engine's worker holds a second copy of the model.
                match lab.engine().worker.as_ref().map(|w| w.memory_bytes()).filter(|b| *b > 0.0) {
                    Some(bytes) => format!("{page}, and {:.0} MB in the worker that learns", bytes / 1e6),
                    None => page,
                }
            }}</p>
            {move || lab.base_loading.get().map(|stage| view! {
                <p class="hint" role="status" data-testid="base-model-loading">{stage}"…"</p>
            })}
            {move || locked().filter(|_| lab.base_loading.with(Option::is_none)).map(|why| view! {
                <p class="hint" data-testid="base-model-locked">{why}</p>
            })}
            <details data-testid="base-change">
            <summary>"Change the base model"</summary>
            <p class="hint">"Before the first task is learned, the project can adapt another Llama-family model; its tasks are kept."</p>
            <div class="row">
                {move || (!embedded()).then(|| view! {
                    <button data-testid="base-embedded" disabled=move || locked().is_some()
                        on:click=move |_| choose(BaseChoice::Embedded)>"Use the embedded model"</button>
                })}
                {served}
            </div>
            <label for="base-file">"Open a model from disk: one .gguf file, or a Hugging Face folder's "
                <code>"config.json"</code>", "<code>"model.safetensors"</code>" and "<code>"tokenizer.json"</code>" together"</label>
            <input id="base-file" data-testid="base-file" type="file" multiple accept=MODEL_FILES
                disabled=move || locked().is_some()
                on:change=move |ev| {
                    let input: web_sys::HtmlInputElement = event_target(&ev);
                    open_files(browser::files_of(input.files()));
                    input.set_value("");
                }/>
            <label class="check">
                <input type="checkbox" data-testid="base-keep" prop:checked=move || keep.get()
                    on:change=move |ev| keep.set(event_target_checked(&ev))/>
                " Keep it in this browser, so it loads after a reload (it takes as much storage as its files)"
            </label>
            </details>
            {move || lab.kept_model.get().map(|bytes| view! {
                <p class="figures" data-testid="base-kept">{format!("Kept in this browser: {}", megabytes(bytes))}" "
                    <button data-testid="base-forget" on:click=move |_| spawn_local(async move {
                        lab.report(lab.forget_kept_base().await);
                    })>"Delete the kept model"</button>
                </p>
            })}
        </div>
    }
}
