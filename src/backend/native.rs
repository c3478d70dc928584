//! Native half of [`crate::backend`]: wgpu initialised synchronously, once per
//! process, shared by every caller (tests run in parallel threads); with the
//! `cuda` feature, CUDA device 0, looked for once in the same way.

use std::sync::OnceLock;

use burn::tensor::Device;
#[cfg(feature = "cuda")]
use burn::tensor::DeviceType;

#[cfg(feature = "cuda")]
use super::BackendKind;
use super::{BackendError, Compute, gpu_compute};

static GPU: OnceLock<Result<Compute, BackendError>> = OnceLock::new();
#[cfg(feature = "cuda")]
static CUDA: OnceLock<Result<Compute, BackendError>> = OnceLock::new();

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

/// `Device::cuda(0)` only names a device: cubecl opens it on first use and
/// panics there when libcuda is missing. Listing the CUDA devices first asks
/// for libcuda without panicking (cubecl-cuda's `enumerate_devices`), so a
/// machine without an NVIDIA driver gets an error here instead. (cubecl lists
/// every runtime's devices and then filters, so this also lists the wgpu
/// adapters, without opening one.)
#[cfg(feature = "cuda")]
pub(super) fn cuda() -> Result<Compute, BackendError> {
    CUDA.get_or_init(|| {
        if Device::enumerate(DeviceType::Cuda).is_empty() {
            return Err(BackendError::NoCudaDevice);
        }
        Ok(Compute {
            device: Device::cuda(0),
            kind: BackendKind::Cuda,
            adapter: None,
        })
    })
    .clone()
}

pub(super) async fn yield_now() {}

pub(super) fn gpu_lost() -> Option<String> {
    None
}
