//! A project's task list as a person edits it, on the plain [`Project`]:
//! tasks added from text or a starter pack's split, renamed, moved,
//! deleted, and everything learned forgotten; each edit refused with a
//! reason when it would change a learned task. And what a task's card
//! shows: its figures and its warnings ([`task_stats`]).
//!
//! The app wires these to its buttons (it adds only what is its own: the
//! lock while a task is being learned, undo, storage); the tests run them
//! natively in milliseconds.

use std::collections::HashSet;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::data::{DataConfig, DataError, Sample};
use crate::project::{Project, ProjectTask};
use crate::tokenizer::Tokenizer;

/// Why an edit of the task list is refused.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// A task needs a name.
    #[error("give the task a name first")]
    NoName,
    /// The task is learned, so it stays as it is.
    #[error("{task} is learned, so it stays as it is; to change it, start over")]
    Learned {
        /// The learned task's name.
        task: String,
    },
    /// No task at that place.
    #[error("there is no task {index}")]
    NoTask {
        /// The place asked for.
        index: usize,
    },
    /// The task's text does not make examples.
    #[error("{task}: {source}")]
    Data {
        /// The task's name.
        task: String,
        /// What is wrong with its text.
        source: DataError,
    },
}

/// `name`, or `name 2`, `name 3`... when a task of `project` has it.
pub fn unique_name(project: &Project, name: &str) -> String {
    let taken = |n: &str| project.tasks.iter().any(|t| t.name == n);
    if !taken(name) {
        return name.to_string();
    }
    (2..)
        .map(|i| format!("{name} {i}"))
        .find(|n| !taken(n))
        .unwrap_or_default()
}

/// A task from text a person gave, named `name` (made unique), split at
/// random with `seed` mixed with its place in the list.
///
/// # Errors
/// [`EditError::NoName`]; [`EditError::Data`] for text that makes no task.
pub fn text_task(
    project: &Project,
    name: &str,
    bytes: &[u8],
    seed: u64,
) -> Result<ProjectTask, EditError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(EditError::NoName);
    }
    let seed = seed ^ project.tasks.len() as u64;
    ProjectTask::from_text(&unique_name(project, name), bytes, &project.data, seed).map_err(
        |source| EditError::Data {
            task: name.to_string(),
            source,
        },
    )
}

/// A task from a starter pack's fixed split, named `title` (made unique):
/// a `seed`ed subset of at most `keep` of its training samples, and its
/// whole held-out split.
///
/// # Errors
/// [`EditError::Data`] for a pack whose text makes no task.
pub fn pack_task(
    project: &Project,
    title: &str,
    train: &[u8],
    test: &[u8],
    keep: usize,
    seed: u64,
) -> Result<ProjectTask, EditError> {
    let mut task =
        ProjectTask::from_split_texts(title, train, test, &project.data).map_err(|source| {
            EditError::Data {
                task: title.to_string(),
                source,
            }
        })?;
    task.name = unique_name(project, title);
    if task.split.train.len() > keep {
        task.split.train.shuffle(&mut StdRng::seed_from_u64(seed));
        task.split.train.truncate(keep);
        task.split.train.sort_unstable();
    }
    Ok(task)
}

/// Adds `task` at the end, once every one of its samples makes an example
/// (so that a task is refused when it is added, not when it is learned).
///
/// # Errors
/// [`EditError::Data`] naming the task and what is wrong with a sample.
pub fn add_task(
    project: &mut Project,
    task: ProjectTask,
    tokenizer: &Tokenizer,
) -> Result<(), EditError> {
    task.examples(tokenizer, &project.data)
        .map_err(|source| EditError::Data {
            task: task.name.clone(),
            source,
        })?;
    project.tasks.push(task);
    Ok(())
}

/// Checks that task `index` exists and is not learned.
///
/// # Errors
/// [`EditError::NoTask`] or [`EditError::Learned`].
pub fn check_editable(project: &Project, index: usize) -> Result<(), EditError> {
    let Some(task) = project.tasks.get(index) else {
        return Err(EditError::NoTask { index });
    };
    if index < project.learned() {
        return Err(EditError::Learned {
            task: task.name.clone(),
        });
    }
    Ok(())
}

/// Renames task `index` (not learned) to `name`, made unique; the scores of
/// tasks not learned yet are dropped, to be scored again under their names.
///
/// # Errors
/// As [`check_editable`]; [`EditError::NoName`].
pub fn rename_task(project: &mut Project, index: usize, name: &str) -> Result<(), EditError> {
    check_editable(project, index)?;
    let name = name.trim();
    if name.is_empty() {
        return Err(EditError::NoName);
    }
    if project.tasks[index].name == name {
        return Ok(());
    }
    let name = unique_name(project, name);
    project.tasks[index].name = name;
    project.forget_unlearned();
    Ok(())
}

