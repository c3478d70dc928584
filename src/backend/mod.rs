//! Picks the compute device at run time: burn's wgpu backend (WebGPU in the
//! browser; Vulkan, Metal or DX12 natively) or the pure-Rust CPU backend
//! (`flex`) where no GPU adapter answers; natively, with the `cuda` feature,
//! also burn's CUDA backend.
//!
//! Burn 0.22 chooses the backend through the [`Device`] value, so everything
//! above this module takes a `&Device` and runs unchanged on either. The wgpu
//! runtime can be initialised only once per process (per page in the
//! browser); the target-specific halves below cache the device they made.
//! See docs/ARCHITECTURE.md, "Backends".

use burn::tensor::Device;
use burn::tensor::wgpu::WgpuSetup;
use burn::tensor::wgpu::wgpu;
use serde::{Deserialize, Serialize};

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(not(target_arch = "wasm32"))]
use native as target;

#[cfg(target_arch = "wasm32")]
mod web;
#[cfg(target_arch = "wasm32")]
use web as target;

/// Why no GPU device could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The platform offered no adapter, or the adapter refused to make a device.
    #[error("no GPU adapter is available ({reason})")]
    NoAdapter {
        /// What the graphics runtime said.
        reason: String,
    },
    /// No NVIDIA driver could be loaded, or it reports no CUDA device.
    #[error("no CUDA device is available (no NVIDIA driver was found, or it reports no GPU)")]
    NoCudaDevice,
}

/// Which kind of backend a [`Compute`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackendKind {
    /// burn-wgpu: WebGPU in a browser, Vulkan/Metal/DX12 natively.
    Wgpu,
    /// burn's `flex` backend: pure Rust on the CPU, natively or compiled to wasm.
    Cpu,
    /// burn's CUDA backend on an NVIDIA GPU (native builds with the `cuda` feature).
    Cuda,
}

impl BackendKind {
    /// A short name for reports and the page (`wgpu`, `cpu`, `cuda`).
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cpu => "cpu",
            BackendKind::Cuda => "cuda",
        }
    }
}

/// What a person (or a bug report) needs to know about a GPU adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterSummary {
    /// The adapter's name as the platform reports it (browsers may hide it).
    pub name: String,
    /// The graphics API underneath (`WebGPU`, `Vulkan`, `Metal`, `Dx12`, `OpenGL`).
    pub api: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `Cpu` (a software rasteriser), ...
    pub device_type: String,
    /// Largest single buffer, in bytes: bounds the largest weight matrix.
    pub max_buffer_size: u64,
    /// Largest storage buffer a shader can bind, in bytes.
    pub max_storage_buffer_binding_size: u64,
    /// Most invocations in one compute workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Workgroup shared memory, in bytes.
    pub max_compute_workgroup_storage_size: u32,
}

impl AdapterSummary {
    fn from_setup(setup: &WgpuSetup) -> Self {
        let info: wgpu::AdapterInfo = setup.adapter.get_info();
        let limits = setup.adapter.limits();
        Self {
            name: info.name,
            api: match info.backend {
                wgpu::Backend::BrowserWebGpu => "WebGPU".to_string(),
                wgpu::Backend::Gl => "OpenGL".to_string(),
                other => format!("{other:?}"),
            },
            device_type: format!("{:?}", info.device_type),
            max_buffer_size: limits.max_buffer_size,
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
        }
    }

    /// True for a software adapter (SwiftShader, lavapipe): correct, but slow.
    pub fn is_software(&self) -> bool {
        self.device_type == "Cpu"
    }
}

/// A device to compute on, with what it is.
#[derive(Debug, Clone)]
pub struct Compute {
    /// The burn device every model, training and evaluation call takes.
    pub device: Device,
    /// Which backend it is.
    pub kind: BackendKind,
    /// The GPU adapter, for [`BackendKind::Wgpu`].
    pub adapter: Option<AdapterSummary>,
}

/// The CPU backend; always available.
pub fn cpu() -> Compute {
    Compute {
        device: Device::flex(),
        kind: BackendKind::Cpu,
        adapter: None,
    }
}

/// The wgpu device (WebGPU in the browser), initialised on first use and
/// shared afterwards.
///
/// # Errors
/// [`BackendError::NoAdapter`] when the platform has no usable adapter (a
/// browser without WebGPU, a machine without Vulkan/Metal/DX12 drivers).
pub async fn gpu() -> Result<Compute, BackendError> {
    target::gpu().await
}

/// The first NVIDIA GPU, through burn's CUDA backend; looked for on first use
/// and shared afterwards.
///
/// # Errors
/// [`BackendError::NoCudaDevice`] when no NVIDIA driver is installed, or it
/// reports no GPU.
#[cfg(all(feature = "cuda", not(target_arch = "wasm32")))]
pub fn cuda() -> Result<Compute, BackendError> {
    target::cuda()
}

/// The best device this platform offers: the GPU if there is one, else the
/// CPU together with the reason the GPU was not used.
pub async fn best() -> (Compute, Option<BackendError>) {
    match gpu().await {
        Ok(compute) => (compute, None),
        Err(why) => (cpu(), Some(why)),
    }
}

/// Why the GPU device [`gpu`] made is gone, when the browser took it away
/// (a driver reset, the GPU process restarted, `GPUDevice.destroy()`):
/// every read from it fails from then on, and only a new page gets a new
/// one. Natively always `None`: a lost device there ends the process's work
/// with the read errors themselves.
pub fn gpu_lost() -> Option<String> {
    target::gpu_lost()
}

/// Lets the rest of the program run between two steps of a long computation.
///
/// In the browser this returns to the event loop, so the page stays responsive
/// while training runs; natively it returns at once.
pub async fn yield_now() {
    target::yield_now().await
}

fn gpu_compute(device: Device, setup: &WgpuSetup) -> Compute {
    Compute {
        device,
        kind: BackendKind::Wgpu,
        adapter: Some(AdapterSummary::from_setup(setup)),
    }
}
