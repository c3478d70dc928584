//! Tasks as data: the text a person gives for a task becomes samples, a
//! seeded held-out split, token sequences with loss targets, and padded
//! batches for training and evaluation.
//!
//! It implements the data side of docs/METHOD.md: "Metrics" (each task has a
//! held-out split; exact match on tasks with answers), "Query feature and
//! routing" (`query_len` marks the tokens `q(x)` averages over) and
//! "Reproducible" (one seed drives splits and shuffling). Pairs are trained
//! on the answer only, as Hugging Face fine-tuning does by labelling prompt
//! tokens -100; the tests check the target positions against the project's
//! byte-level BPE tokenizer fixture.
//!
//! A task's text is either paragraphs (the model learns all of it) or one
//! `prompt => answer` per line (the model learns the answer given the
//! prompt):
//!
//! ```text
//! capital of France => Paris
//! capital of Japan => Tokyo
//! ```

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::chat::{ChatError, ChatTemplate};
use crate::tokenizer::{Tokenizer, TokenizerError};

/// Why task text could not become samples, splits or examples.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The input is bigger than [`DataConfig::max_sample_bytes`].
    #[error(
        "the task text is {bytes} bytes, over the limit of {limit} bytes; split it into smaller files and add them as separate tasks"
    )]
    TooLarge {
        /// Size of the input.
        bytes: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The input holds NUL bytes or is not UTF-8.
    #[error(
        "this looks like a binary file, not text ({reason}); pick a plain UTF-8 text file, or paste the text"
    )]
    Binary {
        /// What gave it away, with its byte offset.
        reason: String,
    },
    /// The input has no samples (empty, or only whitespace).
    #[error(
        "the task text has no samples; write paragraphs separated by blank lines, or one `prompt{separator}answer` per line"
    )]
    Empty {
        /// The pair separator, to show the expected form.
        separator: String,
    },
    /// A pair line whose prompt or answer is empty.
    #[error(
        "line {line}: the {side} is empty; write `prompt{separator}answer` with text on both sides of {separator:?}"
    )]
    EmptyPairSide {
        /// 1-based line number in the task text.
        line: usize,
        /// `"prompt"` or `"answer"`.
        side: &'static str,
        /// The pair separator.
        separator: String,
    },
    /// A split was asked for with fewer than two samples.
    #[error(
        "a task needs at least two samples (one to learn, one to check), but it has {samples}; add more samples"
    )]
    TooFewSamples {
        /// Samples in the task.
        samples: usize,
    },
    /// `max_seq_len` too small to hold any example.
    #[error(
        "max_seq_len is {max_seq_len}, but an example needs at least 2 tokens; set max_seq_len to 2 or more"
    )]
    SeqLenTooSmall {
        /// The configured `max_seq_len`.
        max_seq_len: usize,
    },
    /// A sample that gives fewer than two token ids.
    #[error(
        "the sample {sample:?} gives only {ids} token(s), and learning needs at least 2; write more text in it"
    )]
    TooShort {
        /// The start of the sample's text.
        sample: String,
        /// How many ids it gave.
        ids: usize,
    },
    /// A pair that cannot keep one prompt and one answer token in `max_seq_len`.
    #[error(
        "the pair {prompt:?} needs at least {needed} tokens (the start, one prompt and one answer token), over max_seq_len {max_seq_len}; raise max_seq_len"
    )]
    AnswerTooLong {
        /// The start of the pair's prompt.
        prompt: String,
        /// Tokens the shortest possible example takes.
        needed: usize,
        /// The configured `max_seq_len`.
        max_seq_len: usize,
    },
    /// A saved [`Batches`] state that cannot be resumed.
    #[error("the saved batch order is damaged ({reason}); train this task again from its start")]
    DamagedBatches {
        /// What is inconsistent.
        reason: String,
    },
    /// The tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The model's chat template failed on a pair.
    #[error(transparent)]
    Chat(#[from] ChatError),
}

/// One unit of a task's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sample {
    /// Plain text: the model learns all of it.
    Text(String),
    /// The model learns `answer` given `prompt`.
    Pair {
        /// What the model is shown.
        prompt: String,
        /// What it should continue with.
        answer: String,
    },
}

/// How task text is read, split and cut into examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DataConfig {
    /// Largest task text accepted, in bytes (default 8 MiB); bigger inputs are refused.
    pub max_sample_bytes: usize,
    /// Token ids per example (default 128); longer texts are cut into windows,
    /// longer pairs lose prompt tokens from the left, and an answer that does
    /// not fit even so loses its end ([`tokenize_fitted`]).
    pub max_seq_len: usize,
    /// When a pair's answer does not fit in `max_seq_len` beside one prompt
    /// token, the share of the room after the start token its prompt keeps
    /// (default 0.5): the prompt is what the model answers and the router
    /// reads, so it keeps as much as the answer.
    pub cut_pair_prompt_share: f64,
    /// Share of a task's samples held out for evaluation (default 0.2).
    pub heldout_fraction: f64,
    /// Fewest held-out samples (default 1), as long as one is left to train on.
    pub min_heldout: usize,
    /// What splits a line into prompt and answer (default `" => "`).
    pub pair_separator: String,
    /// Appended to a prompt when it is shown to the model (default `" =>"`),
    /// so that prompt and answer tokens together read as the person's line
    /// `prompt => answer`.
    pub prompt_suffix: String,
    /// Pairs go through the model's chat template, where it has one (an
    /// instruct model): the prompt as a user turn, the answer as the
    /// assistant's (default on). Off, or for a plain model, a pair is read
    /// as the line `prompt => answer`.
    pub use_chat_template: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            max_sample_bytes: 8 * 1024 * 1024,
            max_seq_len: 128,
            cut_pair_prompt_share: 0.5,
            heldout_fraction: 0.2,
            min_heldout: 1,
            pair_separator: " => ".to_string(),
            prompt_suffix: " =>".to_string(),
            use_chat_template: true,
        }
    }
}

/// The UTF-8 byte-order mark some editors put at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Characters of a sample quoted in an error message.
const PREVIEW_CHARS: usize = 40;

/// The start of `text`, to name a sample in an error message.
fn preview(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(PREVIEW_CHARS).collect();
    if chars.next().is_some() {
        format!("{head}...")
    } else {
        head
    }
}

