//! Panel 4, Try: as a person types, the router's probability for every
//! task and its choice (or "none of these", when the text is like no learned
//! task and the base model answers); which sub-experts carry weight at each
//! layer and site, earlier tasks' reused ones included; a streamed
//! continuation, and beside it the base model's and plain LoRA's when
//! compared.

use leptos::prelude::*;
use leptos::task::spawn_local;
use mose_lab::data::generation_prompt;
use mose_lab::eval::{generate_routed, route_prompt};
use mose_lab::model::generate::{GenerateError, Generation, GenerationConfig, generate};
use mose_lab::mose::{Method, Route, RouterKind};
use mose_lab::tokenizer::TokenizerError;

use super::charts::{Heatmap, Matrix, task_colour};
use super::lab::Lab;

/// The router's reading of the current prompt.
#[derive(Debug, Clone, PartialEq)]
struct Reading {
    /// Learned task names.
    tasks: Vec<String>,
    /// The route.
    route: Route,
    /// Per-site expert weights, as a matrix.
    experts: Matrix,
    /// Sub-experts of other tasks than the chosen one that carry weight:
    /// what the chosen task reuses.
    reused: usize,
    /// What the bars show.
    router: RouterKind,
}

/// What a generation box shows.
#[derive(Debug, Clone, PartialEq)]
struct Output {
    /// `idle`, `streaming`, `done` or `failed`.
    state: &'static str,
    /// The text so far, or the error.
    text: String,
    /// How fast it went, once done.
    speed: Option<Speed>,
}

/// A finished generation's pace.
#[derive(Debug, Clone, PartialEq)]
struct Speed {
    tokens: usize,
    /// New tokens after the first, per second of decoding.
    decode_tokens_per_second: f64,
    /// The sub-experts ran folded into the weights.
    merged: bool,
}

impl Speed {
    fn of(g: &Generation) -> Self {
        Self {
            tokens: g.ids.len(),
            decode_tokens_per_second: g.ids.len().saturating_sub(1) as f64
                / g.decode_seconds.max(1e-9),
            merged: g.merged,
        }
    }
}

