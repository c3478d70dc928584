//! The MoSE engine natively (docs/METHOD.md, "Invariants the tests must hold"): a
//! continual sequence where MoSE remembers and seq-lora forgets, earlier tasks
//! left bit for bit, save and load, and a short sequence whose metrics are
//! recorded for other devices to match.

mod common;

use burn::tensor::Device;
use common::mose::{
    SHORT_SEQUENCE, Setup, TOKENIZER, TaskSplit, assert_matches_recorded, fixture_config,
    fixture_learner, learner, run, setup, synthetic_tasks,
};
use mose_lab::data::{DataConfig, Sample};
use mose_lab::eval::{Routing, generate_routed, score_task};
use mose_lab::export::{ExportError, Exported, export};
use mose_lab::model::generate::GenerationConfig;
use mose_lab::model::{FrozenBase, Llama};
use mose_lab::mose::{Background, GateKind, Learner, Method, MoseConfig, MoseError, RouterKind};
use mose_lab::project::{BaseModel, Project, ProjectTask};
use mose_lab::sequence::SequenceReport;
use mose_lab::session::{LearnNext, Ran, SessionError, open_learners, start_methods};
use mose_lab::tokenizer::Tokenizer;
use mose_lab::train::{
    Flow, RunEnd, StepReport, TaskRun, TrainConfig, TrainError, base_model_background,
};
use safetensors::SafeTensors;

fn print_report(report: &SequenceReport) {
    for routing in [Routing::Routed, Routing::Oracle] {
        println!("{} {routing:?}:", report.method.name());
        for row in report.r_matrix(routing) {
            println!("  {row:.3?}");
        }
        println!("  {:?}", report.summary(routing));
    }
    println!("  confusion {:?}", report.confusion().map(|c| c.counts));
    println!("  capacity {:?}", report.capacity);
    println!("  {:.1} s", report.seconds);
}

#[test]
fn mose_remembers_where_seq_lora_forgets() {
    let device = Device::flex();
    let Setup { model, pad, splits } = setup(64, 3, &device);
    let config = TrainConfig::new()
        .with_steps_per_task(120)
        .with_learning_rate(1e-2);
    let reports: Vec<SequenceReport> = Method::ALL
        .iter()
        .map(|&method| {
            let report = pollster::block_on(run(method, &model, &splits, pad, &config, &device));
            print_report(&report);
            report
        })
        .collect();
    let bwt = |r: &SequenceReport, routing| r.summary(routing).bwt.unwrap();
    let (mose, seq, per_task, moe) = (&reports[0], &reports[1], &reports[2], &reports[3]);

    // Every task was learned: each beats the base model on its own data by far.
    for (j, base) in mose.base.iter().enumerate() {
        assert!(
            mose.routed[j][j].log_likelihood > base.log_likelihood + 1.0,
            "task {j}: {} vs base {}",
            mose.routed[j][j].log_likelihood,
            base.log_likelihood
        );
    }
    // MoSE remembers; seq-lora forgets at least 5 times as much.
    let mose_bwt = bwt(mose, Routing::Routed);
    let seq_bwt = bwt(seq, Routing::Routed);
    assert!(mose_bwt >= -0.02, "MoSE BWT {mose_bwt}");
    assert!(
        seq_bwt <= 5.0 * mose_bwt.min(-0.02),
        "seq-lora BWT {seq_bwt} against MoSE {mose_bwt}"
    );
    // Routing: at least 95% of the held-out samples of every task go to it.
    let confusion = mose.confusion().unwrap();
    for (task, accuracy) in confusion.per_task().iter().enumerate() {
        assert!(
            accuracy.unwrap() >= 0.95,
            "task {task} routed right {accuracy:?}: {:?}",
            confusion.counts
        );
    }
    // With the oracle, isolated task states cannot forget at all.
    assert_eq!(bwt(mose, Routing::Oracle), 0.0);
    assert_eq!(bwt(per_task, Routing::Oracle), 0.0);
    // The shared MoE-LoRA forgets too.
    assert!(
        bwt(moe, Routing::Routed) < mose_bwt - 0.1,
        "MoE-LoRA BWT {}",
        bwt(moe, Routing::Routed)
    );
    // Capacity: MoSE keeps 2 experts per task at most; a shared LoRA never grows.
    assert!(
        mose.capacity
            .windows(2)
            .all(|w| w[1].experts_total <= w[0].experts_total + 2)
    );
    assert!(
        seq.capacity
            .iter()
            .all(|c| c.total_params == seq.capacity[0].total_params)
    );
}

