//! The device check trains natively on the CPU and, with `--features
//! wgpu-tests`, on wgpu (Mesa's lavapipe where the machine has no GPU): the
//! loss falls, the frozen weights stay bit-for-bit, and the devices agree.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use burn::tensor::Device;
use mose_lab::backend;
use mose_lab::check::{self, CheckReport, DeviceCheckConfig};

fn run(device: &Device) -> CheckReport {
    pollster::block_on(check::run(&DeviceCheckConfig::new(), device, |_| {}))
        .expect("the device check runs")
}

#[test]
fn device_check_trains_on_cpu() {
    let report = run(&backend::cpu().device);
    common::assert_trained(&report, &DeviceCheckConfig::new(), "cpu");
}

#[test]
fn device_check_reports_every_step_in_order() {
    let config = DeviceCheckConfig::new().with_steps(5);
    let mut seen = Vec::new();
    let report = pollster::block_on(check::run(&config, &backend::cpu().device, |step| {
        seen.push(step)
    }))
    .expect("the device check runs");
    let numbers: Vec<usize> = seen.iter().map(|s| s.step).collect();
    assert_eq!(numbers, vec![1, 2, 3, 4, 5]);
    assert!(seen.iter().all(|s| s.steps == 5));
    assert!(
        seen.windows(2)
            .all(|w| w[0].elapsed_seconds <= w[1].elapsed_seconds)
    );
    let losses: Vec<f32> = seen.iter().map(|s| s.loss).collect();
    assert_eq!(losses, report.losses);
}

#[cfg(feature = "wgpu-tests")]
mod wgpu {
    use super::*;
    use mose_lab::backend::BackendKind;

    fn gpu() -> backend::Compute {
        pollster::block_on(backend::gpu()).expect(
            "a wgpu adapter (install mesa-vulkan-drivers for a software one: scripts/setup.sh)",
        )
    }

    #[test]
    fn device_check_trains_on_wgpu() {
        let gpu = gpu();
        assert_eq!(gpu.kind, BackendKind::Wgpu);
        let adapter = gpu.adapter.as_ref().expect("wgpu reports its adapter");
        assert!(
            adapter.max_buffer_size > 0,
            "adapter limits are read: {adapter:?}"
        );
        let report = run(&gpu.device);
        common::assert_trained(&report, &DeviceCheckConfig::new(), "wgpu");
    }

    #[test]
    fn cpu_and_wgpu_agree() {
        let on_cpu = run(&backend::cpu().device);
        let on_gpu = run(&gpu().device);
        common::assert_same_losses(&on_cpu, &on_gpu, 1e-3);
    }
}
