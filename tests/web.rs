//! The device check in a real browser (headless Chromium, driven by
//! wasm-bindgen-test-runner): on WebGPU and on the CPU backend compiled to
//! wasm, with the same assertions as the native tests.
#![cfg(target_arch = "wasm32")]

mod common;

use mose_lab::backend::{self, BackendKind};
use mose_lab::check::{self, CheckReport, DeviceCheckConfig};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

// The linker's constructors (the `inventory` registrations of cubecl's IR).
// A module that never calls them itself is a "command" to wasm-ld, which then
// reruns all of them at the top of every export, on every call from
// JavaScript; calling them from the tests makes the exports plain (as the
// app's `main` does, src/main.rs). wasm-bindgen-test runs no start function,
// so each test calls `constructors` first.
unsafe extern "C" {
    fn __wasm_call_ctors();
}

fn constructors() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: once per instance, before the test touches a device.
    ONCE.call_once(|| unsafe { __wasm_call_ctors() });
}

async fn run(device: &burn::tensor::Device) -> CheckReport {
    check::run(&DeviceCheckConfig::new(), device, |_| {})
        .await
        .expect("the device check runs")
}

async fn webgpu() -> backend::Compute {
    let gpu = backend::gpu()
        .await
        .expect("a WebGPU adapter (Chromium needs --enable-unsafe-webgpu, see webdriver.json)");
    assert_eq!(gpu.kind, BackendKind::Wgpu);
    gpu
}

#[wasm_bindgen_test]
async fn device_check_trains_on_webgpu() {
    constructors();
    let gpu = webgpu().await;
    let adapter = gpu.adapter.as_ref().expect("wgpu reports its adapter");
    assert_eq!(adapter.api, "WebGPU");
    let report = run(&gpu.device).await;
    common::assert_trained(&report, &DeviceCheckConfig::new(), "webgpu");
}

#[wasm_bindgen_test]
async fn device_check_trains_on_wasm_cpu() {
    constructors();
    let report = run(&backend::cpu().device).await;
    common::assert_trained(&report, &DeviceCheckConfig::new(), "wasm cpu");
}

#[wasm_bindgen_test]
async fn webgpu_and_wasm_cpu_agree() {
    constructors();
    let on_gpu = run(&webgpu().await.device).await;
    let on_cpu = run(&backend::cpu().device).await;
    common::assert_same_losses(&on_cpu, &on_gpu, 1e-3);
}

// The base model: the same parity bodies as tests/model.rs, on WebGPU and on
// the CPU backend in wasm, against the same transformers fixtures.

use common::llama::{self as parity, TIED, UNTIED};

#[wasm_bindgen_test]
async fn llama_matches_transformers_on_webgpu() {
    constructors();
    let device = webgpu().await.device;
    for fixture in [&TIED, &UNTIED] {
        parity::check_logits(fixture, &device).await;
        parity::check_loss_and_gradients(fixture, &device).await;
    }
}

#[wasm_bindgen_test]
async fn llama_matches_transformers_on_wasm_cpu() {
    constructors();
    let device = backend::cpu().device;
    for fixture in [&TIED, &UNTIED] {
        parity::check_logits(fixture, &device).await;
    }
    parity::check_loss_and_gradients(&TIED, &device).await;
}

#[wasm_bindgen_test]
async fn llama_webgpu_and_wasm_cpu_agree() {
    constructors();
    let gpu = webgpu().await.device;
    let cpu = backend::cpu().device;
    for fixture in [&TIED, &UNTIED] {
        let on_gpu = parity::check_logits(fixture, &gpu).await;
        let on_cpu = parity::check_logits(fixture, &cpu).await;
        parity::assert_close(
            &format!("{}: cpu vs webgpu", fixture.name),
            &on_gpu,
            &on_cpu,
            1e-3,
        );
    }
}

#[wasm_bindgen_test]
fn tokenizer_ids_match_python_tokenizers_in_wasm() {
    constructors();
    let compared = common::tokenizer::check_tokenizer();
    assert!(compared > 100_000, "compared {compared} ids");
}

// The continual sequence: the native tests' short MoSE sequence on WebGPU,
// against the metrics the native CPU run recorded.

use common::mose::{SHORT_SEQUENCE, assert_matches_recorded};

#[wasm_bindgen_test]
async fn the_short_sequence_on_webgpu_matches_the_recorded_native_run() {
    constructors();
    let device = webgpu().await.device;
    let report = SHORT_SEQUENCE.run(&device).await;
    assert_matches_recorded(&report, "webgpu");
}

// SmolLM2-135M-Instruct as the app loads it: the GGUF served beside the app
// (scripts/serve-models.sh puts it in www/served/, and the test runner
// serves the repository), loaded tensor by tensor in wasm, checked on
// WebGPU and on the CPU backend against the same transformers reference as
// tests/model.rs, with the page's memory after each load. On
// SwiftShader (CI's software GPU) compiling the kernels takes minutes, so
// WebGPU generates the two tokens of " Paris." and the CPU all sixteen.

use mose_lab::model::LoadedModel;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
export async function fetch_served(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}; run scripts/serve-models.sh (scripts/test.sh does)`);
  return new Uint8Array(await response.arrayBuffer());
}
"#)]
extern "C" {
    #[wasm_bindgen(catch)]
    async fn fetch_served(url: &str) -> Result<JsValue, JsValue>;
}

async fn served(path: &str) -> Vec<u8> {
    let bytes = fetch_served(&format!("/www/served/{path}"))
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    js_sys::Uint8Array::new(&bytes).to_vec()
}

/// The served SmolLM2's file, by name.
async fn smollm2() -> (String, Vec<u8>) {
    let index: serde_json::Value =
        serde_json::from_slice(&served("index.json").await).expect("index.json is JSON");
    let file = index[0]["file"].as_str().expect("index.json names a file");
    (file.to_string(), served(file).await)
}

/// The page's WebAssembly memory in MB: it only grows, so this is its peak.
fn wasm_memory_mb() -> f64 {
    let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
    js_sys::ArrayBuffer::from(memory.buffer()).byte_length() as f64 / 1e6
}

#[wasm_bindgen_test]
async fn smollm2_from_the_served_gguf_matches_transformers_on_webgpu_and_wasm_cpu() {
    constructors();
    let files = [smollm2().await];
    // Loaded as the app loads a model: one tensor at a time onto the device.
    for (name, device, greedy_tokens) in [
        ("webgpu", webgpu().await.device, 2),
        ("wasm cpu", backend::cpu().device, 16),
    ] {
        let loaded = LoadedModel::from_files(&files, &device, |_| {})
            .await
            .expect("the served GGUF loads");
        let tokenizer = loaded.text.tokenizer().expect("the tokenizer loads");
        wasm_bindgen_test::console_log!(
            "smollm2 on {name}: loaded, the page's memory {:.0} MB at most",
            wasm_memory_mb()
        );
        let worst = parity::check_smollm2(&loaded.model, &tokenizer, greedy_tokens, &device).await;
        wasm_bindgen_test::console_log!(
            "smollm2 on {name}: max abs logit diff vs transformers {worst:.2e}"
        );
    }
}