/// Reads a task's text into samples.
///
/// A UTF-8 byte-order mark is dropped and `\r\n` line ends become `\n`. If
/// every non-empty line holds [`DataConfig::pair_separator`], each line is a
/// [`Sample::Pair`], split at the first separator with both sides trimmed.
/// Otherwise the text is split into paragraphs at blank lines, and each
/// paragraph (its lines joined with `\n`, trimmed) is a [`Sample::Text`].
///
/// A line that ends with the separator's trimmed form (`"q =>"`, as editors
/// leave `"q => "`) or starts with it (`"=> a"`) also counts as a pair line,
/// so that its empty side is reported instead of the whole file silently
/// becoming paragraphs.
///
/// # Errors
/// [`DataError::TooLarge`] over [`DataConfig::max_sample_bytes`];
/// [`DataError::Binary`] for NUL bytes or invalid UTF-8;
/// [`DataError::Empty`] when no sample is left;
/// [`DataError::EmptyPairSide`] for a pair line with nothing on one side.
pub fn parse_task_text(bytes: &[u8], config: &DataConfig) -> Result<Vec<Sample>, DataError> {
    if bytes.len() > config.max_sample_bytes {
        return Err(DataError::TooLarge {
            bytes: bytes.len(),
            limit: config.max_sample_bytes,
        });
    }
    let (offset, body) = match bytes.strip_prefix(BOM) {
        Some(rest) => (BOM.len(), rest),
        None => (0, bytes),
    };
    if let Some(at) = body.iter().position(|&b| b == 0) {
        return Err(DataError::Binary {
            reason: format!("a NUL byte at offset {}", at + offset),
        });
    }
    let text = std::str::from_utf8(body).map_err(|e| DataError::Binary {
        reason: format!("invalid UTF-8 at offset {}", e.valid_up_to() + offset),
    })?;
    let text = text.replace("\r\n", "\n");
    let empty = || DataError::Empty {
        separator: config.pair_separator.clone(),
    };

    let lines: Vec<(usize, &str)> = text
        .split('\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line))
        .filter(|(_, line)| !line.trim().is_empty())
        .collect();
    if lines.is_empty() {
        return Err(empty());
    }

    let separator = config.pair_separator.as_str();
    let pairs: Option<Vec<(usize, &str, &str)>> = lines
        .iter()
        .map(|&(number, line)| split_pair(line, separator).map(|(p, a)| (number, p, a)))
        .collect();
    if let Some(pairs) = pairs {
        return pairs
            .into_iter()
            .map(|(line, prompt, answer)| {
                let side = if prompt.is_empty() {
                    "prompt"
                } else if answer.is_empty() {
                    "answer"
                } else {
                    return Ok(Sample::Pair {
                        prompt: prompt.to_string(),
                        answer: answer.to_string(),
                    });
                };
                Err(DataError::EmptyPairSide {
                    line,
                    side,
                    separator: separator.to_string(),
                })
            })
            .collect();
    }

    let mut samples = Vec::new();
    let mut paragraph: Vec<&str> = Vec::new();
    for line in text.split('\n').chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if !paragraph.is_empty() {
                samples.push(Sample::Text(paragraph.join("\n").trim().to_string()));
                paragraph.clear();
            }
        } else {
            paragraph.push(line);
        }
    }
    if samples.is_empty() {
        return Err(empty());
    }
    Ok(samples)
}

/// Splits one line into trimmed (prompt, answer), or `None` when the line is
/// not a pair line. See [`parse_task_text`] for the edge forms.
fn split_pair<'a>(line: &'a str, separator: &str) -> Option<(&'a str, &'a str)> {
    if separator.is_empty() {
        return None;
    }
    if let Some((prompt, answer)) = line.split_once(separator) {
        return Some((prompt.trim(), answer.trim()));
    }
    let line = line.trim();
    let tail = separator.trim_end();
    if !tail.is_empty()
        && let Some(prompt) = line.strip_suffix(tail)
    {
        return Some((prompt.trim(), ""));
    }
    let head = separator.trim_start();
    if !head.is_empty()
        && let Some(answer) = line.strip_prefix(head)
    {
        return Some(("", answer.trim()));
    }
    None
}

/// Sample indices for training and for held-out evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Indices trained on, ascending.
    pub train: Vec<usize>,
    /// Indices held out, ascending.
    pub heldout: Vec<usize>,
}

/// Splits `n` samples into train and held-out sets.
///
/// The indices are shuffled with `StdRng::seed_from_u64(seed)`, and the first
/// `max(min_heldout, round(n * heldout_fraction))` of them are held out,
/// capped at `n - 1` so that train is never empty. The same `n`, config and
/// seed give the same split on every platform, wasm32 included: in the
/// pinned rand 0.10.4, `StdRng` is `ChaCha12` and `shuffle` draws `u32`s, so
/// neither depends on the pointer width or the byte order. rand documents
/// `StdRng` as free to change between versions; a test pins one split, so
/// an upgrade that changes it fails there instead of silently moving old
/// projects' samples between train and held-out.
///
/// # Errors
/// [`DataError::TooFewSamples`] when `n < 2`.
pub fn split(n: usize, config: &DataConfig, seed: u64) -> Result<Split, DataError> {
    if n < 2 {
        return Err(DataError::TooFewSamples { samples: n });
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    // `as` saturates: a negative or NaN fraction holds out `min_heldout`.
    let by_fraction = (n as f64 * config.heldout_fraction).round() as usize;
    let heldout_len = by_fraction.max(config.min_heldout).min(n - 1);
    let mut heldout = order[..heldout_len].to_vec();
    let mut train = order[heldout_len..].to_vec();
    heldout.sort_unstable();
    train.sort_unstable();
    Ok(Split { train, heldout })
}

/// One tokenized sequence for training or evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    /// Token ids.
    pub ids: Vec<u32>,
    /// `ids.len() - 1` flags: `targets[i]` says whether predicting `ids[i + 1]`
    /// from position `i` counts in the loss.
    pub targets: Vec<bool>,
    /// How many leading ids form the router's query `q(x)`: the whole
    /// sequence for text, the start token and the prompt for a pair.
    pub query_len: usize,
    /// For a pair, the half-open range `start..end` of `ids` holding the
    /// answer and end tokens, for exact-match scoring.
    pub answer: Option<(usize, usize)>,
    /// Position of this window within its sample (0 for the first; a long
    /// text gives several), so that a sample is routed as one.
    #[serde(default)]
    pub window: usize,
}

/// How a sample was made to fit [`DataConfig::max_seq_len`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// It fits as it is.
    Whole,
    /// A text cut into this many windows.
    Windows(usize),
    /// A pair whose prompt lost ids from the left: `kept` of `of`.
    PromptCut {
        /// Prompt ids kept.
        kept: usize,
        /// Prompt ids in all.
        of: usize,
    },
    /// A pair whose answer lost ids from its end (the end token with them):
    /// `kept` of `of`, beside a prompt cut to its share.
    AnswerCut {
        /// Answer ids kept.
        kept: usize,
        /// Answer ids in all, with the end token.
        of: usize,
    },
}