/// Moves task `index` by `by` places, when both places hold tasks not
/// learned (a move past either end does nothing).
///
/// # Errors
/// As [`check_editable`], for either place.
pub fn move_task(project: &mut Project, index: usize, by: isize) -> Result<(), EditError> {
    let Some(to) = index
        .checked_add_signed(by)
        .filter(|&to| to < project.tasks.len())
    else {
        return Ok(());
    };
    check_editable(project, index)?;
    check_editable(project, to)?;
    project.tasks.swap(index, to);
    project.forget_unlearned();
    Ok(())
}

/// Deletes task `index` (not learned) and returns it.
///
/// # Errors
/// As [`check_editable`].
pub fn delete_task(project: &mut Project, index: usize) -> Result<ProjectTask, EditError> {
    check_editable(project, index)?;
    let task = project.tasks.remove(index);
    project.forget_unlearned();
    Ok(task)
}

/// When a task's card warns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsConfig {
    /// Fewer training samples than this warn.
    pub few_samples: usize,
    /// Fewer training tokens than this warn.
    pub few_tokens: usize,
    /// A share of a task's samples also in another task above this warns.
    pub duplicate_share: f64,
}

/// The figures and warnings of a task's card.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskStats {
    /// Samples in total.
    pub samples: usize,
    /// Training samples.
    pub train: usize,
    /// Held-out samples.
    pub heldout: usize,
    /// Tokens in the training samples.
    pub tokens: usize,
    /// `prompt => answer` samples.
    pub pairs: bool,
    /// Warnings, each a sentence: something to act on.
    pub warnings: Vec<String>,
    /// Notes, each a sentence: worth knowing, nothing lost.
    pub notes: Vec<String>,
}

