//! Panel 3, Remember: what the model still knows of every task after each
//! one it learned (the R matrix) for MoSE and plain LoRA side by side, the
//! summary figures with one-line explanations, where the router sends each
//! task's samples, and how much each task added.

use leptos::prelude::*;
use leptos::task::spawn_local;
use mose_lab::eval::Routing;
use mose_lab::mose::Method;
use mose_lab::project::Trained;

use super::browser;
use super::charts::{Heatmap, Matrix};
use super::lab::Lab;
use super::train::{method_colour, method_title};

/// The R matrix of one method: rows are tasks learned, columns every task.
fn r_matrix(trained: &Trained) -> Matrix {
    let report = &trained.report;
    let columns = report.tasks.clone();
    let cells = report
        .r_matrix(Routing::Routed)
        .into_iter()
        .map(|row| (0..columns.len()).map(|j| row.get(j).copied()).collect())
        .collect();
    Matrix {
        rows: columns
            .iter()
            .take(report.learned())
            .map(|t| format!("after {t}"))
            .collect(),
        columns,
        cells,
        decimals: 3,
        empty: "not scored (added later)",
    }
}

/// The R matrix as CSV: a header of task names, a row per learned task.
fn r_csv(matrix: &Matrix) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out = String::from("after learning");
    for c in &matrix.columns {
        out.push(',');
        out.push_str(&quote(c));
    }
    out.push('\n');
    for (label, row) in matrix.rows.iter().zip(&matrix.cells) {
        out.push_str(&quote(label));
        for cell in row {
            out.push(',');
            if let Some(v) = cell {
                out.push_str(&format!("{v:.6}"));
            }
        }
        out.push('\n');
    }
    out
}

