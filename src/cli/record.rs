//! `mose train --record FILE`: the summary of each run, as one JSON document
//! a script can check (docs/benchmark.json), written by the same command
//! that prints the tables. A run replaces the earlier run of the same
//! sequence, model and method (or label); the others stay.

use std::path::{Path, PathBuf};

use mose_lab::eval::Routing;
use serde::{Deserialize, Serialize};

use crate::common::CliError;
use crate::common::DEFAULT_MODEL;
use crate::results::MethodResult;

/// Where and under which names `mose train` records its runs.
#[derive(clap::Args, Debug)]
pub(crate) struct RecordArgs {
    /// Add the runs' summaries to this JSON file (e.g. docs/benchmark.json).
    #[arg(long)]
    record: Option<PathBuf>,
    /// The sequence's name in the record (e.g. starter, related).
    #[arg(long, default_value = "custom")]
    sequence: String,
    /// The method's name in the record, for an ablation of one method
    /// (e.g. `--methods mose --mose router=key --label mose-key-router`).
    #[arg(long)]
    label: Option<String>,
}

/// The file: every recorded run.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    runs: Vec<Run>,
}

/// One method on one sequence (`null` where a figure does not apply).
#[derive(Debug, Serialize, Deserialize)]
struct Run {
    sequence: String,
    model: String,
    method: String,
    steps: usize,
    acc_routed: f64,
    acc_oracle: f64,
    bwt_routed: Option<f64>,
    bwt_oracle: Option<f64>,
    fwt: Option<f64>,
    routing: Option<f64>,
    routing_typos: Option<f64>,
    routing_first16: Option<f64>,
    /// Earlier sub-experts each task reuses (routed methods only).
    reused: Option<Vec<usize>>,
    /// `R[t][t]`, routed, per task.
    diagonal: Vec<f64>,
    /// `R[t][t]` with the true task, per task.
    diagonal_oracle: Vec<f64>,
    /// Adapter values after the last task.
    adapter_values: usize,
}

/// Adds `results` to the record file, if one was asked for; returns its path.
pub(crate) fn record_runs(
    args: &RecordArgs,
    model_dir: &Path,
    steps: usize,
    results: &[MethodResult],
) -> Result<Option<PathBuf>, CliError> {
    let Some(path) = &args.record else {
        return Ok(None);
    };
    if args.label.is_some() && results.len() != 1 {
        return Err(CliError::Input(
            "--label names one method's run; give one method with --methods".into(),
        ));
    }
    let mut record: Record = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            CliError::Input(format!(
                "{}: not a run record ({e}); move it aside or choose another --record file",
                path.display()
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Record::default(),
        Err(e) => return Err(CliError::Failed(format!("{}: {e}", path.display()))),
    };
    let model = match model_dir == Path::new(DEFAULT_MODEL) {
        true => "embedded".to_string(),
        false => model_dir.file_name().map_or_else(
            || model_dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
    };
    for result in results {
        let report = &result.report;
        let diagonal = |routing| -> Vec<f64> {
            let r = report.r_matrix(routing);
            (0..r.len()).map(|t| r[t][t]).collect()
        };
        let run = Run {
            sequence: args.sequence.clone(),
            model: model.clone(),
            method: args
                .label
                .clone()
                .unwrap_or_else(|| result.method.name().to_string()),
            steps,
            acc_routed: result.summary_routed.acc,
            acc_oracle: result.summary_oracle.acc,
            bwt_routed: result.summary_routed.bwt,
            bwt_oracle: result.summary_oracle.bwt,
            fwt: result.summary_routed.fwt,
            routing: result.routing_accuracy,
            routing_typos: result.routing_typos,
            routing_first16: result.routing_first16,
            reused: result
                .method
                .is_routed()
                .then(|| report.capacity.iter().map(|c| c.experts_reused).collect()),
            diagonal: diagonal(Routing::Routed),
            diagonal_oracle: diagonal(Routing::Oracle),
            adapter_values: report.capacity.last().map_or(0, |c| c.total_params),
        };
        record.runs.retain(|r| {
            (r.sequence.as_str(), r.model.as_str(), r.method.as_str())
                != (
                    run.sequence.as_str(),
                    run.model.as_str(),
                    run.method.as_str(),
                )
        });
        record.runs.push(run);
    }
    let json = serde_json::to_string_pretty(&record).map_err(CliError::failed)? + "\n";
    std::fs::write(path, json).map_err(|e| CliError::Failed(format!("{}: {e}", path.display())))?;
    Ok(Some(path.clone()))
}
