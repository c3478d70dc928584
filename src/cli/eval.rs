//! `mose eval`: a project's saved states scored again on every task's
//! held-out samples, with the R matrices recorded while it learned.

use std::path::PathBuf;

use mose_lab::model::FrozenBase;
use mose_lab::sequence::{SequenceReport, score_learned};
use mose_lab::session::{open_learners, project_examples, sequence_tasks};

use crate::common::{CliError, Context, DEFAULT_MODEL, base_model, compute, load_project};
use crate::results::{MethodResult, heldout_samples, results_text, robustness};

/// Arguments of `mose eval`.
#[derive(clap::Args, Debug)]
pub(crate) struct EvalArgs {
    /// A project file written by `mose train` or exported from the app.
    project: PathBuf,
    /// The base model folder the project was trained on.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
}

pub(crate) fn run(context: &Context, args: EvalArgs) -> Result<(), CliError> {
    let compute = compute(context.backend)?;
    let device = compute.device.clone();
    let (model, tokenizer, identity) = base_model(&args.model, &device)?;
    let project = load_project(&args.project, &identity)?;
    let examples = project_examples(&project, &tokenizer).map_err(CliError::input)?;
    let base = FrozenBase::new(&model, &tokenizer, &device);
    let heldout = heldout_samples(&project.tasks);
    let learners = open_learners(&project, model.config(), &device)
        .map_err(|e| CliError::Input(format!("{}: {e}", args.project.display())))?;
    let sequence = sequence_tasks(&project.tasks, &examples);
    let mut results = Vec::new();
    for (learner, trained) in learners.iter().zip(&project.trained) {
        let mut report = trained.report.clone();
        // Every task the report names scored again from the saved state: its last row.
        if let Some(&capacity) = report.capacity.last() {
            let spinner = context.spinner(&format!("scoring {}", trained.method.name()));
            let mut again = SequenceReport::new(trained.method);
            let tasks = &sequence[..report.tasks.len()];
            let batch = project.train.query_batch_size;
            pollster::block_on(score_learned(
                base, learner, &mut again, tasks, capacity, batch,
            ))
            .map_err(CliError::failed)?;
            spinner.finish_and_clear();
            report.routed.pop();
            report.oracle.pop();
            report.routed.append(&mut again.routed);
            report.oracle.append(&mut again.oracle);
        }
        let robust = robustness(
            base,
            learner,
            &tokenizer,
            &heldout,
            &project.data,
            project.seed,
        )?;
        results.push(MethodResult::new(report, robust));
    }
    let text = results_text(&results)
        + "\n(the last row of each matrix was scored again now from the saved states; the rows before it are as recorded after each task)\n";
    context.finish(&results, &text)
}