/// How many samples of a task were made to fit [`DataConfig::max_seq_len`],
/// and how: what a task's card and the CLI warn about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fitted {
    /// Texts cut into windows.
    pub windowed: usize,
    /// Pairs whose prompt lost its start.
    pub prompts_cut: usize,
    /// Pairs whose answer lost its end.
    pub answers_cut: usize,
}

impl Fitted {
    /// Counts one sample's fit.
    pub fn add(&mut self, fit: Fit) {
        match fit {
            Fit::Whole => {}
            Fit::Windows(_) => self.windowed += 1,
            Fit::PromptCut { .. } => self.prompts_cut += 1,
            Fit::AnswerCut { .. } => self.answers_cut += 1,
        }
    }

    /// One sentence per kind of fit that loses tokens (answers cut, then
    /// prompts cut), for `max_seq_len`.
    pub fn warnings(&self, max_seq_len: usize) -> Vec<String> {
        let mut out = Vec::new();
        if self.answers_cut > 0 {
            out.push(format!(
                "{} longer than {max_seq_len} tokens allow and cut: the model learns only the start. \
                 Raise the sequence length to learn them whole",
                samples(self.answers_cut, "answer", "answers")
            ));
        }
        if self.prompts_cut > 0 {
            out.push(format!(
                "{} cut from the left to fit {max_seq_len} tokens beside their answers",
                samples(self.prompts_cut, "prompt", "prompts")
            ));
        }
        out
    }

    /// What is worth knowing without losing anything: texts learned in
    /// windows (every token is learned; no window sees across its edge).
    pub fn notes(&self, max_seq_len: usize) -> Vec<String> {
        match self.windowed {
            0 => Vec::new(),
            n => vec![format!(
                "{} longer than {max_seq_len} tokens and learned in windows of {max_seq_len}",
                samples(n, "text", "texts")
            )],
        }
    }
}

/// `1 answer is` or `n answers are`.
fn samples(n: usize, one: &str, many: &str) -> String {
    match n {
        1 => format!("1 {one} is"),
        n => format!("{n} {many} are"),
    }
}

/// Turns a sample into examples of at most [`DataConfig::max_seq_len`] ids
/// ([`tokenize_fitted`] without saying how it was made to fit).
///
/// # Errors
/// As [`tokenize_fitted`].
pub fn tokenize(
    sample: &Sample,
    tokenizer: &Tokenizer,
    config: &DataConfig,
) -> Result<Vec<Example>, DataError> {
    tokenize_fitted(sample, tokenizer, config).map(|(examples, _)| examples)
}

/// Turns a sample into examples of at most [`DataConfig::max_seq_len`] ids,
/// and says how it was made to fit. A long sample is never refused.
///
/// - Text: `[bos] + encode(text) + [eos]` (start and end tokens where the
///   tokenizer has them), every prediction a target. A longer sequence is cut
///   into windows of `max_seq_len` ids that overlap by one id, so that every
///   id after the first is predicted exactly once and none is lost at a cut;
///   windows after the first get no new start token.
/// - Pair: `[bos] + encode(prompt + prompt_suffix) + encode(" " + answer) +
///   [eos]`, targets only where the predicted id is an answer or end token.
///   A longer sequence keeps its answer whole and loses prompt tokens from
///   the left (the start token stays, and so does the prompt's end, where
///   the suffix is), keeping at least one prompt token. An answer too long
///   for that keeps [`DataConfig::cut_pair_prompt_share`] of the room for
///   the prompt's end and loses its own end: the model learns the answer's
///   start, and exact match checks that start.
///
/// # Errors
/// [`DataError::SeqLenTooSmall`] when `max_seq_len < 2`;
/// [`DataError::TooShort`] for a sample of fewer than two ids;
/// [`DataError::AnswerTooLong`] when `max_seq_len` cannot hold the start,
/// one prompt and one answer token;
/// [`DataError::Tokenizer`] when encoding fails.
pub fn tokenize_fitted(
    sample: &Sample,
    tokenizer: &Tokenizer,
    config: &DataConfig,
) -> Result<(Vec<Example>, Fit), DataError> {
    let max_len = config.max_seq_len;
    if max_len < 2 {
        return Err(DataError::SeqLenTooSmall {
            max_seq_len: max_len,
        });
    }
    let special = tokenizer.special();
    match sample {
        Sample::Text(text) => {
            let mut ids: Vec<u32> = special.bos.into_iter().collect();
            ids.extend(tokenizer.encode(text, false)?);
            ids.extend(special.eos);
            if ids.len() < 2 {
                return Err(DataError::TooShort {
                    sample: preview(text),
                    ids: ids.len(),
                });
            }
            // Window k starts at k * (max_len - 1): its first id is the
            // previous window's last, which it predicts from.
            let examples: Vec<Example> = (0..ids.len() - 1)
                .step_by(max_len - 1)
                .enumerate()
                .map(|(position, start)| {
                    let window = ids[start..ids.len().min(start + max_len)].to_vec();
                    Example {
                        targets: vec![true; window.len() - 1],
                        query_len: window.len(),
                        ids: window,
                        answer: None,
                        window: position,
                    }
                })
                .collect();
            let fit = match examples.len() {
                1 => Fit::Whole,
                n => Fit::Windows(n),
            };
            Ok((examples, fit))
        }
        Sample::Pair { prompt, answer } => {
            let PairIds {
                start,
                prompt: mut prompt_ids,
                answer: mut answer_ids,
            } = pair_ids(prompt, Some(answer), tokenizer, config)?;
            let room = max_len.saturating_sub(start.len());
            let (prompt_len, answer_len) = (prompt_ids.len(), answer_ids.len());
            let mut fit = Fit::Whole;
            if prompt_len + answer_len > room {
                if room < 2 || prompt_len == 0 || answer_len == 0 {
                    return Err(DataError::AnswerTooLong {
                        prompt: preview(prompt),
                        needed: start.len() + 2,
                        max_seq_len: max_len,
                    });
                }
                let keep = match answer_len < room {
                    // The answer stays whole beside the prompt's end.
                    true => room - answer_len,
                    false => {
                        let share = (room as f64 * config.cut_pair_prompt_share).round() as usize;
                        let keep = prompt_len.min(share).clamp(1, room - 1);
                        answer_ids.truncate(room - keep);
                        fit = Fit::AnswerCut {
                            kept: room - keep,
                            of: answer_len,
                        };
                        keep
                    }
                };
                prompt_ids.drain(..prompt_len - keep);
                if fit == Fit::Whole {
                    fit = Fit::PromptCut {
                        kept: keep,
                        of: prompt_len,
                    };
                }
            }
            let mut ids = start;
            ids.extend(prompt_ids);
            let answer_start = ids.len();
            ids.extend(answer_ids);
            if ids.len() < 2 || answer_start == 0 || answer_start == ids.len() {
                return Err(DataError::TooShort {
                    sample: preview(&format!("{prompt}{} {answer}", config.prompt_suffix)),
                    ids: ids.len(),
                });
            }
            // targets[i] predicts ids[i + 1]: on from the last prompt token.
            let targets = (1..ids.len()).map(|next| next >= answer_start).collect();
            let example = Example {
                answer: Some((answer_start, ids.len())),
                query_len: answer_start,
                targets,
                ids,
                window: 0,
            };
            Ok((vec![example], fit))
        }
    }
}