#[test]
fn learning_a_task_leaves_every_earlier_tensor_bit_for_bit() {
    let device = Device::flex();
    let s = setup(24, 5, &device);
    let (model, splits) = (&s.model, &s.splits);
    let config = TrainConfig::new()
        .with_steps_per_task(10)
        .with_learning_rate(1e-2);
    let mut learner = learner(Method::Mose, model, &device);
    let mut saved = Vec::new();
    for split in splits {
        pollster::block_on(s.learn(&mut learner, split, &config, &device));
        saved.push(pollster::block_on(learner.to_bytes(model.config())).unwrap());
    }
    for t in 1..saved.len() {
        let before = SafeTensors::deserialize(&saved[t - 1]).unwrap();
        let after = SafeTensors::deserialize(&saved[t]).unwrap();
        let mut checked = 0;
        for (name, tensor) in before.tensors() {
            let later = after
                .tensor(&name)
                .unwrap_or_else(|_| panic!("{name} is gone after task {t}"));
            if name == "router.scatter" {
                continue; // pooled over every task: it grows with each
            }
            if name == "router.means" {
                // One row per task: the earlier rows stay as they were.
                let earlier = tensor.data().len();
                assert_eq!(tensor.data(), &later.data()[..earlier], "{name}");
                continue;
            }
            assert_eq!(tensor.shape(), later.shape(), "{name}");
            assert!(
                tensor.data() == later.data(),
                "{name} changed while task {t} was learned"
            );
            checked += 1;
        }
        // Task 0's key, gates, modulation and experts at 8 sites, at least.
        assert!(checked > 8 * t, "only {checked} tensors checked");
    }
}

#[test]
fn a_saved_state_loads_back_exactly_and_scores_the_same() {
    let device = Device::flex();
    let s = setup(24, 5, &device);
    let (model, pad, splits) = (&s.model, s.pad, &s.splits);
    let config = TrainConfig::new()
        .with_steps_per_task(8)
        .with_learning_rate(1e-2);
    for method in Method::ALL {
        let mut learner = learner(method, model, &device);
        for split in &splits[..2] {
            pollster::block_on(s.learn(&mut learner, split, &config, &device));
        }
        let bytes = pollster::block_on(learner.to_bytes(model.config())).unwrap();
        let loaded = Learner::from_bytes(&bytes, model.config(), &device).unwrap();
        assert_eq!(loaded.task_names(), learner.task_names());
        assert_eq!(loaded.capacity(), learner.capacity());
        assert_eq!(
            pollster::block_on(loaded.to_bytes(model.config())).unwrap(),
            bytes,
            "{}",
            method.name()
        );
        let score = |l: &Learner| {
            let base = FrozenBase {
                model,
                pad_id: pad,
                device: &device,
            };
            pollster::block_on(mose_lab::eval::score_task(
                base,
                Some(l),
                1,
                &splits[1].heldout,
                Routing::Routed,
                8,
            ))
            .unwrap()
        };
        assert_eq!(score(&loaded), score(&learner), "{}", method.name());
    }
}

#[test]
fn merged_generation_gives_the_unmerged_tokens() {
    let device = Device::flex();
    let s = setup(24, 5, &device);
    let tokenizer = Tokenizer::from_json(TOKENIZER).unwrap();
    let config = TrainConfig::new()
        .with_steps_per_task(8)
        .with_learning_rate(1e-2);
    let prompts = ["12 13 14 15", "d e f g h", "LOUD WORDS ARE"];
    for method in Method::ALL {
        let mut learner = learner(method, &s.model, &device);
        for split in &s.splits[..2] {
            pollster::block_on(s.learn(&mut learner, split, &config, &device));
        }
        for prompt in prompts {
            let generate = |merge_adapter| {
                let settings = GenerationConfig {
                    max_new_tokens: 24,
                    stop_at_eos: false,
                    merge_adapter,
                    ..GenerationConfig::default()
                };
                pollster::block_on(generate_routed(
                    s.base(&device),
                    &learner,
                    &tokenizer,
                    prompt,
                    &DataConfig::default(),
                    &settings,
                    |_| {},
                ))
                .unwrap()
            };
            let ((route, merged), (unmerged_route, unmerged)) = (generate(true), generate(false));
            let name = method.name();
            assert_eq!(route.chosen, unmerged_route.chosen, "{name} {prompt:?}");
            // Per-token routing (MoE-LoRA) has no single matrix to merge, and
            // a prompt routed to no task is the base model's, with nothing to merge.
            let to_base = method.is_routed() && route.chosen.is_empty();
            assert_eq!(
                merged.merged,
                method != Method::MoeLora && !to_base,
                "{name}"
            );
            assert!(!unmerged.merged);
            assert_eq!(merged.ids.len(), 24);
            assert_eq!(merged.ids, unmerged.ids, "{name} {prompt:?}");
        }
    }
}

