//! What the command shows: progress bars on stderr while it works, then
//! either text for a person or one JSON document for a program on stdout.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::common::{CliError, Context};

impl Context {
    /// A bar over `len` units of `unit` with its rate and time left; drawn
    /// only on a terminal, never with `--json`.
    pub(crate) fn bar(&self, len: u64, message: &str, unit: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(Some(len), self.draw_target());
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{msg:<24}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} {{per_sec}} {{elapsed_precise}} ETA {{eta_precise}}"
            ))
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        bar.set_message(message.to_string());
        bar
    }

    /// A spinner for a job of unknown length.
    pub(crate) fn spinner(&self, message: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(None, self.draw_target());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed_precise}")
                .expect("the template is valid"),
        );
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    fn draw_target(&self) -> ProgressDrawTarget {
        match self.json {
            true => ProgressDrawTarget::hidden(),
            false => ProgressDrawTarget::stderr(),
        }
    }

    /// A line for the person (stderr, so stdout stays the result); nothing with `--json`.
    pub(crate) fn note(&self, line: &str) {
        if !self.json {
            eprintln!("{line}");
        }
    }

    /// The command's result: `text` for a person, or `value` as JSON.
    pub(crate) fn finish(&self, value: &impl Serialize, text: &str) -> Result<(), CliError> {
        if self.json {
            let json = serde_json::to_string_pretty(value).map_err(CliError::failed)?;
            println!("{json}");
        } else {
            print!("{text}");
        }
        Ok(())
    }
}