/// The remember panel.
#[component]
pub fn RememberPanel() -> impl IntoView {
    let lab = expect_context::<Lab>();
    let trained = move || {
        lab.project.with(|p| {
            p.trained
                .iter()
                .filter(|t| t.report.learned() > 0)
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    view! {
        <section class="panel" data-testid="panel-remember" aria-labelledby="remember-title">
            <h2 id="remember-title">"3 · Remember"</h2>
            {move || {
                let all = trained();
                if all.is_empty() {
                    return view! { <p class="empty">"Learn a task: its scores on every task appear here, a row per task learned."</p> }.into_any();
                }
                let methods = all.iter().map(|t| view! { <MethodResults trained=t.clone()/> }).collect_view();
                let mose = all.iter().find(|t| t.method == Method::Mose).cloned();
                view! {
                    <p class="hint">"Each cell is how well the model predicts a task's held-out text (mean log-likelihood per token, nats; higher is better) after learning the row's task. A model that remembers keeps its columns bright as rows are added."</p>
                    <div class="side-by-side">{methods}</div>
                    {mose.map(|t| view! { <RoutingMatrix trained=t.clone()/> <CapacityTable trained=t/> })}
                }.into_any()
            }}
        </section>
    }
}

/// One method's heatmap, figures and exports.
#[component]
fn MethodResults(trained: Trained) -> impl IntoView {
    let lab = expect_context::<Lab>();
    let method = trained.method;
    let name = method.name();
    let matrix = r_matrix(&trained);
    let summary = trained.report.summary(Routing::Routed);
    let figure =
        |v: Option<f64>| v.map_or_else(|| "needs two tasks".to_string(), |v| format!("{v:+.3}"));
    let svg_id = format!("r-matrix-{name}-svg");
    let csv = r_csv(&matrix);
    let png = {
        let svg_id = svg_id.clone();
        move |_| {
            let svg_id = svg_id.clone();
            spawn_local(async move {
                if let Err(why) =
                    browser::save_chart_png(&svg_id, &format!("r-matrix-{name}.png"), 2.0).await
                {
                    lab.fail(format!("The picture could not be made: {why}"));
                }
            });
        }
    };
    view! {
        <div class="method">
            <h3 style=format!("--method-colour: {}", method_colour(method))>{method_title(method)}</h3>
            <Heatmap id=svg_id testid=format!("r-matrix-{name}")
                caption=format!("R matrix of {}: rows are tasks learned so far, columns every task", method_title(method))
                corner="After learning".to_string() matrix=matrix/>
            <dl class="metrics">
                <dt>"ACC"</dt>
                <dd><span data-testid=format!("metric-acc-{name}")>{format!("{:+.3}", summary.acc)}</span>
                    <span class="explain">"Average score on every learned task now. Higher is better."</span></dd>
                <dt>"BWT"</dt>
                <dd><span data-testid=format!("metric-bwt-{name}")>{figure(summary.bwt)}</span>
                    <span class="explain">"How much learning later tasks changed the earlier ones. Below 0 is forgetting."</span></dd>
                <dt>"FWT"</dt>
                <dd><span data-testid=format!("metric-fwt-{name}")>{figure(summary.fwt)}</span>
                    <span class="explain">"How much earlier tasks helped a task before it was learned, against the base model."</span></dd>
            </dl>
            <div class="actions">
                <button data-testid=format!("export-csv-{name}")
                    on:click=move |_| browser::save_file(csv.as_bytes(), &format!("r-matrix-{name}.csv"), "text/csv")>
                    "Export CSV"</button>
                <button data-testid=format!("export-png-{name}") on:click=png>"Export PNG"</button>
            </div>
        </div>
    }
}

/// Where the router sent each task's held-out samples after the last task.
#[component]
fn RoutingMatrix(trained: Trained) -> impl IntoView {
    let report = &trained.report;
    let Some(confusion) = report.confusion() else {
        return ().into_any();
    };
    let learned = report.learned();
    let names = report.tasks.clone();
    // The last column: samples the router sent to no task (the base model).
    let cells = confusion
        .counts
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let none = confusion.none.get(i).copied().unwrap_or(0);
            let total = row.iter().sum::<usize>() + none;
            row.iter()
                .take(learned)
                .chain(std::iter::once(&none))
                .map(|&n| (total > 0).then(|| n as f64 / total as f64 * 100.0))
                .collect()
        })
        .collect();
    let matrix = Matrix {
        rows: names.iter().map(|n| format!("{n} samples")).collect(),
        columns: names
            .iter()
            .take(learned)
            .map(|n| format!("→ {n}"))
            .chain(std::iter::once("→ none (base model)".to_string()))
            .collect(),
        cells,
        decimals: 0,
        empty: "no samples",
    };
    let accuracy = confusion
        .accuracy()
        .map_or_else(|| "–".to_string(), |a| format!("{:.0}%", a * 100.0));
    view! {
        <div class="routing" data-testid="confusion">
            <h3>"Routing"</h3>
            <p>"The router sent " <strong data-testid="routing-accuracy">{accuracy}</strong>
               " of the held-out samples of learned tasks to their own task's sub-experts. Text like no learned task goes to the base model (\"none\")."</p>
            <Heatmap id="confusion-svg".to_string() testid="confusion-matrix".to_string()
                caption="Routing: percent of each task's held-out samples sent to each learned task".to_string()
                corner="Samples of".to_string() matrix=matrix/>
        </div>
    }
    .into_any()
}

/// Sub-experts each task added and reused.
#[component]
fn CapacityTable(trained: Trained) -> impl IntoView {
    let rows = trained
        .report
        .capacity
        .iter()
        .zip(&trained.report.tasks)
        .map(|(c, name)| {
            view! {
                <tr><th scope="row">{name.clone()}</th><td>{c.experts_new}</td><td>{c.experts_reused}</td>
                    <td>{c.experts_total}</td><td>{c.trainable_params}</td><td>{c.total_params}</td></tr>
            }
        })
        .collect_view();
    view! {
        <div class="capacity">
            <h3>"Capacity"</h3>
            <div class="table-scroll">
                <table data-testid="capacity">
                    <thead><tr><th scope="col">"Task"</th><th scope="col">"New sub-experts"</th>
                        <th scope="col">"Reused"</th><th scope="col">"Sub-experts in all"</th>
                        <th scope="col">"Values trained"</th><th scope="col">"Adapter values in all"</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
        </div>
    }
}