/// A text a person typed, read as its task's samples were read, so that the
/// router sees the same kind of query: when every non-empty line is a pair
/// line (`prompt => answer`, or `prompt =>` awaiting its answer), one query
/// per line, `[bos] + encode(prompt + prompt_suffix)` (a pair's query, its
/// prompt cut from the left to fit); otherwise the text as one text sample
/// (its windows). Each returned example's `window` says which sample it
/// belongs to, as [`tokenize`]'s do.
///
/// # Errors
/// As [`tokenize`]'s for text; [`DataError::Tokenizer`] for a line.
pub fn prompt_queries(
    text: &str,
    tokenizer: &Tokenizer,
    config: &DataConfig,
) -> Result<Vec<Example>, DataError> {
    let text = text.replace("\r\n", "\n");
    let prompts: Option<Vec<&str>> = text
        .split('\n')
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            split_pair(line, &config.pair_separator).and_then(|(p, _)| (!p.is_empty()).then_some(p))
        })
        .collect();
    let prompts = match prompts {
        Some(prompts) if !prompts.is_empty() => prompts,
        _ => return tokenize(&Sample::Text(text.trim().to_string()), tokenizer, config),
    };
    prompts
        .into_iter()
        .map(|prompt| {
            let PairIds {
                start,
                prompt: mut prompt_ids,
                ..
            } = pair_ids(prompt, None, tokenizer, config)?;
            let keep = config.max_seq_len.saturating_sub(start.len()).max(1);
            prompt_ids.drain(..prompt_ids.len().saturating_sub(keep));
            let ids: Vec<u32> = start.into_iter().chain(prompt_ids).collect();
            Ok(Example {
                targets: vec![false; ids.len().saturating_sub(1)],
                query_len: ids.len(),
                ids,
                answer: None,
                window: 0,
            })
        })
        .collect()
}

/// A pair as the model reads it, in three parts: what always starts it, the
/// prompt (cut from the left when a pair is too long) and the answer with
/// its end (empty when there is no answer yet).
struct PairIds {
    start: Vec<u32>,
    prompt: Vec<u32>,
    answer: Vec<u32>,
}

/// The model's chat template, where it has one and `config` uses it.
fn chat_of<'a>(tokenizer: &'a Tokenizer, config: &DataConfig) -> Option<&'a ChatTemplate> {
    tokenizer
        .chat_template()
        .filter(|_| config.use_chat_template)
}

/// `prompt` and `answer` as the model reads them. As a line,
/// `[bos] + encode(prompt + prompt_suffix)` and `encode(" " + answer) + [eos]`;
/// through a chat template ([`crate::chat`]), the rendered prompt (which
/// writes its own start) and the rendered answer up to and with the end
/// token, if the template writes one (a template's end of turn is then the
/// end the model learns).
fn pair_ids(
    prompt: &str,
    answer: Option<&str>,
    tokenizer: &Tokenizer,
    config: &DataConfig,
) -> Result<PairIds, DataError> {
    let special = tokenizer.special();
    let Some(chat) = chat_of(tokenizer, config) else {
        let answer = match answer {
            Some(answer) => {
                let mut ids = tokenizer.encode(&format!(" {answer}"), false)?;
                ids.extend(special.eos);
                ids
            }
            None => Vec::new(),
        };
        return Ok(PairIds {
            start: special.bos.into_iter().collect(),
            prompt: tokenizer.encode(&format!("{prompt}{}", config.prompt_suffix), false)?,
            answer,
        });
    };
    let answer = match answer {
        Some(answer) => {
            let mut ids = tokenizer.encode(&chat.answer(prompt, answer)?, false)?;
            if let Some(end) = special
                .eos
                .and_then(|eos| ids.iter().position(|&id| id == eos))
            {
                ids.truncate(end + 1);
            }
            ids
        }
        None => Vec::new(),
    };
    Ok(PairIds {
        start: Vec::new(),
        prompt: tokenizer.encode(&chat.prompt(prompt)?, false)?,
        answer,
    })
}

/// The text generation continues for a prompt a person typed: through the
/// model's chat template when the text is one pair line awaiting its answer
/// (`prompt =>`) and [`pair_ids`] would read pairs through it, so that the
/// model is asked as it was taught; otherwise the text as typed.
///
/// # Errors
/// [`ChatError::Render`] when the template fails.
pub fn generation_prompt(
    text: &str,
    tokenizer: &Tokenizer,
    config: &DataConfig,
) -> Result<String, ChatError> {
    let awaiting = match text.trim().lines().count() {
        1 => split_pair(text.trim(), &config.pair_separator)
            .filter(|(prompt, answer)| !prompt.is_empty() && answer.is_empty()),
        _ => None,
    };
    match (chat_of(tokenizer, config), awaiting) {
        (Some(chat), Some((prompt, _))) => chat.prompt(prompt),
        _ => Ok(text.to_string()),
    }
}

/// Examples padded on the right to one length, as flat row-major host
/// vectors ready to become tensors.
///
/// Right padding keeps causal attention exact for the real tokens: no real
/// position ever attends to a pad.
#[derive(Debug, Clone, PartialEq)]
pub struct PaddedBatch {
    /// Token ids, `[batch, len]`.
    pub ids: Vec<u32>,
    /// Loss weights, `[batch, len - 1]`: 1.0 where predicting the next id
    /// counts, 0.0 at non-targets and padding.
    pub targets: Vec<f32>,
    /// Query mask, `[batch, len]`: 1.0 on each example's first `query_len` ids.
    pub query_mask: Vec<f32>,
    /// Examples in the batch.
    pub batch: usize,
    /// Ids per row: the longest example's length.
    pub len: usize,
}

