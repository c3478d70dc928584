//! The `mose` command end to end on a tiny model it pretrains itself: every
//! subcommand's `--help`, each subcommand's work, `--json` output, and bad
//! arguments and bad files (one clear message, exit code 2).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const MOSE: &str = env!("CARGO_BIN_EXE_mose");

fn mose(args: &[&str]) -> Output {
    Command::new(MOSE)
        .args(args)
        .output()
        .expect("the mose binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts success and returns stdout.
fn ok(args: &[&str]) -> String {
    let output = mose(args);
    assert!(
        output.status.success(),
        "mose {args:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

/// Asserts exit code 2 with one `error:` line and returns it.
fn refused(args: &[&str]) -> String {
    let output = mose(args);
    assert_eq!(
        output.status.code(),
        Some(2),
        "mose {args:?}: {}",
        stderr(&output)
    );
    let message = stderr(&output);
    assert!(
        message.starts_with("error:"),
        "mose {args:?} said: {message}"
    );
    assert!(
        !message.contains("panicked"),
        "mose {args:?} panicked: {message}"
    );
    message
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .display()
        .to_string()
}

/// A corpus of The Devil's Dictionary's entries (train) and its held-out entries.
fn write_corpus(dir: &Path) {
    for (split, file) in [("train", "train.txt"), ("heldout", "test.txt")] {
        let text = std::fs::read_to_string(repo(&format!("www/packs/devil/{file}"))).unwrap();
        let lines: Vec<String> = text
            .split("\n\n")
            .filter(|entry| !entry.trim().is_empty())
            .enumerate()
            .map(|(i, entry)| {
                serde_json::json!({"source": "devil", "title": format!("entry {i}"), "text": entry})
                    .to_string()
            })
            .collect();
        std::fs::write(dir.join(format!("{split}.jsonl")), lines.join("\n")).unwrap();
    }
}

/// `mose pretrain --json` of the tiny settings on the corpus in `dir`, into `out`.
fn pretrain_tiny(dir: &Path, out: &Path) -> String {
    let (corpus, settings) = (dir.join("corpus"), dir.join("tiny.json"));
    ok(&[
        "pretrain",
        "--corpus",
        corpus.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--config",
        settings.to_str().unwrap(),
        "--steps",
        "6",
        "--eval-every",
        "3",
        "--eval-tokens",
        "512",
        "--json",
    ])
}

/// The base model's own text, test-sized: 64 texts of 16 tokens.
const BACKGROUND: [&str; 4] = [
    "--mose",
    "background_texts=64",
    "--mose",
    "background_tokens=16",
];

/// A tiny model pretrained by `mose pretrain` once for all tests.
fn tiny_model() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = scratch("model");
        let corpus = dir.join("corpus");
        std::fs::create_dir_all(&corpus).unwrap();
        write_corpus(&corpus);
        let settings = dir.join("tiny.json");
        std::fs::write(
            &settings,
            r#"{"vocab_size": 512, "hidden_size": 32, "intermediate_size": 64, "layers": 2,
                "heads": 2, "kv_heads": 1, "seq_len": 64, "batch_size": 4, "eval_batch_size": 8}"#,
        )
        .unwrap();
        let out = dir.join("out");
        let report: serde_json::Value = serde_json::from_str(&pretrain_tiny(&dir, &out)).unwrap();
        assert_eq!(report["config"]["steps"], 6);
        assert_eq!(report["curve"].as_array().unwrap().len(), 2);
        let perplexity = report["heldout"]["perplexity"].as_f64().unwrap();
        assert!(perplexity.is_finite() && perplexity > 1.0, "{report}");
        for file in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "pretrain.json",
            "MODEL_CARD.md",
        ] {
            assert!(out.join(file).exists(), "pretrain wrote no {file}");
        }
        let card = std::fs::read_to_string(out.join("MODEL_CARD.md")).unwrap();
        assert!(
            card.contains("unigram") && card.contains("## Samples"),
            "{card}"
        );
        // The statistics of its own text, with the tests' settings
        // (`BACKGROUND`), which every routed run below adopts.
        let mut args = vec!["background", "--model", out.to_str().unwrap(), "--json"];
        args.extend(BACKGROUND);
        let written: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
        assert_eq!(written["texts"], 64, "{written}");
        assert!(out.join("background.safetensors").exists());
        out
    })
}

