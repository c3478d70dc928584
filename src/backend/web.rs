//! Browser half of [`crate::backend`]: WebGPU initialised asynchronously,
//! once per page, and a yield that goes back to the event loop.

use std::cell::RefCell;

use burn::tensor::Device;

use super::{BackendError, Compute, gpu_compute};

thread_local! {
    static GPU: RefCell<Option<Result<Compute, BackendError>>> = const { RefCell::new(None) };
}

pub(super) async fn gpu() -> Result<Compute, BackendError> {
    if let Some(cached) = GPU.with_borrow(|gpu| gpu.clone()) {
        return cached;
    }
    let made = match Device::wgpu_options().init_with_setup_async().await {
        Ok((device, setup)) => Ok(gpu_compute(device, &setup)),
        Err(e) => Err(BackendError::NoAdapter {
            reason: e.to_string(),
        }),
    };
    GPU.with_borrow_mut(|gpu| gpu.get_or_insert(made).clone())
}

/// A zero-delay timer: the browser runs pending events and paints first.
pub(super) async fn yield_now() {
    gloo_timers::future::TimeoutFuture::new(0).await;
}