impl PaddedBatch {
    /// Pads `examples` with `pad_id` on the right to the longest one.
    ///
    /// # Panics
    /// On an empty slice, and on an example whose fields disagree (fewer
    /// than two ids, `targets` not one shorter than `ids`, `query_len` past
    /// the end): both are programmer errors, since [`tokenize`] never makes
    /// such an example.
    pub fn new(examples: &[&Example], pad_id: u32) -> Self {
        assert!(
            !examples.is_empty(),
            "a padded batch needs at least one example"
        );
        for example in examples {
            assert!(
                example.ids.len() >= 2
                    && example.targets.len() + 1 == example.ids.len()
                    && example.query_len <= example.ids.len(),
                "inconsistent example: {} ids, {} targets, query_len {}",
                example.ids.len(),
                example.targets.len(),
                example.query_len
            );
        }
        let batch = examples.len();
        let len = examples.iter().map(|e| e.ids.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch * len);
        let mut targets = Vec::with_capacity(batch * (len - 1));
        let mut query_mask = Vec::with_capacity(batch * len);
        for example in examples {
            let n = example.ids.len();
            ids.extend_from_slice(&example.ids);
            ids.extend(std::iter::repeat_n(pad_id, len - n));
            targets.extend(example.targets.iter().map(|&t| if t { 1.0 } else { 0.0 }));
            targets.extend(std::iter::repeat_n(0.0, len - n));
            query_mask.extend((0..len).map(|i| if i < example.query_len { 1.0 } else { 0.0 }));
        }
        Self {
            ids,
            targets,
            query_mask,
            batch,
            len,
        }
    }
}

/// Mixes the epoch into the seed so that each epoch has its own order
/// (the 64-bit golden ratio, odd, so distinct epochs give distinct seeds).
const EPOCH_SEED_MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// The order of epoch `epoch`: `0..n` shuffled by a generator seeded from
/// `seed` and `epoch`.
fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(
        seed ^ epoch.wrapping_mul(EPOCH_SEED_MIX),
    ));
    order
}

/// Seeded, resumable batches of example indices for training.
///
/// Each epoch visits every index once in its own shuffled order. Batches are
/// always whole: an epoch's leftover indices start a batch that the next
/// epoch fills. The state (seed, epoch, position and the epoch's order)
/// serialises, so training resumes exactly where it stopped; a damaged
/// state is refused when it is read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BatchesState", into = "BatchesState")]
pub struct Batches {
    seed: u64,
    batch_size: usize,
    /// Epochs completed.
    epoch: u64,
    /// Next index into `order`; always below `order.len()`.
    position: usize,
    /// This epoch's order of `0..n_examples`.
    order: Vec<usize>,
}

/// [`Batches`] as written, checked on the way back in.
#[derive(Serialize, Deserialize)]
struct BatchesState {
    seed: u64,
    batch_size: usize,
    epoch: u64,
    position: usize,
    order: Vec<usize>,
}

impl From<Batches> for BatchesState {
    fn from(b: Batches) -> Self {
        Self {
            seed: b.seed,
            batch_size: b.batch_size,
            epoch: b.epoch,
            position: b.position,
            order: b.order,
        }
    }
}

impl TryFrom<BatchesState> for Batches {
    type Error = DataError;

    fn try_from(s: BatchesState) -> Result<Self, DataError> {
        let damaged = |reason: String| Err(DataError::DamagedBatches { reason });
        if s.batch_size == 0 {
            return damaged("batch size 0".to_string());
        }
        if s.position >= s.order.len() {
            return damaged(format!(
                "position {} in an order of {} examples",
                s.position,
                s.order.len()
            ));
        }
        let mut seen = vec![false; s.order.len()];
        for &i in &s.order {
            match seen.get_mut(i) {
                Some(slot) if !*slot => *slot = true,
                _ => return damaged(format!("index {i} is out of range or repeated")),
            }
        }
        Ok(Self {
            seed: s.seed,
            batch_size: s.batch_size,
            epoch: s.epoch,
            position: s.position,
            order: s.order,
        })
    }
}

impl Batches {
    /// Batches of `batch_size` indices into `0..n_examples`, shuffled by `seed`.
    ///
    /// # Panics
    /// When `n_examples` or `batch_size` is 0 (programmer errors: [`split`]
    /// always leaves a training sample, and configs are checked earlier).
    pub fn new(n_examples: usize, batch_size: usize, seed: u64) -> Self {
        assert!(n_examples > 0, "batches need at least one example");
        assert!(batch_size > 0, "batch size must be positive");
        Self {
            seed,
            batch_size,
            epoch: 0,
            position: 0,
            order: epoch_order(n_examples, seed, 0),
        }
    }

    /// The next batch: `batch_size` example indices. Crossing the end of an
    /// epoch reshuffles; a batch larger than the data spans several epochs.
    pub fn next_indices(&mut self) -> Vec<usize> {
        let mut indices = Vec::with_capacity(self.batch_size);
        while indices.len() < self.batch_size {
            let take = (self.batch_size - indices.len()).min(self.order.len() - self.position);
            indices.extend_from_slice(&self.order[self.position..self.position + take]);
            self.position += take;
            if self.position == self.order.len() {
                self.epoch += 1;
                self.position = 0;
                self.order = epoch_order(self.order.len(), self.seed, self.epoch);
            }
        }
        indices
    }