#[test]
fn every_subcommand_has_help() {
    let top = ok(&["--help"]);
    for command in [
        "pretrain",
        "train",
        "eval",
        "route",
        "generate",
        "import-gguf",
        "export",
        "info",
        "background",
        "bench",
    ] {
        assert!(top.contains(command), "--help does not list {command}");
        let help = ok(&[command, "--help"]);
        assert!(help.contains("Usage: mose"), "{command} --help: {help}");
    }
}

#[test]
fn bad_arguments_are_refused_with_exit_code_2() {
    refused(&["no-such-command"]);
    refused(&["train", "--bogus"]);
    refused(&["--backend", "tpu", "info"]);
    refused(&["train", "--out", "x.mose"]); // no tasks
    refused(&["generate"]); // no prompt
    refused(&["bench", "--runs", "1"]); // nothing left after the warm-up run
}

#[test]
fn bench_times_training_and_generation_and_saves_its_figures() {
    let dir = scratch("bench");
    let saved = dir.join("bench.json");
    let text = repo("www/packs/devil/train.txt");
    let settings = [
        "--model",
        &repo("www/model"),
        "--batch-size",
        "2",
        "--seq-len",
        "32",
        "--steps",
        "2",
        "--warmup-steps",
        "1",
        "--new-tokens",
        "8",
        "--runs",
        "2",
        "--matmul-size",
        "64",
    ];
    let mut args = vec!["bench"];
    args.extend(settings);
    args.extend(["--text", &text, "--save", saved.to_str().unwrap()]);
    let table = ok(&args);
    assert!(table.contains("| seq-lora |"), "{table}");
    assert!(table.contains("the same tokens"), "{table}");
    let figures: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    for method in figures["train"].as_array().unwrap() {
        assert!(method["tokens_per_second"].as_f64().unwrap() > 0.0);
        assert!(method["flops_per_step"].as_f64().unwrap() > 0.0);
    }
    let generate = &figures["generate"];
    assert_eq!(generate["rows"].as_array().unwrap().len(), 3);
    assert_eq!(generate["merged_matches_unmerged"], true);
    assert_eq!(figures["data"]["windows"], 2 * 3);

    // A text too short for the windows asked for is refused.
    let short = dir.join("short.txt");
    std::fs::write(&short, "only a few words").unwrap();
    let mut args = vec!["bench"];
    args.extend(settings);
    args.extend(["--text", short.to_str().unwrap()]);
    let message = refused(&args);
    assert!(message.contains("use a longer text"), "{message}");
}

/// A build without the `cuda` feature says how to get one.
#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_in_a_build_without_it_says_how_to_get_it() {
    let model = repo("www/model");
    let message = refused(&["--backend", "cuda", "generate", "The", "--model", &model]);
    assert!(message.contains("--features cuda"), "{message}");
    let info: serde_json::Value = serde_json::from_str(&ok(&["info", "--json"])).unwrap();
    assert_eq!(info["devices"][2]["backend"], "cuda");
    assert_eq!(info["devices"][2]["available"], false);
}

/// A CUDA build on a machine without an NVIDIA driver reports it, and does not panic.
#[cfg(feature = "cuda")]
#[test]
fn cuda_without_a_driver_is_reported_not_a_panic() {
    let info: serde_json::Value = serde_json::from_str(&ok(&["info", "--json"])).unwrap();
    let cuda = &info["devices"][2];
    assert_eq!(cuda["backend"], "cuda");
    if cuda["available"] == false {
        let detail = cuda["detail"].as_str().unwrap();
        assert!(detail.contains("no CUDA device"), "{detail}");
    }
}