#[test]
fn an_exported_task_scores_as_the_routed_model_does() {
    let device = Device::flex();
    let s = setup(24, 5, &device);
    let config = TrainConfig::new()
        .with_steps_per_task(8)
        .with_learning_rate(1e-2);
    for method in Method::ALL {
        let mut learner = learner(method, &s.model, &device);
        for split in &s.splits[..2] {
            pollster::block_on(s.learn(&mut learner, split, &config, &device));
        }
        let name = method.name();
        let what = match method.is_routed() {
            true => Exported::Task(1),
            false => Exported::Shared,
        };
        let exported = pollster::block_on(export(&s.model, &learner, what, &device));
        if method == Method::MoeLora {
            assert!(
                matches!(exported, Err(ExportError::PerToken { .. })),
                "{name}"
            );
            continue;
        }
        let exported = exported.unwrap_or_else(|e| panic!("{name}: {e}"));
        // What a Hugging Face loader reads: the header names the task and
        // says the weights are f32, and the folder's files load as a model.
        let file = SafeTensors::deserialize(&exported.weights).unwrap();
        let (_, header) = SafeTensors::read_metadata(&exported.weights).unwrap();
        let header = header.metadata().clone().unwrap_or_default();
        assert_eq!(header.get("format").map(String::as_str), Some("pt"));
        assert_eq!(
            header.get("mose_lab.method").map(String::as_str),
            Some(name)
        );
        assert!(file.names().len() >= 2 + 9 * s.model.config().num_hidden_layers);
        assert_eq!(exported.config.other["dtype"], "float32");
        let model = Llama::from_safetensors(&exported.config, &exported.weights, &device).unwrap();
        // Its plain forward pass is the routed model's with that task chosen.
        for (task, split) in s.splits[..2].iter().enumerate() {
            // Scored with task `routed`'s adapter (the oracle's route to it).
            let score = |model, learner, routed| {
                let base = FrozenBase {
                    model,
                    pad_id: s.pad,
                    device: &device,
                };
                pollster::block_on(score_task(
                    base,
                    learner,
                    routed,
                    &split.heldout,
                    Routing::Oracle,
                    8,
                ))
                .unwrap()
                .log_likelihood
            };
            let adapted = match what {
                Exported::Task(t) => score(&s.model, Some(&learner), t),
                Exported::Shared => score(&s.model, Some(&learner), task),
            };
            let plain = score(&model, None, task);
            let base = score(&s.model, None, task);
            assert!(
                (plain - adapted).abs() < 1e-4,
                "{name} on task {task}: exported {plain} against routed {adapted}"
            );
            assert!(
                (plain - base).abs() > 1e-3,
                "{name}: the export changed nothing"
            );
        }
    }
    let lora = learner(Method::LoraPerTask, &s.model, &device);
    let unlearned = pollster::block_on(export(&s.model, &lora, Exported::Task(0), &device));
    assert!(matches!(
        unlearned,
        Err(ExportError::NotLearned {
            task: 0,
            learned: 0
        })
    ));
}

/// An exported task and what transformers computes from it
/// (tests/fixtures/README.md, "export/").
const EXPORT_FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/export");

/// The exported task of the fixture: the second of two learned by MoSE.
const EXPORTED_TASK: usize = 1;

/// MoSE after two synthetic tasks, as the export fixture was made from.
fn export_fixture_learner(s: &Setup, device: &Device) -> Learner {
    let config = TrainConfig::new()
        .with_steps_per_task(8)
        .with_learning_rate(1e-2);
    let mut learner = learner(Method::Mose, &s.model, device);
    for split in &s.splits[..2] {
        pollster::block_on(s.learn(&mut learner, split, &config, device));
    }
    learner
}

/// Writes tests/fixtures/export/: the learner's state, the exported task's
/// folder and a prompt of that task. `scripts/make-fixtures.sh --only export`
/// runs this, then has transformers load the folder and write its logits
/// for the prompt beside them, which the next test compares with.
#[test]
#[ignore = "writes the export fixture: scripts/make-fixtures.sh --only export runs it"]
fn write_the_export_fixture() {
    let device = Device::flex();
    let s = setup(24, 5, &device);
    let learner = export_fixture_learner(&s, &device);
    let dir = std::path::Path::new(EXPORT_FIXTURE);
    std::fs::create_dir_all(dir).unwrap();
    let state = pollster::block_on(learner.to_bytes(s.model.config())).unwrap();
    std::fs::write(dir.join("state.mose-state"), state).unwrap();
    let what = Exported::Task(EXPORTED_TASK);
    let exported = pollster::block_on(export(&s.model, &learner, what, &device)).unwrap();
    // transformers needs no tokenizer: the prompt goes as ids.
    let folder = dir.join("model");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("config.json"), exported.config.to_json()).unwrap();
    std::fs::write(folder.join("model.safetensors"), &exported.weights).unwrap();
    let ids = &s.splits[EXPORTED_TASK].heldout[0].ids;
    let prompt = serde_json::json!({ "task": s.splits[EXPORTED_TASK].name, "input_ids": ids });
    std::fs::write(dir.join("prompt.json"), format!("{prompt}\n")).unwrap();
}