    /// Epochs completed so far.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> Tokenizer {
        let json = include_str!("../tests/fixtures/tokenizer/tokenizer.json");
        Tokenizer::from_json(json).expect("fixture tokenizer loads")
    }

    fn parse(text: &str) -> Result<Vec<Sample>, DataError> {
        parse_task_text(text.as_bytes(), &DataConfig::default())
    }

    fn pair(prompt: &str, answer: &str) -> Sample {
        Sample::Pair {
            prompt: prompt.to_string(),
            answer: answer.to_string(),
        }
    }

    #[test]
    fn lines_with_the_separator_are_pairs() {
        let samples = parse("capital of France => Paris\n\n  2 + 2 =>  4 \nx => y => z\n").unwrap();
        assert_eq!(
            samples,
            vec![
                pair("capital of France", "Paris"),
                pair("2 + 2", "4"),
                pair("x", "y => z"), // split at the first separator
            ]
        );
    }

    #[test]
    fn other_text_is_paragraphs() {
        let samples = parse("\n  One line\ntwo lines.\n\n \t\nThird => not a pair\n\n").unwrap();
        assert_eq!(
            samples,
            vec![
                Sample::Text("One line\ntwo lines.".to_string()),
                Sample::Text("Third => not a pair".to_string()),
            ]
        );
    }

    #[test]
    fn crlf_and_bom_are_normalised() {
        let config = DataConfig::default();
        let pairs = parse_task_text(b"\xEF\xBB\xBFa => b\r\nc => d\r\n", &config).unwrap();
        assert_eq!(pairs, vec![pair("a", "b"), pair("c", "d")]);
        let texts = parse_task_text(b"\xEF\xBB\xBFx\r\ny\r\n\r\nz\r\n", &config).unwrap();
        assert_eq!(
            texts,
            vec![
                Sample::Text("x\ny".to_string()),
                Sample::Text("z".to_string())
            ]
        );
    }

    #[test]
    fn empty_and_whitespace_text_is_refused() {
        for text in ["", " \n\t\r\n  ", "\u{feff}"] {
            let err = parse(text).unwrap_err();
            assert!(matches!(err, DataError::Empty { .. }), "{text:?}: {err}");
        }
        assert!(matches!(
            parse_task_text(b"\xEF\xBB\xBF", &DataConfig::default()),
            Err(DataError::Empty { .. })
        ));
    }

    #[test]
    fn binary_input_is_refused() {
        let config = DataConfig::default();
        let err = parse_task_text(b"ab\0cd", &config).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("this looks like a binary file, not text")
        );
        assert!(err.to_string().contains("offset 2"), "{err}");
        let err = parse_task_text(b"ok \xFF\xFE", &config).unwrap_err();
        assert!(matches!(err, DataError::Binary { .. }));
        assert!(
            err.to_string().contains("invalid UTF-8 at offset 3"),
            "{err}"
        );
    }

    #[test]
    fn too_large_input_is_refused() {
        let config = DataConfig {
            max_sample_bytes: 4,
            ..DataConfig::default()
        };
        assert!(parse_task_text(b"abcd", &config).is_ok());
        let err = parse_task_text(b"abcde", &config).unwrap_err();
        assert!(matches!(err, DataError::TooLarge { bytes: 5, limit: 4 }));
        assert!(err.to_string().contains("split it"), "{err}");
    }

    #[test]
    fn a_pair_with_an_empty_side_names_its_line() {
        let err = parse("a => b\n\nc => \n").unwrap_err();
        assert!(
            matches!(
                err,
                DataError::EmptyPairSide {
                    line: 3,
                    side: "answer",
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().starts_with("line 3: the answer is empty"),
            "{err}"
        );
        // An editor trims "c => " to "c =>"; still a pair line, still reported.
        let err = parse("a => b\nc =>\n").unwrap_err();
        assert!(matches!(
            err,
            DataError::EmptyPairSide {
                line: 2,
                side: "answer",
                ..
            }
        ));
        let err = parse("=> b\nc => d\n").unwrap_err();
        assert!(matches!(
            err,
            DataError::EmptyPairSide {
                line: 1,
                side: "prompt",
                ..
            }
        ));
    }

    #[test]
    fn split_is_seeded_disjoint_and_complete() {
        let config = DataConfig::default();
        let a = split(20, &config, 7).unwrap();
        assert_eq!(a, split(20, &config, 7).unwrap());
        assert_eq!(a.heldout.len(), 4); // round(20 * 0.2)
        let mut all: Vec<usize> = a.train.iter().chain(&a.heldout).copied().collect();
        assert!(a.train.is_sorted() && a.heldout.is_sorted());
        all.sort_unstable();
        assert_eq!(all, (0..20).collect::<Vec<_>>());
        assert_ne!(a.heldout, split(20, &config, 8).unwrap().heldout);
    }

    #[test]
    fn split_is_pinned_across_platforms_and_versions() {
        // If this fails after a rand upgrade, saved projects would move
        // samples between train and held-out: keep the old shuffle instead.
        let s = split(10, &DataConfig::default(), 42).unwrap();
        assert_eq!(s.heldout, vec![6, 8]);
    }

    #[test]
    fn split_sizes_keep_one_on_each_side() {
        let config = DataConfig::default();
        let two = split(2, &config, 0).unwrap();
        assert_eq!((two.train.len(), two.heldout.len()), (1, 1));
        let greedy = DataConfig {
            heldout_fraction: 1.0,
            min_heldout: 50,
            ..config.clone()
        };
        assert_eq!(split(5, &greedy, 0).unwrap().train.len(), 1);
        let none = DataConfig {
            heldout_fraction: 0.0,
            min_heldout: 0,
            ..config.clone()
        };
        assert!(split(5, &none, 0).unwrap().heldout.is_empty());
        for n in [0, 1] {
            assert!(matches!(
                split(n, &config, 0),
                Err(DataError::TooFewSamples { samples }) if samples == n
            ));
        }
    }

    #[test]
    fn a_typed_prompt_is_read_as_its_task_samples_are() {
        let (tok, config) = (tokenizer(), DataConfig::default());
        // Pair lines, answered or awaiting their answer: each line's prompt
        // is a query exactly as the pair's training example starts.
        let typed = prompt_queries("bolivia => B AH0 L\r\n\nabandon =>\n", &tok, &config).unwrap();
        for (query, (prompt, answer)) in
            typed.iter().zip([("bolivia", "B AH0 L"), ("abandon", "x")])
        {
            let trained = &tokenize(&pair(prompt, answer), &tok, &config).unwrap()[0];
            assert_eq!(query.ids, trained.ids[..trained.query_len]);
            assert_eq!((query.query_len, query.window), (trained.query_len, 0));
            assert!(query.targets.iter().all(|&t| !t));
        }
        assert_eq!(typed.len(), 2);
        // Anything else is one text sample.
        let text = "A paragraph => with an arrow\nand a line without one.";
        assert_eq!(
            prompt_queries(text, &tok, &config).unwrap(),
            tokenize(&Sample::Text(text.to_string()), &tok, &config).unwrap()
        );
        // A long prompt keeps its end, where the separator is.
        let short = DataConfig {
            max_seq_len: 4,
            ..config.clone()
        };
        let cut = prompt_queries(&format!("{} =>", "word ".repeat(40)), &tok, &short).unwrap();
        assert_eq!(cut[0].ids.len(), 4);
        assert_eq!(cut[0].ids.last(), tok.encode(" =>", false).unwrap().last());
    }

    #[test]
    fn text_targets_everything_and_windows_overlap_by_one() {
        let tok = tokenizer();
        let special = tok.special();
        let text = "The House adjourned at noon, and the Senate sat until the evening.";
        let mut full: Vec<u32> = special.bos.into_iter().collect();
        full.extend(tok.encode(text, false).unwrap());
        full.extend(special.eos);

        let sample = Sample::Text(text.to_string());
        let whole = tokenize(&sample, &tok, &DataConfig::default()).unwrap();
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].ids, full);
        assert_eq!(whole[0].targets, vec![true; full.len() - 1]);
        assert_eq!(whole[0].query_len, full.len());
        assert_eq!(whole[0].answer, None);

        let config = DataConfig {
            max_seq_len: 5,
            ..DataConfig::default()
        };
        let windows = tokenize(&sample, &tok, &config).unwrap();
        assert!(
            windows.len() > 2,
            "the fixture text must need several windows"
        );
        let mut rebuilt = windows[0].ids.clone();
        let mut predicted = 0;
        for (k, w) in windows.iter().enumerate() {
            assert!(w.ids.len() <= 5 && w.ids.len() >= 2);
            assert_eq!(w.targets.len(), w.ids.len() - 1);
            assert_eq!(w.query_len, w.ids.len());
            predicted += w.targets.iter().filter(|&&t| t).count();
            if k > 0 {
                // Each window starts on the previous window's last id.
                assert_eq!(w.ids[0], *rebuilt.last().unwrap());
                rebuilt.extend_from_slice(&w.ids[1..]);
            }
        }
        assert_eq!(rebuilt, full);
        assert_eq!(
            predicted,
            full.len() - 1,
            "each id after the first predicted once"
        );
    }

    #[test]
    fn pair_targets_are_exactly_the_answer_and_eos() {
        let tok = tokenizer();
        let special = tok.special();
        let examples = tokenize(
            &pair("capital of France", "Paris"),
            &tok,
            &DataConfig::default(),
        )
        .unwrap();
        assert_eq!(examples.len(), 1);
        let e = &examples[0];
        let (start, end) = e.answer.unwrap();
        assert_eq!(end, e.ids.len());
        assert_eq!(e.query_len, start);
        assert_eq!(
            e.ids.first().copied(),
            special.bos.or(e.ids.first().copied())
        );

        let predicted: Vec<u32> = (0..e.targets.len())
            .filter(|&i| e.targets[i])
            .map(|i| e.ids[i + 1])
            .collect();
        assert_eq!(predicted, e.ids[start..end]);
        let eos = tok
            .decode(&special.eos.into_iter().collect::<Vec<_>>(), false)
            .unwrap();
        assert_eq!(
            tok.decode(&predicted, false).unwrap(),
            format!(" Paris{eos}")
        );

        // The prompt the model sees is the person's line, token for token.
        let body =
            &e.ids[usize::from(special.bos.is_some())..end - usize::from(special.eos.is_some())];
        assert_eq!(
            body,
            tok.encode("capital of France => Paris", false).unwrap()
        );
    }

    /// A ChatML-like template over the fixture tokenizer, whose end token is
    /// `<|endoftext|>`: every turn ends with it and a line break.
    const CHAT: &str = "{% for m in messages %}<|pad|>{{ m.role }}\n{{ m.content }}{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}<|pad|>assistant\n{% endif %}";

    #[test]
    fn with_a_chat_template_a_pair_is_a_user_turn_and_an_assistant_turn() {
        let tok = tokenizer().with_chat_template(CHAT).unwrap();
        let config = DataConfig::default();
        let e = &tokenize(&pair("capital of France", "Paris"), &tok, &config).unwrap()[0];
        let (start, end) = e.answer.unwrap();
        let asked = "<|pad|>user\ncapital of France<|endoftext|>\n<|pad|>assistant\n";
        assert_eq!(e.ids[..start], tok.encode(asked, false).unwrap());
        // The answer and the template's end of turn, up to the end token: the
        // line break after it is the template's, not the model's to learn.
        assert_eq!(
            tok.decode(&e.ids[start..end], false).unwrap(),
            "Paris<|endoftext|>"
        );
        assert_eq!(end, e.ids.len());
        let predicted: Vec<u32> = (0..e.targets.len())
            .filter(|&i| e.targets[i])
            .map(|i| e.ids[i + 1])
            .collect();
        assert_eq!(predicted, e.ids[start..end]);
        // The router reads a typed `prompt =>` as it read the pair; generation
        // is asked the same prompt.
        let query = &prompt_queries("capital of France =>", &tok, &config).unwrap()[0];
        assert_eq!(query.ids, e.ids[..start]);
        assert_eq!(
            generation_prompt("capital of France =>", &tok, &config).unwrap(),
            asked
        );
        // Plain text, and a template turned off, read as before.
        assert_eq!(
            generation_prompt("The sea", &tok, &config).unwrap(),
            "The sea"
        );
        let off = DataConfig {
            use_chat_template: false,
            ..DataConfig::default()
        };
        let plain = tokenize(&pair("capital of France", "Paris"), &tokenizer(), &config).unwrap();
        assert_eq!(
            tokenize(&pair("capital of France", "Paris"), &tok, &off).unwrap(),
            plain
        );
        assert_eq!(
            generation_prompt("capital of France =>", &tok, &off).unwrap(),
            "capital of France =>"
        );
    }

    #[test]
    fn long_prompts_lose_tokens_from_the_left() {
        let tok = tokenizer();
        let special = tok.special();
        let prompt = "a very long prompt that goes on and on about the weather in the hills";
        let full = tokenize(&pair(prompt, "rain"), &tok, &DataConfig::default()).unwrap();
        let config = DataConfig {
            max_seq_len: 8,
            ..DataConfig::default()
        };
        let cut = tokenize(&pair(prompt, "rain"), &tok, &config).unwrap();
        let (full, cut) = (&full[0], &cut[0]);
        assert_eq!(cut.ids.len(), 8);
        assert_eq!(cut.ids.first(), full.ids.first()); // the start token stays
        // After the start token, the cut example is the full one's last ids.
        let bos_len = usize::from(special.bos.is_some());
        assert_eq!(
            cut.ids[bos_len..],
            full.ids[full.ids.len() - (8 - bos_len)..]
        );
        let (start, end) = cut.answer.unwrap();
        let (full_start, full_end) = full.answer.unwrap();
        assert_eq!(cut.ids[start..end], full.ids[full_start..full_end]);
        assert_eq!(cut.targets.iter().filter(|&&t| t).count(), end - start);

        let (_, fit) = tokenize_fitted(&pair(prompt, "rain"), &tok, &config).unwrap();
        let prompt_len = full.answer.unwrap().0 - bos_len;
        assert_eq!(
            fit,
            Fit::PromptCut {
                kept: start - bos_len,
                of: prompt_len
            }
        );
        let (_, whole) =
            tokenize_fitted(&pair("sky", "blue"), &tok, &DataConfig::default()).unwrap();
        assert_eq!(whole, Fit::Whole);
    }

    #[test]
    fn an_answer_too_long_to_fit_loses_its_end_beside_its_share_of_prompt() {
        let tok = tokenizer();
        let bos_len = usize::from(tok.special().bos.is_some());
        let prompt = "tell me everything about the weather in the hills";
        let answer = "rain in the morning, sun at noon, wind in the evening and frost at night";
        let (full, _) =
            tokenize_fitted(&pair(prompt, answer), &tok, &DataConfig::default()).unwrap();
        let full = &full[0];
        let (full_start, full_end) = full.answer.unwrap();
        let config = DataConfig {
            max_seq_len: 11,
            ..DataConfig::default()
        };
        assert!(full_end - full_start > 11, "the answer must not fit");
        let (cut, fit) = tokenize_fitted(&pair(prompt, answer), &tok, &config).unwrap();
        let cut = &cut[0];
        assert_eq!(cut.ids.len(), 11);
        // Half of the room after the start token (10) for the prompt's end.
        let (start, end) = cut.answer.unwrap();
        assert_eq!(start - bos_len, 5);
        assert_eq!(
            cut.ids[bos_len..start],
            full.ids[full_start - 5..full_start]
        );
        // The answer's start, learned and checked.
        assert_eq!(cut.ids[start..end], full.ids[full_start..full_start + 5]);
        assert_eq!(cut.targets.iter().filter(|&&t| t).count(), end - start);
        assert_eq!(
            fit,
            Fit::AnswerCut {
                kept: 5,
                of: full_end - full_start
            }
        );

        // Only a length without room for one prompt and one answer token is refused.
        let tiny = DataConfig {
            max_seq_len: 1 + bos_len,
            ..DataConfig::default()
        };
        let err = tokenize(&pair(prompt, answer), &tok, &tiny).unwrap_err();
        let expected = match bos_len {
            1 => matches!(err, DataError::AnswerTooLong { .. }),
            _ => matches!(err, DataError::SeqLenTooSmall { .. }),
        };
        assert!(expected, "{err}");
    }

    #[test]
    fn a_task_warns_once_per_kind_of_fit() {
        let mut fitted = Fitted::default();
        for fit in [
            Fit::Whole,
            Fit::Windows(3),
            Fit::AnswerCut { kept: 5, of: 9 },
            Fit::AnswerCut { kept: 5, of: 12 },
        ] {
            fitted.add(fit);
        }
        let warnings = fitted.warnings(64);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("2 answers are longer than 64 tokens allow"),
            "{warnings:?}"
        );
        let notes = fitted.notes(64);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with("1 text is longer than 64 tokens"),
            "{notes:?}"
        );
        assert!(Fitted::default().warnings(64).is_empty());
        assert!(Fitted::default().notes(64).is_empty());
    }

    #[test]
    fn max_seq_len_below_two_is_refused() {
        let config = DataConfig {
            max_seq_len: 1,
            ..DataConfig::default()
        };
        let err = tokenize(&Sample::Text("hello".to_string()), &tokenizer(), &config);
        assert!(matches!(
            err,
            Err(DataError::SeqLenTooSmall { max_seq_len: 1 })
        ));
    }

    #[test]
    fn padding_and_masks_on_two_examples() {
        let text = Example {
            ids: vec![5, 6, 7, 8],
            targets: vec![true, true, true],
            query_len: 4,
            answer: None,
            window: 0,
        };
        let pair = Example {
            ids: vec![5, 9, 10],
            targets: vec![false, true],
            query_len: 2,
            answer: Some((2, 3)),
            window: 0,
        };
        let b = PaddedBatch::new(&[&text, &pair], 1);
        assert_eq!((b.batch, b.len), (2, 4));
        assert_eq!(b.ids, vec![5, 6, 7, 8, 5, 9, 10, 1]);
        // Row 2 predicts 9 (prompt: 0), 10 (answer: 1), then a pad (0).
        assert_eq!(b.targets, vec![1.0, 1.0, 1.0, 0.0, 1.0, 0.0]);
        assert_eq!(b.query_mask, vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    #[should_panic(expected = "at least one example")]
    fn an_empty_batch_panics() {
        let _ = PaddedBatch::new(&[], 0);
    }

    #[test]
    fn batches_cover_each_index_once_per_epoch() {
        let mut batches = Batches::new(5, 2, 3);
        let stream: Vec<usize> = (0..10).flat_map(|_| batches.next_indices()).collect();
        assert_eq!(batches.epoch(), 4);
        let orders: Vec<Vec<usize>> = stream.chunks(5).map(<[usize]>::to_vec).collect();
        for order in &orders {
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
        }
        assert!(orders.windows(2).any(|w| w[0] != w[1]), "epochs reshuffle");
        assert_eq!(Batches::new(5, 2, 3).next_indices(), stream[..2]);
    }

    #[test]
    fn batches_resume_after_a_round_trip() {
        let mut original = Batches::new(7, 3, 11);
        for _ in 0..4 {
            original.next_indices();
        }
        let json = serde_json::to_string(&original).unwrap();
        let mut resumed: Batches = serde_json::from_str(&json).unwrap();
        assert_eq!(resumed, original);
        for _ in 0..10 {
            assert_eq!(resumed.next_indices(), original.next_indices());
        }
    }

    #[test]
    fn damaged_batches_are_refused() {
        let bad = r#"{"seed":1,"batch_size":2,"epoch":0,"position":0,"order":[0,0,2]}"#;
        let err = serde_json::from_str::<Batches>(bad).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
        let bad = r#"{"seed":1,"batch_size":2,"epoch":0,"position":3,"order":[0,1,2]}"#;
        assert!(serde_json::from_str::<Batches>(bad).is_err());
    }

    #[test]
    fn config_and_samples_round_trip() {
        let config: DataConfig = serde_json::from_str(r#"{"max_seq_len": 64}"#).unwrap();
        assert_eq!(config.max_seq_len, 64);
        assert_eq!(config.pair_separator, " => ");
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<DataConfig>(&json).unwrap(), config);

        let samples = vec![Sample::Text("t".to_string()), pair("p", "a")];
        let json = serde_json::to_string(&samples).unwrap();
        assert_eq!(
            json,
            r#"[{"text":"t"},{"pair":{"prompt":"p","answer":"a"}}]"#
        );
        assert_eq!(serde_json::from_str::<Vec<Sample>>(&json).unwrap(), samples);
    }
}
