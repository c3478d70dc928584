//! Browser half of [`crate::backend`]: WebGPU initialised asynchronously,
//! once per page, and a yield that goes back to the event loop.

use std::cell::RefCell;
use std::sync::Mutex;

use burn::tensor::Device;

use super::{BackendError, Compute, gpu_compute};

thread_local! {
    static GPU: RefCell<Option<Result<Compute, BackendError>>> = const { RefCell::new(None) };
}

/// What the browser said when it took the GPU device away (`GPUDevice.lost`).
static LOST: Mutex<Option<String>> = Mutex::new(None);

pub(super) async fn gpu() -> Result<Compute, BackendError> {
    if let Some(cached) = GPU.with_borrow(|gpu| gpu.clone()) {
        return cached;
    }
    let made = match Device::wgpu_options().init_with_setup_async().await {
        Ok((device, setup)) => {
            // In the browser each callback is one more `lost.then(...)`, so
            // CubeCL's own (which fails later reads) stays in place.
            setup.device.set_device_lost_callback(|reason, message| {
                if let Ok(mut lost) = LOST.lock() {
                    lost.get_or_insert(match message.trim() {
                        "" => format!("{reason:?}"),
                        message => message.to_string(),
                    });
                }
            });
            let mut compute = gpu_compute(device, &setup);
            if let Some(adapter) = compute.adapter.as_mut().filter(|a| a.name.is_empty()) {
                adapter.name = browser_adapter_name().await.unwrap_or_default();
            }
            Ok(compute)
        }
        Err(e) => Err(BackendError::NoAdapter {
            reason: e.to_string(),
        }),
    };
    GPU.with_borrow_mut(|gpu| gpu.get_or_insert(made).clone())
}

/// What the browser said when it took the GPU device away, if it did.
pub(super) fn gpu_lost() -> Option<String> {
    LOST.lock().ok().and_then(|lost| lost.clone())
}

/// A zero-delay timer: the browser runs pending events and paints first.
pub(super) async fn yield_now() {
    gloo_timers::future::TimeoutFuture::new(0).await;
}

/// Browsers often leave `GPUAdapterInfo.description` (wgpu's adapter name)
/// empty but still tell the vendor and architecture: ask WebGPU directly.
/// `None` when the browser tells nothing.
async fn browser_adapter_name() -> Option<String> {
    use js_sys::{Function, Promise, Reflect};
    use wasm_bindgen::{JsCast, JsValue};

    let get = |object: &JsValue, key: &str| Reflect::get(object, &JsValue::from_str(key)).ok();
    let navigator = get(&js_sys::global(), "navigator")?;
    let gpu = get(&navigator, "gpu")?;
    let request = get(&gpu, "requestAdapter")?.dyn_into::<Function>().ok()?;
    let promise = request.call0(&gpu).ok()?.dyn_into::<Promise>().ok()?;
    let adapter = wasm_bindgen_futures::JsFuture::from(promise).await.ok()?;
    let info = get(&adapter, "info")?;
    let words: Vec<String> = ["vendor", "architecture", "device"]
        .iter()
        .filter_map(|key| get(&info, key)?.as_string())
        .filter(|word| !word.is_empty())
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}