#[test]
fn an_exported_task_gives_transformers_the_routed_models_logits() {
    let device = Device::flex();
    let s = setup(24, 5, &device);
    let dir = std::path::Path::new(EXPORT_FIXTURE);
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let learner =
        Learner::from_bytes(&read("state.mose-state"), s.model.config(), &device).unwrap();
    // transformers' logits of the exported folder, for the task's prompt.
    let reference = read("reference.safetensors");
    let reference = SafeTensors::deserialize(&reference).unwrap();
    let f32s = |view: safetensors::tensor::TensorView| -> Vec<f32> {
        view.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    let logits = reference.tensor("logits").unwrap();
    let expected = f32s(logits.clone());
    let ids: Vec<i64> = reference
        .tensor("input_ids")
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    // The routed model, the task's sub-experts beside the frozen weights.
    let adapter = learner
        .adapter(&learner.oracle_route(EXPORTED_TASK), &device)
        .unwrap();
    let tokens = common::llama::tokens(&ids, [1, ids.len()], &device);
    let routed = pollster::block_on(common::llama::read(
        s.model.forward_adapted(tokens, &adapter),
    ));
    let worst =
        common::llama::assert_close("routed against transformers", &routed, &expected, 1e-4);
    println!("routed logits within {worst:.1e} of transformers' on the exported folder");
    // The export made now is the one transformers read.
    let what = Exported::Task(EXPORTED_TASK);
    let now = pollster::block_on(export(&s.model, &learner, what, &device)).unwrap();
    let written = read("model/model.safetensors");
    let (written, now_file) = (
        SafeTensors::deserialize(&written).unwrap(),
        SafeTensors::deserialize(&now.weights).unwrap(),
    );
    let mut names = written.names();
    names.sort();
    let mut now_names = now_file.names();
    now_names.sort();
    assert_eq!(names, now_names);
    for name in names {
        let (a, b) = (
            written.tensor(name).unwrap(),
            now_file.tensor(name).unwrap(),
        );
        assert_eq!(a.shape(), b.shape(), "{name}");
        common::llama::assert_close(name, &f32s(b), &f32s(a), 1e-6);
    }
    let config: serde_json::Value = serde_json::from_slice(&read("model/config.json")).unwrap();
    assert_eq!(
        config,
        serde_json::from_str::<serde_json::Value>(&now.config.to_json()).unwrap()
    );
}

/// Learns `split` with a stop after each step of `stops`, where the run is
/// checkpointed, dropped with its learner, and resumed from bytes into a
/// learner loaded from the saved state; returns the final state and losses.
fn learn_with_stops(
    s: &Setup,
    saved: &[u8],
    split: &common::mose::TaskSplit,
    config: &TrainConfig,
    stops: &[usize],
    device: &Device,
) -> (Vec<u8>, Vec<f32>) {
    let model = &s.model;
    let load = || Learner::from_bytes(saved, model.config(), device).unwrap();
    let mut learner = load();
    let base = s.base(device);
    let mut run = pollster::block_on(TaskRun::start(
        base,
        &learner,
        split.name,
        &split.train,
        config,
    ))
    .unwrap();
    for &stop in stops {
        let mut on_step = |r: &StepReport| match r.step >= stop {
            true => Flow::Stop,
            false => Flow::Continue,
        };
        let end = pollster::block_on(run.run(base, &learner, &split.train, &mut on_step)).unwrap();
        assert_eq!(end, RunEnd::Stopped);
        assert_eq!(run.step(), stop);
        let bytes = pollster::block_on(run.checkpoint()).unwrap();
        drop((run, learner));
        learner = load();
        run = pollster::block_on(TaskRun::resume(
            &bytes,
            model,
            &learner,
            &split.train,
            device,
        ))
        .unwrap();
    }
    let end =
        pollster::block_on(run.run(base, &learner, &split.train, &mut |_| Flow::Continue)).unwrap();
    assert_eq!(end, RunEnd::Finished);
    let losses = run.losses.clone();
    pollster::block_on(run.finish(&mut learner)).unwrap();
    (
        pollster::block_on(learner.to_bytes(model.config())).unwrap(),
        losses,
    )
}

#[test]
fn a_stopped_run_resumed_from_its_checkpoint_ends_as_an_uninterrupted_one() {
    let device = Device::flex();
    let s = setup(24, 5, &device);
    let config = TrainConfig::new()
        .with_steps_per_task(10)
        .with_learning_rate(1e-2);
    for method in [Method::Mose, Method::SeqLora, Method::MoeLora] {
        // Task 1 after task 0, so the new task sees, and may reuse, old sub-experts.
        let mut learner = learner(method, &s.model, &device);
        pollster::block_on(s.learn(&mut learner, &s.splits[0], &config, &device));
        let saved = pollster::block_on(learner.to_bytes(s.model.config())).unwrap();
        let split = &s.splits[1];
        let whole = learn_with_stops(&s, &saved, split, &config, &[], &device);
        // Stops while exploring (step 3) and once settled (step 7 of 10).
        let resumed = learn_with_stops(&s, &saved, split, &config, &[3, 7], &device);
        assert_eq!(resumed.1, whole.1, "{}: losses", method.name());
        assert!(
            resumed.0 == whole.0,
            "{}: the resumed run's state differs",
            method.name()
        );
    }
}

#[test]
fn a_checkpoint_resumes_only_into_its_own_task() {
    let device = Device::flex();
    let s = setup(24, 5, &device);
    let config = TrainConfig::new().with_steps_per_task(4);
    let (model, splits) = (&s.model, &s.splits);
    let other_method = learner(Method::SeqLora, model, &device);
    let mut learner = learner(Method::Mose, model, &device);
    let base = s.base(&device);
    let mut run = pollster::block_on(TaskRun::start(
        base,
        &learner,
        splits[0].name,
        &splits[0].train,
        &config,
    ))
    .unwrap();
    let mut stop_at_2 = |r: &StepReport| match r.step {
        2 => Flow::Stop,
        _ => Flow::Continue,
    };
    pollster::block_on(run.run(base, &learner, &splits[0].train, &mut stop_at_2)).unwrap();
    let bytes = pollster::block_on(run.checkpoint()).unwrap();
    let resume = |bytes: &[u8], learner: &Learner, examples| match pollster::block_on(
        TaskRun::resume(bytes, model, learner, examples, &device),
    ) {
        Err(e @ TrainError::BadCheckpoint { .. }) => e.to_string(),
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("resumed"),
    };
    let fewer = &splits[0].train[1..];
    let mut version_2 = bytes.clone();
    // The JSON description sits escaped inside the safetensors header.
    let at = version_2
        .windows(14)
        .position(|w| w == b"format_version")
        .expect("the header names its version");
    let digit = at + version_2[at..].iter().position(u8::is_ascii_digit).unwrap();
    assert_eq!(version_2[digit], b'1');
    version_2[digit] = b'2';
    let state = pollster::block_on(learner.to_bytes(model.config())).unwrap();
    let cases: Vec<(&str, String)> = vec![
        ("examples", resume(&bytes, &learner, fewer)),
        ("method", resume(&bytes, &other_method, &splits[0].train)),
        ("version", resume(&version_2, &learner, &splits[0].train)),
        ("a state", resume(&state, &learner, &splits[0].train)),
        (
            "garbage",
            resume(b"not a checkpoint", &learner, &splits[0].train),
        ),
        (
            "truncated",
            resume(&bytes[..bytes.len() / 2], &learner, &splits[0].train),
        ),
    ];
    // A checkpoint taken before task 0 was learned no longer fits once it is.
    pollster::block_on(s.learn(&mut learner, &splits[0], &config, &device));
    let after = resume(&bytes, &learner, &splits[0].train);
    for (what, message) in cases.iter().chain([("tasks", after)].iter()) {
        assert!(
            message.contains("start the task again"),
            "{what}: {message}"
        );
    }
    assert!(cases[0].1.contains("training examples"), "{}", cases[0].1);
    assert!(cases[2].1.contains("format version 2"), "{}", cases[2].1);
}

#[test]
fn a_bad_state_file_gives_a_typed_error() {
    let device = Device::flex();
    let mut s = setup(24, 5, &device);
    // A model checkpoint is safetensors too, but not a state.
    let weights = pollster::block_on(s.model.to_safetensors(None)).unwrap();
    let s = s;
    let (model, splits) = (&s.model, &s.splits);
    let config = TrainConfig::new().with_steps_per_task(2);
    let mut learner = learner(Method::Mose, model, &device);
    pollster::block_on(s.learn(&mut learner, &splits[0], &config, &device));
    let bytes = pollster::block_on(learner.to_bytes(model.config())).unwrap();
    let load = |b: &[u8]| Learner::from_bytes(b, model.config(), &device).unwrap_err();

    assert!(matches!(
        load(b"PK\x03\x04 a zip file"),
        MoseError::NotAState { .. }
    ));
    assert!(matches!(
        load(&bytes[..bytes.len() / 2]),
        MoseError::NotAState { .. }
    ));
    assert!(matches!(load(&[]), MoseError::NotAState { .. }));
    assert!(matches!(load(&weights), MoseError::NotAState { .. }));

    // The same tensors under a rewritten description.
    let rewrite = |edit: &dyn Fn(&mut serde_json::Value), drop: Option<&str>| -> Vec<u8> {
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let mut header: serde_json::Value =
            serde_json::from_str(&meta.metadata().as_ref().unwrap()["mose_lab_state"]).unwrap();
        edit(&mut header);
        let metadata =
            std::collections::HashMap::from([("mose_lab_state".to_string(), header.to_string())]);
        let tensors: Vec<_> = file
            .tensors()
            .into_iter()
            .filter(|(name, _)| Some(name.as_str()) != drop)
            .collect();
        safetensors::serialize(tensors, Some(metadata)).unwrap()
    };
    let newer = rewrite(&|h| h["format_version"] = 3.into(), None);
    assert!(matches!(
        load(&newer),
        MoseError::UnsupportedVersion {
            found: 3,
            expected: 2
        }
    ));
    let no_router = rewrite(&|_| {}, Some("router.scatter.0"));
    assert!(
        matches!(load(&no_router), MoseError::MissingTensor { ref name } if name == "router.scatter.0")
    );
    let other_model = rewrite(&|h| h["model"]["hidden_size"] = 128.into(), None);
    let err = load(&other_model);
    assert!(matches!(err, MoseError::WrongModel { .. }), "{err}");
    let missing = rewrite(&|_| {}, Some("tasks.0.key"));
    assert!(
        matches!(load(&missing), MoseError::MissingTensor { ref name } if name == "tasks.0.key")
    );
    let wrong_rank = rewrite(&|h| h["config"]["rank"] = 3.into(), None);
    assert!(matches!(load(&wrong_rank), MoseError::WrongShape { .. }));
    // Every message says what to do.
    for err in [
        load(b"nope"),
        load(&newer),
        load(&other_model),
        load(&missing),
    ] {
        let message = err.to_string();
        assert!(
            ["choose", "update", "load it with", "save it again"]
                .iter()
                .any(|hint| message.contains(hint)),
            "{message}"
        );
    }
}

#[test]
fn a_related_task_reuses_sub_experts_and_an_unseen_one_gets_the_base_model() {
    let device = Device::flex();
    let s = setup(64, 3, &device);
    let model = &s.model;
    // Two halves of the counting task's training text, as two tasks: the
    // router cannot tell them apart, so the second should build on the first.
    let counting = &s.splits[0];
    let half = counting.train.len() / 2;
    let halves = [
        ("counting_a", 0..half),
        ("counting_b", half..counting.train.len()),
    ]
    .map(|(name, range)| TaskSplit {
        name,
        train: counting.train[range].to_vec(),
        heldout: counting.heldout.clone(),
    });
    let config = TrainConfig::new()
        .with_steps_per_task(30)
        .with_learning_rate(1e-2);
    let mut mose = learner(Method::Mose, model, &device);
    let mut likeness = Vec::new();
    for split in [&halves[0], &s.splits[1], &halves[1]] {
        let base = s.base(&device);
        let mut run = pollster::block_on(TaskRun::start(
            base,
            &mose,
            split.name,
            &split.train,
            &config,
        ))
        .unwrap();
        likeness.push(run.likeness());
        let end = pollster::block_on(run.run(base, &mose, &split.train, &mut |_| Flow::Continue))
            .unwrap();
        assert_eq!(end, RunEnd::Finished);
        pollster::block_on(run.finish(&mut mose)).unwrap();
    }
    // How each task read to the router before it trained: the letters like
    // nothing learned, the second half of counting like its first half.
    println!("likeness {likeness:?}");
    let familiar = fixture_config().familiar_share;
    assert_eq!(likeness[0], None);
    assert!(
        likeness[1].is_some_and(|l| l.share < familiar),
        "{likeness:?}"
    );
    assert!(
        likeness[2].is_some_and(|l| l.task == 0 && l.share >= familiar),
        "{likeness:?}"
    );
    let mut lora = learner(Method::LoraPerTask, model, &device);
    pollster::block_on(s.learn(&mut lora, &halves[0], &config, &device));
    let adapter = lora.capacity()[0].trainable_params;
    let capacity = mose.capacity();
    println!("capacity {capacity:?}, one LoRA {adapter}");
    // The related task added no sub-expert and reuses the first half's.
    assert_eq!(capacity[2].experts_new, 0, "{capacity:?}");
    assert!(capacity[2].experts_reused > 0, "{capacity:?}");
    assert!(
        capacity[2].total_params < 3 * adapter - adapter / 2,
        "three tasks took {} values, three adapters {}",
        capacity[2].total_params,
        3 * adapter
    );
    // The shouting task was never learned: the base model answers it.
    let score = |learner: Option<&Learner>| {
        pollster::block_on(mose_lab::eval::score_task(
            s.base(&device),
            learner,
            2,
            &s.splits[2].heldout,
            Routing::Routed,
            8,
        ))
        .unwrap()
    };
    let unseen = score(Some(&mose));
    let to_base = unseen.routed_to.iter().filter(|t| t.is_none()).count();
    assert!(
        to_base * 10 >= unseen.routed_to.len() * 9,
        "only {to_base} of {} unseen samples went to the base model: {:?}",
        unseen.routed_to.len(),
        unseen.routed_to
    );
    if to_base == unseen.routed_to.len() {
        assert_eq!(unseen.log_likelihood, score(None).log_likelihood);
    }
}

/// The fixture's settings with a test-sized base model's own text: 24 texts
/// of 12 tokens, written by the learner itself.
fn small_background() -> MoseConfig {
    fixture_config()
        .with_background_texts(24)
        .with_background_tokens(12)
}

#[test]
fn the_routers_model_of_the_base_models_own_text_saves_and_loads_exactly() {
    let device = Device::flex();
    let s = setup(24, 5, &device);
    let (model, splits) = (&s.model, &s.splits);
    let config = TrainConfig::new()
        .with_steps_per_task(4)
        .with_learning_rate(1e-2);
    let mut learner = fixture_learner(Method::Mose, small_background(), model, &device);
    assert!(learner.needs_background());
    for split in &splits[..2] {
        pollster::block_on(s.learn(&mut learner, split, &config, &device));
    }
    // Read once, with the first task.
    assert!(!learner.needs_background());
    let bytes = pollster::block_on(learner.to_bytes(model.config())).unwrap();
    let loaded = Learner::from_bytes(&bytes, model.config(), &device).unwrap();
    assert!(!loaded.needs_background());
    assert_eq!(
        pollster::block_on(loaded.to_bytes(model.config())).unwrap(),
        bytes
    );
    let routes = |l: &Learner| {
        let mut routes = Vec::new();
        for split in splits {
            let score = pollster::block_on(mose_lab::eval::score_task(
                s.base(&device),
                Some(l),
                0,
                &split.heldout,
                Routing::Routed,
                8,
            ))
            .unwrap();
            routes.push(score.routed_to);
        }
        routes
    };
    let found = routes(&learner);
    println!("routes with the background: {found:?}");
    assert_eq!(routes(&loaded), found);
}

#[test]
fn the_base_models_own_text_kept_with_the_model_is_adopted_as_if_read_by_the_task() {
    let device = Device::flex();
    let s = setup(24, 5, &device);
    let model = &s.model;
    let config = TrainConfig::new()
        .with_steps_per_task(3)
        .with_learning_rate(1e-2);
    let mose = small_background();
    let fresh = |mose: &MoseConfig| fixture_learner(Method::Mose, mose.clone(), model, &device);
    // What `mose background` writes into a model folder, and reads back.
    let background = pollster::block_on(base_model_background(
        s.base(&device),
        "0123456789abcdef",
        &fresh(&mose),
        &config,
    ))
    .unwrap()
    .expect("the fixture model names a start token");
    let bytes = background.to_bytes().unwrap();
    assert_eq!(Background::from_bytes(&bytes).unwrap(), background);
    assert!(matches!(
        Background::from_bytes(b"not a file"),
        Err(MoseError::NotABackground { .. })
    ));

    // Adopted only for the same weights and recipe, and only once; `fits`
    // says so before a learner exists (the app's choice of settings).
    assert!(!fresh(&mose).adopt_background(&background, "another model"));
    let other = mose.clone().with_background_tokens(13);
    assert!(background.fits("0123456789abcdef", &mose));
    assert!(!background.fits("another model", &mose));
    assert!(!background.fits("0123456789abcdef", &other));
    assert!(!fresh(&other).adopt_background(&background, "0123456789abcdef"));
    let mut adopted = fresh(&mose);
    assert!(adopted.adopt_background(&background, "0123456789abcdef"));
    assert!(!adopted.needs_background());
    assert!(!adopted.adopt_background(&background, "0123456789abcdef"));

    // A learner that adopted it ends the task exactly as one that read the
    // texts itself.
    let mut reading = fresh(&mose);
    pollster::block_on(s.learn(&mut reading, &s.splits[0], &config, &device));
    pollster::block_on(s.learn(&mut adopted, &s.splits[0], &config, &device));
    assert_eq!(
        pollster::block_on(adopted.to_bytes(model.config())).unwrap(),
        pollster::block_on(reading.to_bytes(model.config())).unwrap()
    );
}

#[test]
fn a_state_saved_before_the_gaussian_router_opens_with_its_keys() {
    let device = Device::flex();
    let s = setup(24, 5, &device);
    let model = &s.model;
    let config = TrainConfig::new().with_steps_per_task(2);
    let mut old = Learner::new(
        Method::Mose,
        MoseConfig::legacy(),
        model.config(),
        7,
        &device,
    )
    .unwrap();
    pollster::block_on(s.learn(&mut old, &s.splits[0], &config, &device));
    let bytes = pollster::block_on(old.to_bytes(model.config())).unwrap();
    // The file as version 1 wrote it: no router, gate or reuse settings.
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut header: serde_json::Value =
        serde_json::from_str(&meta.metadata().as_ref().unwrap()["mose_lab_state"]).unwrap();
    header["format_version"] = 1.into();
    let config = header["config"].as_object_mut().unwrap();
    for newer in [
        "router",
        "gate",
        "norga_alpha",
        "norga_tau",
        "settle_by_contribution",
        "reuse_familiar",
        "familiar_share",
        "route_sample_cap",
        "route_sample_floor",
        "route_feature_width",
        "route_prefix_tokens",
        "none_of_these",
        "none_quantile",
    ] {
        config.remove(newer);
    }
    config.insert("reuse_bias".into(), (-1.0).into());
    header.as_object_mut().unwrap().remove("router");
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let metadata =
        std::collections::HashMap::from([("mose_lab_state".to_string(), header.to_string())]);
    let v1 = safetensors::serialize(file.tensors(), Some(metadata)).unwrap();
    let loaded = Learner::from_bytes(&v1, model.config(), &device).unwrap();
    assert_eq!(loaded.config().router, RouterKind::Key);
    assert_eq!(loaded.config().gate, GateKind::Softmax);
    assert_eq!(loaded.mose_config(), &MoseConfig::legacy());
    assert_eq!(
        loaded.route(&vec![0.5; model.config().hidden_size]).top(),
        Some(0)
    );
}

#[test]
fn the_short_sequence_matches_the_recorded_native_run() {
    let device = Device::flex();
    let report = pollster::block_on(SHORT_SEQUENCE.run(&device));
    print_report(&report);
    if std::env::var_os("MOSE_WRITE_FIXTURES").is_some() {
        std::fs::write(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/mose/short-sequence.json"
            ),
            serde_json::to_string_pretty(&common::mose::Recorded::of(&report)).unwrap() + "\n",
        )
        .unwrap();
        return;
    }
    assert_matches_recorded(&report, "native cpu");
}

