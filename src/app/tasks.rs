//! Panel 1, Tasks: a card per task in learning order, and the ways to add
//! one: a starter pack, pasted text, chosen or dropped files.

use leptos::prelude::*;
use leptos::task::spawn_local;
use mose_lab::tasks::{StatsConfig, TaskStats, task_stats};

use super::base_panel::BaseModelPicker;
use super::browser;
use super::charts::task_colour;
use super::lab::Lab;

/// File name endings a task can be read from.
const TEXT_FILES: [&str; 4] = [".txt", ".md", ".csv", ".jsonl"];

/// The tasks panel.
#[component]
pub fn TasksPanel() -> impl IntoView {
    let lab = expect_context::<Lab>();
    let stats = Memo::new(move |_| {
        let engine = lab.engine();
        let config = lab.config.with_value(|c| StatsConfig {
            few_samples: c.few_samples,
            few_tokens: c.few_tokens,
            duplicate_share: c.duplicate_share,
        });
        let settings_len = lab.settings.with(|s| s.max_seq_len);
        lab.project.with(|p| {
            let max_seq_len = match p.trained.is_empty() {
                true => settings_len,
                false => p.data.max_seq_len,
            };
            task_stats(p, &engine.base.tokenizer, &config, max_seq_len)
        })
    });
    let packs: Vec<(String, String, String)> = lab
        .engine()
        .packs
        .iter()
        .map(|p| (p.name.clone(), p.title.clone(), p.description.clone()))
        .collect();
    let chosen_pack = RwSignal::new(packs.first().map(|p| p.0.clone()).unwrap_or_default());
    let new_name = RwSignal::new(String::new());
    let new_text = RwSignal::new(String::new());
    let dragging = RwSignal::new(false);
    let add_pack = move |_| {
        if lab.pack_loading.with_untracked(Option::is_some) {
            return;
        }
        spawn_local(
            async move { lab.report(lab.add_pack_task(&chosen_pack.get_untracked()).await) },
        );
    };
    let add_text = move |_| {
        let name = new_name.get_untracked();
        let text = new_text.get_untracked();
        let name = if name.trim().is_empty() {
            format!("Task {}", lab.project.with_untracked(|p| p.tasks.len() + 1))
        } else {
            name
        };
        match lab.add_text_task(&name, text.as_bytes()) {
            Ok(()) => {
                new_name.set(String::new());
                new_text.set(String::new());
            }
            Err(why) => lab.fail(why),
        }
    };
    let add_files = move |files: Vec<web_sys::File>| {
        spawn_local(async move {
            for file in files {
                lab.report(add_file(lab, &file).await);
            }
        });
    };
    let pack_options = packs
        .iter()
        .map(|(name, title, description)| view! { <option value=name.clone() title=description.clone()>{title.clone()}</option> })
        .collect_view();
    let learned = move || lab.project.with(|p| p.learned());

    view! {
        <section class="panel" data-testid="panel-tasks" aria-labelledby="tasks-title">
            <h2 id="tasks-title">"1 · Tasks"</h2>
            <p class="hint">"Cards are learned top to bottom. Each task is text the model should get good at: plain text, or one "
                <code>"prompt => answer"</code>" per line."</p>
            <BaseModelPicker/>
            <ol class="cards" aria-label="Tasks in learning order">
                {move || {
                    let all = stats.get();
                    let names: Vec<String> = lab.project.with(|p| p.tasks.iter().map(|t| t.name.clone()).collect());
                    let count = names.len();
                    names.into_iter().zip(all).enumerate().map(|(i, (name, stats))| {
                        view! { <TaskCard index=i count=count name=name stats=stats learned=i < learned()/> }
                    }).collect_view()
                }}
            </ol>
            {move || lab.project.with(|p| p.tasks.is_empty()).then(|| view! {
                <p class="empty">"No tasks yet. Start with two starter packs and one text of your own."</p>
            })}
            <div class="add">
                <h3>"Add a starter pack"</h3>
                <div class="row">
                    <label for="pack-select" class="visually-hidden">"Starter pack"</label>
                    <select id="pack-select" data-testid="pack-select"
                        on:change=move |ev| chosen_pack.set(event_target_value(&ev))
                        prop:value=move || chosen_pack.get()>
                        {pack_options}
                    </select>
                    <button data-testid="add-pack" on:click=add_pack
                        disabled=move || lab.pack_loading.with(Option::is_some)>
                        {move || match lab.pack_loading.get() {
                            Some(title) => format!("Downloading {title}…"),
                            None => "Add pack".to_string(),
                        }}
                    </button>
                </div>
                <h3>"Add your own text"</h3>
                <label for="new-task-name">"Task name"</label>
                <input id="new-task-name" data-testid="new-task-name" type="text" placeholder="e.g. My recipes"
                    prop:value=move || new_name.get() on:input=move |ev| new_name.set(event_target_value(&ev))/>
                <label for="new-task-text">"Text: paragraphs separated by blank lines, or "<code>"prompt => answer"</code>" lines"</label>
                <textarea id="new-task-text" data-testid="new-task-text" rows="5"
                    prop:value=move || new_text.get() on:input=move |ev| new_text.set(event_target_value(&ev))></textarea>
                <button data-testid="add-text" on:click=add_text>"Add task"</button>
                <div class="drop-zone" class:dragging=move || dragging.get() data-testid="drop-zone"
                    on:dragover=move |ev: web_sys::DragEvent| { ev.prevent_default(); dragging.set(true); }
                    on:dragleave=move |_| dragging.set(false)
                    on:drop=move |ev: web_sys::DragEvent| {
                        ev.prevent_default();
                        dragging.set(false);
                        add_files(browser::files_of(ev.data_transfer().and_then(|d| d.files())));
                    }>
                    <label for="task-file">"Drop files here, or choose them: "</label>
                    <input id="task-file" data-testid="task-file" type="file" multiple accept=TEXT_FILES.join(",")
                        on:change=move |ev| {
                            let input: web_sys::HtmlInputElement = event_target(&ev);
                            add_files(browser::files_of(input.files()));
                            input.set_value("");
                        }/>
                    <span class="hint">" .txt, .md, .csv or .jsonl; each file becomes a task"</span>
                </div>
            </div>
        </section>
    }
}