/// The figures and warnings of every task, its samples cut to
/// `max_seq_len` tokens (the length the next task will be learned with).
pub fn task_stats(
    project: &Project,
    tokenizer: &Tokenizer,
    config: &StatsConfig,
    max_seq_len: usize,
) -> Vec<TaskStats> {
    let data = DataConfig {
        max_seq_len,
        ..project.data.clone()
    };
    let key = |s: &Sample| match s {
        Sample::Text(text) => text.clone(),
        Sample::Pair { prompt, answer } => format!("{prompt}\u{0}{answer}"),
    };
    let sets: Vec<HashSet<String>> = project
        .tasks
        .iter()
        .map(|t| t.samples.iter().map(key).collect())
        .collect();
    project
        .tasks
        .iter()
        .enumerate()
        .map(|(i, task)| {
            let tokens = task
                .split
                .train
                .iter()
                .map(|&s| match &task.samples[s] {
                    Sample::Text(text) => tokenizer.encode(text, false).map_or(0, |t| t.len()),
                    Sample::Pair { prompt, answer } => tokenizer
                        .encode(&format!("{prompt}{}{answer}", data.pair_separator), false)
                        .map_or(0, |t| t.len()),
                })
                .sum();
            let mut warnings = Vec::new();
            if task.split.train.len() < config.few_samples || tokens < config.few_tokens {
                warnings.push(format!(
                    "Little text: {tokens} tokens in {} training samples. Add more (aim for {} tokens) so there is something to learn.",
                    task.split.train.len(),
                    config.few_tokens
                ));
            }
            // A sample too long for the sequence is split or cut, not refused: say so.
            let fitted = task.examples(tokenizer, &data).map(|e| e.fitted);
            let fitted = fitted.unwrap_or_default();
            let sentences = |lines: Vec<String>| lines.into_iter().map(|w| format!("{w}."));
            warnings.extend(sentences(fitted.warnings(max_seq_len)));
            let notes = sentences(fitted.notes(max_seq_len)).collect();
            for (j, other) in sets.iter().enumerate() {
                let shared = sets[i].iter().filter(|s| other.contains(*s)).count();
                if j != i && shared as f64 > config.duplicate_share * sets[i].len() as f64 {
                    warnings.push(format!(
                        "Most of this text is also in {}: the router cannot tell the two apart.",
                        project.tasks[j].name
                    ));
                }
            }
            TaskStats {
                samples: task.samples.len(),
                train: task.split.train.len(),
                heldout: task.split.heldout.len(),
                tokens,
                pairs: task.samples.iter().any(|s| matches!(s, Sample::Pair { .. })),
                warnings,
                notes,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mose::{Method, MoseConfig};
    use crate::project::{BaseModel, Trained};
    use crate::sequence::SequenceReport;
    use crate::train::TrainConfig;

    fn tokenizer() -> Tokenizer {
        let json = include_str!("../tests/fixtures/tokenizer/tokenizer.json");
        Tokenizer::from_json(json).expect("fixture tokenizer loads")
    }

    fn project() -> Project {
        let config = crate::model::LlamaConfig::from_json(include_str!(
            "../tests/fixtures/llama-tiny/tied/config.json"
        ))
        .expect("the fixture config");
        let identity = BaseModel::of("tiny", &config, b"weights");
        Project::new(
            identity,
            DataConfig::default(),
            TrainConfig::new(),
            MoseConfig::new(),
            0,
        )
    }

    const COLOURS: &str =
        "red and blue => purple\nred and yellow => orange\nblue and yellow => green\n";

    /// `project` with `learned` of its tasks marked learned in a report.
    fn learned(project: &mut Project, learned: usize) {
        let mut report = SequenceReport::new(Method::Mose);
        report.routed = vec![Vec::new(); learned];
        project.trained = vec![Trained {
            method: Method::Mose,
            state: Vec::new(),
            report,
        }];
    }

    #[test]
    fn tasks_are_added_named_uniquely_and_refused_with_a_reason() {
        let tok = tokenizer();
        let mut p = project();
        for _ in 0..3 {
            let task = text_task(&p, " colours ", COLOURS.as_bytes(), 7).unwrap();
            add_task(&mut p, task, &tok).unwrap();
        }
        let names: Vec<&str> = p.tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["colours", "colours 2", "colours 3"]);
        assert!(matches!(
            text_task(&p, "  ", COLOURS.as_bytes(), 7),
            Err(EditError::NoName)
        ));
        let empty = text_task(&p, "empty", b"   \n", 7).unwrap_err();
        assert!(empty.to_string().starts_with("empty: "), "{empty}");

        let pack = pack_task(&p, "colours", COLOURS.as_bytes(), b"sky => blue\n", 2, 3).unwrap();
        assert_eq!(pack.name, "colours 4");
        assert_eq!(
            pack.split.train.len(),
            2,
            "a subset of the pack's training split"
        );
        assert_eq!(pack.split.heldout, vec![3]);
    }

    #[test]
    fn learned_tasks_stay_and_the_others_rename_move_and_delete() {
        let tok = tokenizer();
        let mut p = project();
        for name in ["a", "b", "c"] {
            let task = text_task(&p, name, COLOURS.as_bytes(), 1).unwrap();
            add_task(&mut p, task, &tok).unwrap();
        }
        learned(&mut p, 1);
        for refused in [
            rename_task(&mut p, 0, "z").unwrap_err(),
            move_task(&mut p, 1, -1).unwrap_err(),
            delete_task(&mut p, 0).map(|_| ()).unwrap_err(),
        ] {
            assert!(matches!(&refused, EditError::Learned { task } if task == "a"));
        }
        assert!(matches!(
            delete_task(&mut p, 9),
            Err(EditError::NoTask { index: 9 })
        ));
        rename_task(&mut p, 1, "c").unwrap();
        move_task(&mut p, 1, 1).unwrap();
        move_task(&mut p, 2, 1).unwrap(); // past the end: nothing
        let names: Vec<&str> = p.tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "c", "c 2"]);
        assert_eq!(delete_task(&mut p, 2).unwrap().name, "c 2");
        assert_eq!(p.tasks.len(), 2);
    }

    #[test]
    fn a_card_warns_of_little_text_shared_text_and_cut_samples() {
        let tok = tokenizer();
        let mut p = project();
        let long = format!("{COLOURS}the whole story => {}\n", "it rained ".repeat(40));
        for (name, text) in [
            ("a", COLOURS.to_string()),
            ("b", COLOURS.to_string()),
            ("c", long),
        ] {
            let task = text_task(&p, name, text.as_bytes(), 1).unwrap();
            add_task(&mut p, task, &tok).unwrap();
        }
        let config = StatsConfig {
            few_samples: 8,
            few_tokens: 1500,
            duplicate_share: 0.5,
        };
        let stats = task_stats(&p, &tok, &config, 32);
        assert!(
            stats
                .iter()
                .all(|s| s.pairs && s.warnings[0].starts_with("Little text"))
        );
        assert!(stats[0].warnings.iter().any(|w| w.contains("also in b")));
        assert!(
            stats[2]
                .warnings
                .iter()
                .any(|w| w.starts_with("1 answer is longer than 32 tokens")),
            "{:?}",
            stats[2].warnings
        );
        let roomy = task_stats(&p, &tok, &config, 4096);
        assert!(!roomy[2].warnings.iter().any(|w| w.contains("longer than")));
        assert!(
            stats.iter().all(|s| s.notes.is_empty()),
            "pairs are never windowed"
        );
    }
}