#[cfg(feature = "wgpu-tests")]
#[test]
fn the_short_sequence_on_wgpu_matches_the_recorded_native_run() {
    let device = pollster::block_on(mose_lab::backend::gpu())
        .expect("a wgpu adapter")
        .device;
    let report = pollster::block_on(SHORT_SEQUENCE.run(&device));
    print_report(&report);
    assert_matches_recorded(&report, "wgpu");
}

/// The tiny model's project of the first two synthetic tasks, as text.
fn synthetic_project(model: &Llama, data: &DataConfig) -> Project {
    let train = TrainConfig::new()
        .with_steps_per_task(6)
        .with_learning_rate(1e-2);
    let identity = BaseModel::of("tiny", model.config(), b"the tiny test model");
    let mut project = Project::new(identity, data.clone(), train, small_background(), 5);
    for (name, samples) in synthetic_tasks(24, 5).into_iter().take(2) {
        let texts: Vec<String> = samples
            .into_iter()
            .map(|s| match s {
                Sample::Text(text) => text,
                Sample::Pair { .. } => unreachable!("the synthetic tasks are text"),
            })
            .collect();
        let task = ProjectTask::from_text(name, texts.join("\n\n").as_bytes(), data, 5).unwrap();
        project.tasks.push(task);
    }
    project
}

