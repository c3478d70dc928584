//! The charts: a heatmap and a line chart, both SVG with a table behind
//! them (docs/UX.md: "a table behind every heatmap"), in colour-blind-safe
//! palettes: viridis for values, Okabe and Ito's eight colours for tasks and
//! methods.

use leptos::prelude::*;

/// Okabe and Ito's palette, distinguishable with every common colour-vision deficiency.
pub const CATEGORICAL: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
];

/// The colour of task `i` (cards, bars, expert columns).
pub fn task_colour(i: usize) -> &'static str {
    CATEGORICAL[i % CATEGORICAL.len()]
}

/// Viridis at nine stops, from low to high.
const VIRIDIS: [(f64, f64, f64); 9] = [
    (68.0, 1.0, 84.0),
    (71.0, 44.0, 122.0),
    (59.0, 81.0, 139.0),
    (44.0, 113.0, 142.0),
    (33.0, 144.0, 141.0),
    (39.0, 173.0, 129.0),
    (92.0, 200.0, 99.0),
    (170.0, 220.0, 50.0),
    (253.0, 231.0, 37.0),
];

/// Viridis at `t` in [0, 1], with a text colour that reads on it.
pub fn viridis(t: f64) -> (String, &'static str) {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let at = t * (VIRIDIS.len() - 1) as f64;
    let (i, f) = (at.floor() as usize, at.fract());
    let (a, b) = (VIRIDIS[i], VIRIDIS[(i + 1).min(VIRIDIS.len() - 1)]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    let (r, g, bl) = (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2));
    let luminance = 0.2126 * r as f64 + 0.7152 * g as f64 + 0.0722 * bl as f64;
    (
        format!("rgb({r},{g},{bl})"),
        if luminance > 140.0 { "#111" } else { "#fff" },
    )
}

/// A matrix to draw: rows, columns and their cells (`None`: not measured).
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Row labels.
    pub rows: Vec<String>,
    /// Column labels.
    pub columns: Vec<String>,
    /// `cells[row][column]`.
    pub cells: Vec<Vec<Option<f64>>>,
    /// Decimals shown.
    pub decimals: usize,
    /// What an empty cell means, for the table.
    pub empty: &'static str,
}

/// A heatmap of `matrix` with its table. `id` names the SVG (for PNG export).
#[component]
pub fn Heatmap(
    /// The SVG's id.
    id: String,
    /// `data-testid` of the figure.
    testid: String,
    /// What the rows and columns are, in a sentence.
    caption: String,
    /// Header of the table's row-label column.
    corner: String,
    /// The values.
    matrix: Matrix,
) -> impl IntoView {
    const CELL: f64 = 46.0;
    const LABEL: f64 = 120.0;
    const TOP: f64 = 70.0;
    let values: Vec<f64> = matrix.cells.iter().flatten().flatten().copied().collect();
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = (high - low).max(1e-9);
    // The rotated column labels reach past the last column.
    let width = LABEL + CELL * matrix.columns.len() as f64 + 60.0;
    let height = TOP + CELL * matrix.rows.len() as f64 + 8.0;
    let decimals = matrix.decimals;
    let short = |s: &str| {
        let mut out: String = s.chars().take(14).collect();
        if s.chars().count() > 14 {
            out.push('…');
        }
        out
    };
    let column_labels = matrix
        .columns
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let x = LABEL + CELL * (j as f64 + 0.5);
            view! {
                <text x=x y=TOP - 8.0 class="tick" text-anchor="start"
                    transform=format!("rotate(-35 {x} {})", TOP - 8.0)>{short(name)}</text>
            }
        })
        .collect_view();
    let rows = matrix
        .rows
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let y = TOP + CELL * i as f64;
            let cells = matrix.cells[i]
                .iter()
                .enumerate()
                .map(|(j, value)| {
                    let x = LABEL + CELL * j as f64;
                    match value {
                        Some(v) => {
                            let (fill, ink) = viridis((v - low) / span);
                            view! {
                                <rect x=x y=y width=CELL - 2.0 height=CELL - 2.0 fill=fill/>
                                <text x=x + CELL / 2.0 - 1.0 y=y + CELL / 2.0 + 3.0 fill=ink
                                    class="cell" text-anchor="middle">{format!("{v:.*}", decimals.min(2))}</text>
                            }
                            .into_any()
                        }
                        None => view! {
                            <rect x=x y=y width=CELL - 2.0 height=CELL - 2.0 class="empty-cell"/>
                        }
                        .into_any(),
                    }
                })
                .collect_view();
            view! {
                <text x=LABEL - 6.0 y=y + CELL / 2.0 + 3.0 class="tick" text-anchor="end">{short(name)}</text>
                {cells}
            }
        })
        .collect_view();
    let table_rows = matrix
        .rows
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let cells = matrix.cells[i]
                .iter()
                .enumerate()
                .map(|(j, value)| {
                    let text = value
                        .map_or_else(|| matrix.empty.to_string(), |v| format!("{v:.decimals$}"));
                    view! { <td data-row=i data-col=j>{text}</td> }
                })
                .collect_view();
            view! { <tr><th scope="row">{name.clone()}</th>{cells}</tr> }
        })
        .collect_view();
    let header = matrix
        .columns
        .iter()
        .map(|c| view! { <th scope="col">{c.clone()}</th> })
        .collect_view();
    view! {
        <figure class="heatmap" data-testid=testid>
            <svg id=id viewBox=format!("0 0 {width} {height}") role="img" aria-label=caption.clone()
                style=format!("max-width: {width}px")>
                {column_labels}
                {rows}
            </svg>
            <figcaption>{caption}</figcaption>
            <details>
                <summary>"Table"</summary>
                <div class="table-scroll">
                    <table>
                        <thead><tr><th scope="col">{corner}</th>{header}</tr></thead>
                        <tbody>{table_rows}</tbody>
                    </table>
                </div>
            </details>
        </figure>
    }
}