#[test]
fn pretrain_writes_a_model_that_generates_and_describes_itself() {
    let model = tiny_model().to_str().unwrap();
    let info: serde_json::Value =
        serde_json::from_str(&ok(&["info", "--model", model, "--json"])).unwrap();
    assert_eq!(info["model"]["layers"], 2);
    assert_eq!(info["model"]["vocab_size"], 512);
    assert_eq!(info["devices"][0]["backend"], "cpu");
    // The statistics `mose background` wrote for these weights.
    let background = &info["model"]["background"];
    assert_eq!(background["texts"], 64, "{info}");
    assert_eq!(background["for_these_weights"], true, "{info}");

    let generated: serde_json::Value = serde_json::from_str(&ok(&[
        "generate",
        "The",
        "--model",
        model,
        "--max-new-tokens",
        "5",
        "--json",
    ]))
    .unwrap();
    assert_eq!(generated["prompt"], "The");
    assert!(generated["tokens"].as_u64().unwrap() <= 5);
    let text = ok(&["generate", "The", "--model", model, "--max-new-tokens", "5"]);
    assert!(text.starts_with("The"), "{text}");
}

#[test]
fn train_eval_and_route_run_a_sequence_and_save_a_project() {
    let model = tiny_model().to_str().unwrap();
    let dir = scratch("sequence");
    let project = dir.join("p.mose");
    let record = dir.join("runs.json");
    let _ = std::fs::remove_file(&record);
    let own = dir.join("colours.txt");
    std::fs::write(
        &own,
        "red and blue => purple\nred and yellow => orange\nblue and yellow => green\nblack and white => grey\n",
    )
    .unwrap();
    let args = [
        "train",
        &repo("www/packs/devil"),
        &format!("colours={}", own.display()),
        "--model",
        model,
        "--steps",
        "2",
        "--max-heldout",
        "4",
        "--methods",
        "mose,seq-lora",
        "--out",
        project.to_str().unwrap(),
        "--record",
        record.to_str().unwrap(),
        "--sequence",
        "smoke",
        "--json",
        // The model folder's statistics fit: the router writes no texts.
        BACKGROUND[0],
        BACKGROUND[1],
        BACKGROUND[2],
        BACKGROUND[3],
    ];
    let results: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    // The record a script checks: one run per method, every field present.
    let runs: serde_json::Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for field in [
        "sequence",
        "model",
        "method",
        "steps",
        "acc_routed",
        "acc_oracle",
        "bwt_routed",
        "bwt_oracle",
        "fwt",
        "routing",
        "routing_typos",
        "routing_first16",
        "reused",
        "diagonal",
        "adapter_values",
    ] {
        assert!(runs[0].get(field).is_some(), "no {field} in {}", runs[0]);
    }
    assert_eq!(runs[0]["sequence"], "smoke");
    assert_eq!(runs[1]["method"], "seq-lora");
    assert!(runs[1]["routing"].is_null() && runs[1]["reused"].is_null());
    assert!(runs[0]["routing_typos"].as_f64().is_some());
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["method"], "mose");
    assert_eq!(
        results[0]["report"]["tasks"],
        serde_json::json!(["devil", "colours"])
    );
    // MoSE never changes an earlier task's state: with the true task id its BWT is 0.
    let bwt = results[0]["summary_oracle"]["bwt"].as_f64().unwrap();
    assert!(bwt.abs() < 1e-9, "MoSE's oracle BWT is {bwt}");

    let evaluated: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        project.to_str().unwrap(),
        "--model",
        model,
        "--json",
    ]))
    .unwrap();
    // Scored again from the saved states, the last row is what training recorded.
    for (trained, again) in results.iter().zip(evaluated.as_array().unwrap()) {
        let recorded = trained["report"]["routed"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        let now = again["report"]["routed"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        for (a, b) in recorded
            .as_array()
            .unwrap()
            .iter()
            .zip(now.as_array().unwrap())
        {
            let (a, b) = (
                a["log_likelihood"].as_f64().unwrap(),
                b["log_likelihood"].as_f64().unwrap(),
            );
            assert!((a - b).abs() < 1e-4, "recorded {a}, scored again {b}");
        }
    }
    let info: serde_json::Value = serde_json::from_str(&ok(&[
        "info",
        "--project",
        project.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(
        info["project"]["tasks"][1],
        serde_json::json!(["colours", 3, 1, false])
    );
    assert_eq!(
        info["project"]["trained"][0],
        serde_json::json!(["mose", 2])
    );
    let text = ok(&["eval", project.to_str().unwrap(), "--model", model]);
    for part in [
        "ACC",
        "BWT",
        "routing accuracy",
        "with 10% typos",
        "first 16 tokens only",
        "capacity after each task",
    ] {
        assert!(text.contains(part), "no {part:?} in {text}");
    }

    // A project is bound to its base model: another model of the repository is refused by name.
    let embedded = repo("www/model");
    let message = refused(&["eval", project.to_str().unwrap(), "--model", &embedded]);
    let tiny = format!("{:?}", tiny_model().file_name().unwrap().to_str().unwrap());
    assert!(
        message.contains(&format!("trained on the base model {tiny}"))
            && message.contains("not on \"model\""),
        "{message}"
    );

    let route: serde_json::Value = serde_json::from_str(&ok(&[
        "route",
        project.to_str().unwrap(),
        "red and blue =>",
        "--model",
        model,
        "--json",
    ]))
    .unwrap();
    assert_eq!(route["scores"].as_array().unwrap().len(), 2);
    assert_eq!(route["chosen"].as_array().unwrap().len(), 1);

    // Generation with the project: the router's choice is reported.
    let generated: serde_json::Value = serde_json::from_str(&ok(&[
        "generate",
        "red and blue =>",
        "--model",
        model,
        "--project",
        project.to_str().unwrap(),
        "--max-new-tokens",
        "3",
        "--json",
    ]))
    .unwrap();
    assert_eq!(generated["routed_to"].as_array().unwrap().len(), 1);
    let message = refused(&[
        "generate",
        "x",
        "--model",
        model,
        "--project",
        project.to_str().unwrap(),
        "--method",
        "moe-lora",
    ]);
    assert!(message.contains("has no moe-lora state"), "{message}");

    // The routed task, exported as a model folder, generates on its own
    // what the project generates with the router's choice.
    let chosen = generated["routed_to"][0][0].as_str().unwrap();
    let exported = dir.join("exported");
    let _ = std::fs::remove_dir_all(&exported);
    let (p, out) = (project.to_str().unwrap(), exported.to_str().unwrap());
    ok(&[
        "export", p, "--task", chosen, "--model", model, "--out", out,
    ]);
    let alone: serde_json::Value = serde_json::from_str(&ok(&[
        "generate",
        "red and blue =>",
        "--model",
        out,
        "--max-new-tokens",
        "3",
        "--json",
    ]))
    .unwrap();
    assert_eq!(alone["text"], generated["text"], "exported {chosen}");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(exported.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["dtype"], "float32");
    ok(&[
        "export", p, "--method", "seq-lora", "--model", model, "--out", out,
    ]);
    for (args, says) in [
        (vec!["export", p, "--model", model, "--out", out], "--task"),
        (
            vec![
                "export", p, "--task", "nope", "--model", model, "--out", out,
            ],
            "no learned task \"nope\"",
        ),
        (
            vec![
                "export", p, "--method", "seq-lora", "--task", "devil", "--model", model, "--out",
                out,
            ],
            "leave out --task",
        ),
    ] {
        let message = refused(&args);
        assert!(message.contains(says), "{args:?}: {message}");
    }
}

#[test]
fn bad_files_get_one_clear_message_and_exit_code_2() {
    let model = tiny_model().to_str().unwrap();
    let dir = scratch("bad");
    let binary = dir.join("binary.txt");
    std::fs::write(&binary, [0u8, 159, 146, 150, 0, 1, 2]).unwrap();
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let out = dir.join("x.mose");
    let out = out.to_str().unwrap();

    let message = refused(&[
        "train",
        binary.to_str().unwrap(),
        "--model",
        model,
        "--out",
        out,
    ]);
    assert!(message.contains("binary"), "{message}");
    let message = refused(&[
        "train",
        empty.to_str().unwrap(),
        "--model",
        model,
        "--out",
        out,
    ]);
    assert!(message.contains("no samples"), "{message}");
    // A MoSE setting that does not exist, and one whose value is not allowed.
    let devil = repo("www/packs/devil");
    for (setting, says) in [("routr=key", "no setting routr"), ("router=lda", "router")] {
        let message = refused(&[
            "train", &devil, "--model", model, "--out", out, "--mose", setting,
        ]);
        assert!(message.contains(says), "{message}");
    }
    let message = refused(&["train", "/no/such/file.txt", "--model", model, "--out", out]);
    assert!(message.contains("/no/such/file.txt"), "{message}");
    let message = refused(&["eval", binary.to_str().unwrap(), "--model", model]);
    assert!(message.contains("not a MoSE Lab project"), "{message}");
    let message = refused(&["generate", "x", "--model", dir.to_str().unwrap()]);
    assert!(message.contains("not a model folder"), "{message}");
    let message = refused(&["import-gguf", binary.to_str().unwrap(), "--out", out]);
    assert!(message.contains("binary.txt"), "{message}");
    let message = refused(&["pretrain", "--corpus", dir.to_str().unwrap(), "--out", out]);
    assert!(message.contains("scripts/data.sh"), "{message}");
    let settings = dir.join("settings.json");
    std::fs::write(&settings, r#"{"hidden_sise": 8}"#).unwrap();
    let message = refused(&["pretrain", "--config", settings.to_str().unwrap()]);
    assert!(message.contains("hidden_sise"), "{message}");
    // A model folder whose weights are for another shape.
    let wrong = dir.join("wrong");
    std::fs::create_dir_all(&wrong).unwrap();
    for file in ["config.json", "tokenizer.json"] {
        std::fs::copy(Path::new(model).join(file), wrong.join(file)).unwrap();
    }
    std::fs::write(wrong.join("model.safetensors"), b"not weights").unwrap();
    refused(&["generate", "x", "--model", wrong.to_str().unwrap()]);
    // A model folder whose background statistics are damaged.
    let damaged = dir.join("damaged");
    std::fs::create_dir_all(&damaged).unwrap();
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(Path::new(model).join(file), damaged.join(file)).unwrap();
    }
    std::fs::write(damaged.join("background.safetensors"), b"not statistics").unwrap();
    let message = refused(&[
        "train",
        &devil,
        "--model",
        damaged.to_str().unwrap(),
        "--out",
        out,
    ]);
    assert!(
        message.contains("background.safetensors") && message.contains("mose background"),
        "{message}"
    );
}

#[test]
fn a_real_gguf_file_imports() {
    let Ok(gguf) = std::env::var("MOSE_SMOLLM2_GGUF") else {
        eprintln!(
            "MOSE_SMOLLM2_GGUF is not set (scripts/test.sh sets it): the import of a real file is checked there"
        );
        return;
    };
    let out = scratch("smollm2");
    let report: serde_json::Value = serde_json::from_str(&ok(&[
        "import-gguf",
        &gguf,
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(report["config"]["num_hidden_layers"], 30);
    assert!(out.join("model.safetensors").exists());
    // The instruct model's chat template comes along, and a `prompt =>`
    // line is asked through it: the model answers as its assistant.
    assert!(out.join("chat_template.jinja").exists());
    let answer: serde_json::Value = serde_json::from_str(&ok(&[
        "generate",
        "What is the capital of France? =>",
        "--model",
        out.to_str().unwrap(),
        "--max-new-tokens",
        "16",
        "--json",
    ]))
    .unwrap();
    let text = answer["text"].as_str().unwrap();
    assert!(text.contains("Paris"), "{text:?}");
}

#[test]
fn pretraining_twice_with_one_seed_gives_the_same_model() {
    let first = tiny_model();
    let dir = scratch("again");
    let out = dir.join("out");
    pretrain_tiny(first.parent().unwrap(), &out);
    for file in ["tokenizer.json", "model.safetensors"] {
        let (a, b) = (
            std::fs::read(first.join(file)).unwrap(),
            std::fs::read(out.join(file)).unwrap(),
        );
        assert!(
            a == b,
            "{file} differs between two runs of the same settings"
        );
    }
}

/// `mose` run in `dir`, away from the repository and its `www/model`.
fn mose_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(MOSE)
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the mose binary runs")
}

/// The scores of one row of a report, as `mose --json` prints them.
fn row(report: &serde_json::Value, routing: &str, i: usize) -> Vec<f64> {
    report[routing][i]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["log_likelihood"].as_f64().unwrap())
        .collect()
}

#[test]
fn a_project_continues_with_more_tasks_from_any_folder() {
    // Away from the repository (no www/model here), on the embedded model
    // built into the command. tests/e2e/long-sample.test.mjs continues a
    // project the app exported the same way.
    let dir = scratch("continue");
    std::fs::write(
        dir.join("weather.txt"),
        "rain => wet\nsun => dry\nfog => grey\nsnow => cold\nwind => loud\n",
    )
    .unwrap();
    // A task with one answer longer than any sequence: cut with a warning, not refused.
    let long_answer = "and then it rained ".repeat(40);
    std::fs::write(
        dir.join("colours.txt"),
        format!(
            "red and blue => purple\nred and yellow => orange\nblue and yellow => green\n\
             black and white => grey\nthe whole story => {long_answer}\n"
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let output = mose_in(&dir, args);
        assert!(
            output.status.success(),
            "mose {args:?}: {}",
            stderr(&output)
        );
        output
    };
    let small = ["--steps", "2", "--max-heldout", "2", "--max-seq-len", "32"];
    let mut first = vec!["train", "weather.txt", "--out", "p.moselab"];
    first.extend(small);
    run(&first);
    let eval = |dir: &Path| -> Vec<serde_json::Value> {
        let output = mose_in(dir, &["eval", "p.moselab", "--json"]);
        assert!(output.status.success(), "{}", stderr(&output));
        let results: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        results.as_array().unwrap().clone()
    };
    let before = eval(&dir);

    let output = run(&[
        "train",
        "--continue",
        "p.moselab",
        "colours=colours.txt",
        "--steps",
        "2",
        "--max-heldout",
        "2",
    ]);
    let notes = stderr(&output);
    assert!(
        notes.contains("task colours: 1 answer is longer than 32 tokens allow and cut"),
        "{notes}"
    );
    assert!(!dir.join("p.moselab.partial").exists());

    let after = eval(&dir);
    assert_eq!(after.len(), 2, "the project's methods stay");
    for (was, now) in before.iter().zip(&after) {
        assert_eq!(was["method"], now["method"]);
        assert_eq!(
            now["report"]["tasks"],
            serde_json::json!(["weather", "colours"])
        );
        assert_eq!(now["report"]["routed"].as_array().unwrap().len(), 2);
    }
    // MoSE leaves the first task's sub-experts alone: with the true task
    // id, it scores as it did before the second task.
    assert_eq!(before[0]["method"], "mose");
    let was = row(&before[0]["report"], "oracle", 0)[0];
    let now = row(&after[0]["report"], "oracle", 1)[0];
    assert!((was - now).abs() < 1e-4, "oracle before {was}, after {now}");

    // A continued project keeps its methods and settings.
    let message = refused(&[
        "train",
        "--continue",
        "p.moselab",
        "x.txt",
        "--methods",
        "mose",
    ]);
    assert!(message.contains("--methods"), "{message}");
    // A task name the project has is refused, and the project stays as it was.
    let saved = std::fs::read(dir.join("p.moselab")).unwrap();
    let output = mose_in(&dir, &["train", "--continue", "p.moselab", "colours.txt"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("already has a task colours"));
    assert_eq!(std::fs::read(dir.join("p.moselab")).unwrap(), saved);
}