#[test]
fn the_session_learns_task_by_task_and_a_run_resumed_from_its_checkpoint_ends_the_same() {
    let device = Device::flex();
    let s = setup(24, 5, &device);
    let tokenizer = Tokenizer::from_json(TOKENIZER).unwrap();
    let data = DataConfig::default();
    let base = s.base(&device);
    let methods = [Method::Mose, Method::SeqLora];
    let keep_going = &mut |_: usize, _: &StepReport| Flow::Continue;

    // Both tasks, each learned by both methods in turn, then scored.
    let mut whole = synthetic_project(&s.model, &data);
    let mut learners = start_methods(&mut whole, &methods, s.model.config(), &device).unwrap();
    for task in 0..2 {
        let mut next = LearnNext::new(&whole, &tokenizer).unwrap();
        assert_eq!(next.task(), task);
        let mut ran = Vec::new();
        loop {
            match pollster::block_on(next.run(base, &whole, &mut learners, keep_going)).unwrap() {
                Ran::Learned => break,
                other => ran.push(other),
            }
        }
        assert_eq!(ran, [Ran::MethodLearned(0), Ran::MethodLearned(1)]);
        pollster::block_on(next.score(base, &mut whole, &learners, 8, &mut |_| {})).unwrap();
    }
    assert_eq!(whole.learned(), 2);
    assert!(matches!(
        LearnNext::new(&whole, &tokenizer),
        Err(SessionError::NothingToLearn)
    ));
    // The saved states open as learners that hold what the scores say.
    let reopened = open_learners(&whole, s.model.config(), &device).unwrap();
    assert_eq!(reopened.len(), 2);
    // MoSE leaves the first task alone: its oracle score stays.
    let oracle = whole.trained[0].report.r_matrix(Routing::Oracle);
    assert_eq!(oracle[0][0], oracle[1][0]);

    // The second task again, interrupted: MoSE finishes and its state is
    // kept; plain LoRA stops at step 3 and is checkpointed; after a
    // "reload" (learners from the project saved after the first task) it
    // resumes there.
    let mut project = synthetic_project(&s.model, &data);
    let mut learners = start_methods(&mut project, &methods, s.model.config(), &device).unwrap();
    let mut first = LearnNext::new(&project, &tokenizer).unwrap();
    while pollster::block_on(first.run(base, &project, &mut learners, keep_going)).unwrap()
        != Ran::Learned
    {}
    pollster::block_on(first.score(base, &mut project, &learners, 8, &mut |_| {})).unwrap();
    let mut next = LearnNext::new(&project, &tokenizer).unwrap();
    let mut stop_at_3 = |k: usize, r: &StepReport| match (k, r.step) {
        (1, 3) => Flow::Stop,
        _ => Flow::Continue,
    };
    let mut kept = Vec::new();
    loop {
        match pollster::block_on(next.run(base, &project, &mut learners, &mut stop_at_3)).unwrap() {
            Ran::MethodLearned(k) => {
                kept.push(pollster::block_on(learners[k].to_bytes(s.model.config())).unwrap())
            }
            Ran::Stopped => break,
            Ran::Learned => panic!("plain LoRA was to stop at step 3"),
        }
    }
    assert_eq!((next.method(), next.progress().0), (1, 3));
    let checkpoint = pollster::block_on(next.checkpoint()).unwrap().unwrap();
    drop((next, learners));
    let mut learners = open_learners(&project, s.model.config(), &device).unwrap();
    learners[0] = Learner::from_bytes(&kept[0], s.model.config(), &device).unwrap();
    let mut resumed = pollster::block_on(LearnNext::resume(
        base,
        &project,
        &tokenizer,
        &learners,
        1,
        &checkpoint,
    ))
    .unwrap();
    while pollster::block_on(resumed.run(base, &project, &mut learners, keep_going)).unwrap()
        != Ran::Learned
    {}
    pollster::block_on(resumed.score(base, &mut project, &learners, 8, &mut |_| {})).unwrap();
    for (a, b) in project.trained.iter().zip(&whole.trained) {
        let name = a.method.name();
        assert!(a.state == b.state, "{name}: the resumed state differs");
        assert_eq!(a.report.routed, b.report.routed, "{name}");
        assert_eq!(a.report.oracle, b.report.oracle, "{name}");
    }
}
