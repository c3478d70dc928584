//! Native half of [`crate::backend`]: wgpu initialised synchronously, once per
//! process, shared by every caller (tests run in parallel threads).

use std::sync::OnceLock;

use burn::tensor::Device;

use super::{BackendError, Compute, gpu_compute};

static GPU: OnceLock<Result<Compute, BackendError>> = OnceLock::new();

pub(super) async fn gpu() -> Result<Compute, BackendError> {
    GPU.get_or_init(|| {
        let (device, setup) =
            Device::wgpu_options()
                .init_with_setup()
                .map_err(|e| BackendError::NoAdapter {
                    reason: e.to_string(),
                })?;
        Ok(gpu_compute(device, &setup))
    })
    .clone()
}

pub(super) async fn yield_now() {}
