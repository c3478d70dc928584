//! What `mose train` and `mose eval` print: each method's R matrices, its
//! summary, routing accuracy (also under typos and on first tokens only)
//! and capacity, as a person reads them or as JSON.

use std::fmt::Write as _;

use mose_lab::data::{DataConfig, Sample};
use mose_lab::eval::Routing;
use mose_lab::eval::metrics::Summary;
use mose_lab::eval::robustness::{Probe, routing_accuracy};
use mose_lab::model::FrozenBase;
use mose_lab::mose::{Learner, Method};
use mose_lab::project::ProjectTask;
use mose_lab::sequence::SequenceReport;
use mose_lab::tokenizer::Tokenizer;
use serde::Serialize;

use crate::common::CliError;

/// Routing accuracy under the robustness probes: 10% of letters replaced,
/// and the first 16 tokens only.
const TYPO_SHARE: f64 = 0.1;
const FIRST_TOKENS: usize = 16;

/// Held-out samples per task, for the robustness probes.
pub(crate) fn heldout_samples(tasks: &[ProjectTask]) -> Vec<Vec<Sample>> {
    tasks
        .iter()
        .map(|t| {
            t.split
                .heldout
                .iter()
                .map(|&i| t.samples[i].clone())
                .collect()
        })
        .collect()
}

/// Routing accuracy of a routed learner with typos and on first tokens only.
pub(crate) fn robustness(
    base: FrozenBase<'_>,
    learner: &Learner,
    tokenizer: &Tokenizer,
    heldout: &[Vec<Sample>],
    data: &DataConfig,
    seed: u64,
) -> Result<(Option<f64>, Option<f64>), CliError> {
    if !learner.method().is_routed() {
        return Ok((None, None));
    }
    let accuracy = |probe| {
        pollster::block_on(routing_accuracy(
            base, learner, tokenizer, heldout, data, probe, 32,
        ))
        .map_err(CliError::failed)
    };
    let typos = Probe::Typos {
        share: TYPO_SHARE,
        seed,
    };
    Ok((
        accuracy(typos)?,
        accuracy(Probe::FirstTokens(FIRST_TOKENS))?,
    ))
}

#[derive(Serialize)]
pub(crate) struct MethodResult {
    pub method: Method,
    pub summary_routed: Summary,
    pub summary_oracle: Summary,
    pub routing_accuracy: Option<f64>,
    /// With 10% of letters replaced at random.
    pub routing_typos: Option<f64>,
    /// On the first 16 tokens of each sample only.
    pub routing_first16: Option<f64>,
    pub report: SequenceReport,
}

impl MethodResult {
    /// The summaries of `report`, with the routing accuracy under the
    /// robustness probes ([`robustness`]'s pair).
    pub(crate) fn new(report: SequenceReport, robust: (Option<f64>, Option<f64>)) -> Self {
        Self {
            method: report.method,
            summary_routed: report.summary(Routing::Routed),
            summary_oracle: report.summary(Routing::Oracle),
            routing_accuracy: report.confusion().and_then(|c| c.accuracy()),
            routing_typos: robust.0,
            routing_first16: robust.1,
            report,
        }
    }
}

/// R matrices and summaries, as a person reads them.
pub(crate) fn results_text(results: &[MethodResult]) -> String {
    let mut text = String::new();
    for r in results {
        let report = &r.report;
        let _ = writeln!(text, "\n{} ({:.0} s)", r.method.name(), report.seconds);
        let names = &report.tasks;
        let width = names.iter().map(|n| n.len()).max().unwrap_or(4).max(8);
        table_row(&mut text, "after \\ on", names.clone(), width);
        let base = report.base.iter().map(|s| s.log_likelihood);
        table_row(&mut text, "base", scores(base), width);
        for (name, row) in names.iter().zip(report.r_matrix(Routing::Routed)) {
            table_row(&mut text, name, scores(row), width);
        }
        let s = &r.summary_routed;
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        let _ = writeln!(
            text,
            "  ACC {:.3}  BWT {}  FWT {}  forgetting {}  (oracle ACC {:.3})",
            s.acc,
            opt(s.bwt),
            opt(s.fwt),
            opt(s.forgetting),
            r.summary_oracle.acc
        );
        if let Some(acc) = r.routing_accuracy {
            let percent = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.1}%", v * 100.0));
            let _ = writeln!(
                text,
                "  routing accuracy {:.1}% (with {:.0}% typos {}, first {FIRST_TOKENS} tokens only {})",
                acc * 100.0,
                TYPO_SHARE * 100.0,
                percent(r.routing_typos),
                percent(r.routing_first16)
            );
        }
        if let Some(confusion) = report.confusion() {
            let _ = writeln!(
                text,
                "  routing (held-out samples of each task, by the task chosen):"
            );
            let mut columns = names.clone();
            columns.push("none".into());
            table_row(&mut text, "task \\ to", columns, width);
            for (i, (name, row)) in names.iter().zip(&confusion.counts).enumerate() {
                let mut cells: Vec<String> = row.iter().map(usize::to_string).collect();
                cells.push(confusion.none.get(i).copied().unwrap_or(0).to_string());
                table_row(&mut text, name, cells, width);
            }
        }
        let _ = writeln!(text, "  capacity after each task:");
        for (name, c) in names.iter().zip(&report.capacity) {
            let _ = writeln!(
                text,
                "    {name:<width$} {} sub-experts ({} new, {} reused), {} values trained, {} in all",
                c.experts_total,
                c.experts_new,
                c.experts_reused,
                c.trainable_params,
                c.total_params
            );
        }
    }
    text
}

/// Scores as the R matrix prints them.
fn scores(values: impl IntoIterator<Item = f64>) -> Vec<String> {
    values.into_iter().map(|v| format!("{v:.3}")).collect()
}

/// One row of a matrix: its label, then each cell right-aligned in `width`.
fn table_row(text: &mut String, label: &str, cells: Vec<String>, width: usize) {
    let _ = write!(text, "  {label:<width$}");
    for cell in cells {
        let _ = write!(text, " {cell:>width$}");
    }
    let _ = writeln!(text);
}