/// The try panel.
#[component]
pub fn TryPanel() -> impl IntoView {
    let lab = expect_context::<Lab>();
    let prompt = RwSignal::new(String::new());
    let typed = RwSignal::new(0u64);
    let reading: RwSignal<Option<Reading>> = RwSignal::new(None);
    let compare = RwSignal::new(false);
    let idle = || {
        RwSignal::new(Output {
            state: "idle",
            text: String::new(),
            speed: None,
        })
    };
    let outputs = [idle(), idle(), idle()];
    // How many tokens a generation may add: short for an answer, longer for prose.
    let (default_tokens, most_tokens) = lab
        .config
        .with_value(|c| (c.generation.max_new_tokens, c.most_new_tokens));
    let new_tokens = RwSignal::new(default_tokens);
    // Greedy: the most likely token each time, the same text on every run.
    let greedy = RwSignal::new(false);
    let learned = move || lab.project.with(|p| p.learned());

    let route_now = move |generation: u64| {
        spawn_local(async move {
            let delay = lab.config.with_value(|c| c.route_debounce_ms);
            gloo_timers::future::TimeoutFuture::new(delay).await;
            if typed.get_untracked() != generation {
                return;
            }
            let text = prompt.get_untracked();
            let learners = lab.learners.get_value();
            let Some(mose) = learners
                .iter()
                .find(|l| l.method() == Method::Mose)
                .cloned()
            else {
                reading.set(None);
                return;
            };
            if text.trim().is_empty() || mose.tasks_learned() == 0 {
                reading.set(None);
                return;
            }
            let engine = lab.engine();
            let data = lab.project.with_untracked(|p| p.data.clone());
            match route_prompt(engine.frozen(), &mose, &engine.base.tokenizer, &text, &data).await {
                Ok(route) if typed.get_untracked() == generation => {
                    let tasks: Vec<String> =
                        mose.task_names().iter().map(|s| s.to_string()).collect();
                    let weights = mose.expert_weights(&route);
                    let owners = mose.expert_owners();
                    let experts = Matrix {
                        rows: mose
                            .sites()
                            .iter()
                            .map(|s| format!("layer {} {:?}", s.layer + 1, s.site))
                            .collect(),
                        columns: owners
                            .iter()
                            .enumerate()
                            .map(|(e, &t)| format!("#{e} of {}", tasks[t]))
                            .collect(),
                        cells: weights
                            .iter()
                            .map(|row| row.iter().map(|&w| Some(w as f64)).collect())
                            .collect(),
                        decimals: 2,
                        empty: "",
                    };
                    let top = route.top();
                    let reused = weights
                        .iter()
                        .flat_map(|row| row.iter().enumerate())
                        .filter(|&(e, &w)| w > 0.0 && Some(owners[e]) != top)
                        .map(|(e, _)| e)
                        .collect::<std::collections::BTreeSet<_>>()
                        .len();
                    reading.set(Some(Reading {
                        tasks,
                        route,
                        experts,
                        reused,
                        router: mose.config().router,
                    }));
                }
                Ok(_) => {}
                Err(why) => lab.fail(format!("The prompt could not be routed: {why}")),
            }
        });
    };
    let on_input = move |ev| {
        prompt.set(event_target_value(&ev));
        let generation = typed.get_untracked() + 1;
        typed.set(generation);
        route_now(generation);
    };
    let run_generation = move |_| {
        let text = prompt.get_untracked();
        if text.trim().is_empty() {
            lab.fail("Type a prompt first.");
            return;
        }
        let with_others = compare.get_untracked();
        spawn_local(async move {
            let engine = lab.engine();
            let learners = lab.learners.get_value();
            let data = lab.project.with_untracked(|p| p.data.clone());
            let sampled = lab.config.with_value(|c| c.generation.clone());
            let config = match greedy.get_untracked() {
                true => GenerationConfig {
                    max_new_tokens: new_tokens.get_untracked(),
                    stop: sampled.stop,
                    stop_at_eos: sampled.stop_at_eos,
                    merge_adapter: sampled.merge_adapter,
                    ..GenerationConfig::default()
                },
                false => GenerationConfig {
                    max_new_tokens: new_tokens.get_untracked(),
                    ..sampled
                },
            };
            let device = &engine.compute.device;
            let jobs: Vec<(usize, Option<Method>)> = if with_others {
                vec![
                    (0, Some(Method::Mose)),
                    (1, None),
                    (2, Some(Method::SeqLora)),
                ]
            } else {
                vec![(0, Some(Method::Mose))]
            };
            for &(slot, _) in &jobs {
                outputs[slot].set(Output {
                    state: "streaming",
                    text: String::new(),
                    speed: None,
                });
            }
            for (slot, method) in jobs {
                let out = outputs[slot];
                let on_text = move |piece: &str| out.update(|o| o.text.push_str(piece));
                let learner = method.and_then(|m| learners.iter().find(|l| l.method() == m));
                let result = match (method, learner) {
                    (Some(_), Some(learner)) => generate_routed(
                        engine.frozen(),
                        learner,
                        &engine.base.tokenizer,
                        &text,
                        &data,
                        &config,
                        on_text,
                    )
                    .await
                    .map(|(_, g)| g),
                    (Some(Method::SeqLora), None) => {
                        out.set(Output {
                            state: "done",
                            text: "(plain LoRA is not trained in this project)".into(),
                            speed: None,
                        });
                        continue;
                    }
                    // The base model is asked as the routed one is (a pair
                    // line through an instruct model's chat template).
                    _ => match generation_prompt(&text, &engine.base.tokenizer, &data) {
                        Ok(asked) => {
                            generate(
                                &engine.base.model,
                                &engine.base.tokenizer,
                                &asked,
                                &config,
                                device,
                                on_text,
                            )
                            .await
                        }
                        Err(why) => Err(GenerateError::from(TokenizerError::from(why))),
                    },
                };
                out.update(|o| match result {
                    Ok(g) => {
                        o.state = "done";
                        o.speed = Some(Speed::of(&g));
                    }
                    Err(why) => {
                        o.state = "failed";
                        o.text = format!("Generation failed: {why}");
                    }
                });
            }
        });
    };

    let bars = move || {
        reading.get().map(|r| {
            let chosen = r.route.top();
            let items = r
                .tasks
                .iter()
                .zip(&r.route.scores)
                .enumerate()
                .map(|(t, (name, &score))| {
                    let width = (score.max(0.0) * 100.0).min(100.0);
                    let is_chosen = chosen == Some(t);
                    view! {
                        <li class="route-bar" class:chosen=is_chosen data-testid="route-bar" data-task-name=name.clone()
                            data-chosen=is_chosen.to_string() data-similarity=format!("{score:.3}")>
                            <span class="bar-label">{name.clone()}</span>
                            <span class="bar-track"><span class="bar-fill"
                                style=format!("width: {width:.1}%; background: {}", task_colour(t))></span></span>
                            <span class="bar-value">{format!("{score:.3}")}{is_chosen.then_some(" ← chosen")}</span>
                        </li>
                    }
                })
                .collect_view();
            let chosen_name = chosen.and_then(|t| r.tasks.get(t).cloned()).unwrap_or_default();
            let label = match (r.router, r.route.none_of_these) {
                (RouterKind::Gaussian, false) => "The router's probability that the prompt is each task's text",
                (RouterKind::Gaussian, true) => "Were the prompt one of the learned tasks' text, the router's probability for each",
                (RouterKind::Key, _) => "Similarity of the prompt to each task's key (cosine)",
            };
            let decision = match r.route.none_of_these {
                // The posterior only compares the learned tasks with each
                // other: say so, or a bar at 1.000 reads as a match.
                true => view! {
                    <p class="none-of-these" data-testid="no-task-matches">
                        "No learned task matches this text: the base model answers."
                    </p>
                    <p class="bars-note">"The bars only compare the learned tasks with each other: \
                        were it one of them, it would most likely be the longest."</p>
                }
                .into_any(),
                false => view! {
                    <p>"Routed to " <strong data-testid="routed-task">{chosen_name}</strong></p>
                }
                .into_any(),
            };
            let reused = (r.reused > 0).then(|| view! {
                <p class="reused" data-testid="reused-experts" data-count=r.reused.to_string()>
                    {format!("It reuses {} sub-expert{} of earlier tasks (their columns are lit below).",
                        r.reused, if r.reused == 1 { "" } else { "s" })}
                </p>
            });
            view! {
                {decision}
                <ul class="bars" aria-label=label>{items}</ul>
                {reused}
                <div data-testid="expert-weights" data-reused=r.reused.to_string()>
                    <Heatmap id="expert-weights-svg".to_string() testid="expert-weights-map".to_string()
                        caption="Weight of each sub-expert at each layer and projection for this prompt".to_string()
                        corner="Site".to_string() matrix=r.experts.clone()/>
                </div>
            }
        })
    };
    let output_box = move |slot: usize, testid: &'static str, title: &'static str| {
        view! {
            <div class="generation">
                <h3>{title}</h3>
                <output data-testid=testid data-state=move || outputs[slot].with(|o| o.state) aria-live="polite">
                    {move || outputs[slot].with(|o| o.text.clone())}
                </output>
                {move || outputs[slot].with(|o| o.speed.clone()).map(|speed| view! {
                    <p class="speed" data-testid=format!("{testid}-speed")
                        data-decode-tokens-per-second=format!("{:.3}", speed.decode_tokens_per_second)>
                        {format!("{} tokens · {:.1} tokens/s{}", speed.tokens, speed.decode_tokens_per_second,
                            if speed.merged { " · adapter merged into the weights" } else { "" })}
                    </p>
                })}
            </div>
        }
    };

    view! {
        <section class="panel" data-testid="panel-try" aria-labelledby="try-title">
            <h2 id="try-title">"4 · Try"</h2>
            {move || (learned() == 0).then(|| view! { <p class="empty">"Learn a task, then type here: the router picks the task it thinks the text belongs to."</p> })}
            <label for="prompt">"Prompt"</label>
            <textarea id="prompt" data-testid="prompt" rows="3" placeholder="Type text like one of your tasks…"
                prop:value=move || prompt.get() on:input=on_input></textarea>
            {bars}
            <div class="actions">
                <button class="primary" data-testid="generate" on:click=run_generation
                    disabled=move || outputs.iter().any(|o| o.with(|o| o.state == "streaming"))>"Generate"</button>
                <label class="inline">
                    "Up to "
                    <input type="number" data-testid="gen-tokens" min="1" max=most_tokens.to_string()
                        aria-label="Most new tokens" prop:value=move || new_tokens.get().to_string()
                        on:change=move |ev| {
                            // An empty or out-of-range entry snaps back into range.
                            let asked = event_target_value(&ev).trim().parse::<usize>().unwrap_or(default_tokens);
                            new_tokens.set(asked.clamp(1, most_tokens));
                        }/>
                    " tokens"
                </label>
                <label class="check">
                    <input type="checkbox" data-testid="gen-greedy" prop:checked=move || greedy.get()
                        on:change=move |ev| greedy.set(event_target_checked(&ev))/>
                    " Most likely word each time"
                </label>
                <label class="check">
                    <input type="checkbox" data-testid="compare-generations" prop:checked=move || compare.get()
                        on:change=move |ev| compare.set(event_target_checked(&ev))/>
                    " Compare with the base model and plain LoRA"
                </label>
            </div>
            {output_box(0, "generation", "MoSE, routed")}
            {move || compare.get().then(|| view! {
                {output_box(1, "generation-base", "Base model")}
                {output_box(2, "generation-lora", "Plain LoRA")}
            })}
        </section>
    }
}