/// One line of a line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its name in the legend.
    pub name: String,
    /// Its colour.
    pub colour: &'static str,
    /// `(x, y)` points.
    pub points: Vec<(f64, f64)>,
}

/// A line chart with a legend and a table. `x_last` is the width of the x axis.
#[component]
pub fn LineChart(
    /// The SVG's id.
    id: String,
    /// What is drawn, in a sentence.
    caption: String,
    /// x axis name.
    x_name: String,
    /// y axis name.
    y_name: String,
    /// Largest x.
    x_last: f64,
    /// The lines.
    series: Vec<Series>,
) -> impl IntoView {
    const WIDTH: f64 = 440.0;
    const HEIGHT: f64 = 130.0;
    const LEFT: f64 = 44.0;
    const BOTTOM: f64 = 20.0;
    let top = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(f64::EPSILON);
    let x_last = x_last.max(2.0);
    let lines = series
        .iter()
        .map(|s| {
            let points = s
                .points
                .iter()
                .map(|&(x, y)| {
                    let px = LEFT + (x - 1.0) / (x_last - 1.0) * WIDTH;
                    let py = HEIGHT - y / top * HEIGHT;
                    format!("{px:.1},{py:.1}")
                })
                .collect::<Vec<_>>()
                .join(" ");
            view! { <polyline points=points class="line" stroke=s.colour/> }
        })
        .collect_view();
    let legend = series
        .iter()
        .map(|s| view! { <li><span class="swatch" style=format!("background:{}", s.colour)></span>{s.name.clone()}</li> })
        .collect_view();
    let table = series
        .iter()
        .flat_map(|s| {
            s.points.iter().map(move |&(x, y)| {
                view! { <tr><td>{s.name.clone()}</td><td>{x}</td><td>{format!("{y:.4}")}</td></tr> }
            })
        })
        .collect_view();
    view! {
        <figure class="line-chart">
            <svg id=id viewBox=format!("0 -6 {} {}", LEFT + WIDTH + 8.0, HEIGHT + BOTTOM + 6.0) role="img"
                aria-label=caption.clone()>
                <line x1=LEFT y1=HEIGHT x2=LEFT + WIDTH y2=HEIGHT class="axis"/>
                <line x1=LEFT y1="0" x2=LEFT y2=HEIGHT class="axis"/>
                <text x=LEFT - 6.0 y="8" class="tick" text-anchor="end">{format!("{top:.2}")}</text>
                <text x=LEFT - 6.0 y=HEIGHT class="tick" text-anchor="end">"0"</text>
                <text x=LEFT y=HEIGHT + BOTTOM - 4.0 class="tick">{format!("{x_name} 1")}</text>
                <text x=LEFT + WIDTH y=HEIGHT + BOTTOM - 4.0 class="tick" text-anchor="end">{x_last}</text>
                {lines}
            </svg>
            <figcaption>{caption} <ul class="legend">{legend}</ul></figcaption>
            <details>
                <summary>"Table"</summary>
                <div class="table-scroll">
                    <table>
                        <thead><tr><th scope="col">"Series"</th><th scope="col">{x_name}</th>
                            <th scope="col">{y_name}</th></tr></thead>
                        <tbody>{table}</tbody>
                    </table>
                </div>
            </details>
        </figure>
    }
}