/// Reads one chosen or dropped file into a task named after it.
async fn add_file(lab: Lab, file: &web_sys::File) -> Result<(), String> {
    let name = file.name();
    let lower = name.to_lowercase();
    if !TEXT_FILES.iter().any(|end| lower.ends_with(end)) {
        return Err(format!(
            "{name} is not a text file MoSE Lab reads: choose a .txt, .md, .csv or .jsonl file."
        ));
    }
    let limit = lab.project.with_untracked(|p| p.data.max_sample_bytes);
    let size = file.size();
    if size > limit as f64 {
        return Err(format!(
            "{name} is {:.1} MB, over the limit of {:.1} MB for one task: split it into smaller files, or keep the part you need.",
            size / 1e6,
            limit as f64 / 1e6
        ));
    }
    let bytes = browser::read_file(file)
        .await
        .map_err(|e| format!("{name} could not be read: {e}"))?;
    let stem = name
        .rsplit_once('.')
        .map_or(name.as_str(), |(stem, _)| stem)
        .to_string();
    lab.add_text_task(&stem, &bytes)
}

/// One task's card.
#[component]
fn TaskCard(
    /// Position in the sequence.
    index: usize,
    /// Tasks in all.
    count: usize,
    /// Its name.
    name: String,
    /// Its figures.
    stats: TaskStats,
    /// Whether MoSE has learned it.
    learned: bool,
) -> impl IntoView {
    let lab = expect_context::<Lab>();
    let renaming = RwSignal::new(false);
    let draft = RwSignal::new(name.clone());
    let commit = move || {
        renaming.set(false);
        lab.report(lab.rename_task(index, &draft.get_untracked()));
    };
    let busy = move || lab.train_state.with(|s| s.busy());
    let locked = move || learned || busy();
    let kind = if stats.pairs {
        "prompt => answer"
    } else {
        "plain text"
    };
    let warnings = stats
        .warnings
        .iter()
        .map(|w| view! { <p class="warning" data-testid="task-warning">{w.clone()}</p> })
        .collect_view();
    let notes = stats
        .notes
        .iter()
        .map(|n| view! { <p class="figures" data-testid="task-note">{n.clone()}</p> })
        .collect_view();
    let label = name.clone();
    let is_last = index + 1 >= count;
    let original = name.clone();
    let rename_label = format!("Rename {name}");
    let export_label = format!("Download as model: {name}");
    view! {
        <li class="card" data-testid="task-card" data-task-name=name.clone() data-learned=learned.to_string()
            style=format!("--task-colour: {}", task_colour(index))>
            <div class="card-head">
                <span class="order" aria-hidden="true">{index + 1}</span>
                {move || if renaming.get() {
                    view! {
                        <input class="rename" data-testid="task-rename-input" aria-label="New name"
                            prop:value=move || draft.get()
                            on:input=move |ev| draft.set(event_target_value(&ev))
                            on:keydown=move |ev: web_sys::KeyboardEvent| {
                                if ev.key() == "Enter" { commit(); }
                                if ev.key() == "Escape" { renaming.set(false); }
                            }
                            on:blur=move |_| if renaming.get_untracked() { commit() }/>
                    }.into_any()
                } else {
                    view! { <h3 class="task-name">{label.clone()}</h3> }.into_any()
                }}
                {learned.then(|| view! { <span class="badge learned">"learned"</span> })}
            </div>
            <p class="figures">
                <span data-testid="task-samples">{format!("{} samples", stats.samples)}</span>" · "
                <span data-testid="task-tokens">{format!("{} tokens", stats.tokens)}</span>" · "
                <span>{kind}</span>
            </p>
            <p class="figures" data-testid="task-split">{format!("{} train · {} held out", stats.train, stats.heldout)}</p>
            {notes}
            {warnings}
            <div class="card-actions">
                <button data-testid="task-rename" disabled=locked aria-label=rename_label
                    on:click=move |_| { draft.set(original.clone()); renaming.set(true); }>"Rename"</button>
                <button data-testid="task-up" disabled=move || locked() || index == 0
                    aria-label="Learn earlier" on:click=move |_| lab.report(lab.move_task(index, -1))>"↑"</button>
                <button data-testid="task-down" disabled=move || locked() || is_last
                    aria-label="Learn later" on:click=move |_| lab.report(lab.move_task(index, 1))>"↓"</button>
                <button data-testid="task-delete" class="danger" disabled=locked
                    on:click=move |_| lab.report(lab.delete_task(index))>"Delete"</button>
                {learned.then(|| view! {
                    <button data-testid="task-export-model" disabled=busy aria-label=export_label.clone()
                        title="This task's sub-experts folded into the base model: a Hugging Face folder for transformers or llama.cpp"
                        on:click=move |_| spawn_local(async move {
                            match lab.export_task_model(index).await {
                                Ok((bytes, file)) => {
                                    browser::save_file(&bytes, &file, "application/zip");
                                    lab.tell(format!("Downloaded {file}: a model folder that loads in transformers (AutoModelForCausalLM.from_pretrained)."));
                                }
                                Err(why) => lab.fail(why),
                            }
                        })>"Download as model"</button>
                })}
            </div>
        </li>
    }
}
