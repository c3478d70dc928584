//! Checks shared by the native and the browser tests, so both targets hold
//! the code to the same standard.
#![allow(dead_code)] // each test binary uses its own part

pub mod llama;
pub mod mose;
pub mod tokenizer;

use mose_lab::check::{CheckReport, DeviceCheckConfig};

/// A finished device check really trained, and only what it should have.
pub fn assert_trained(report: &CheckReport, config: &DeviceCheckConfig, device: &str) {
    assert_eq!(
        report.losses.len(),
        config.steps,
        "{device}: one loss per step"
    );
    assert!(
        report.losses.iter().all(|loss| loss.is_finite()),
        "{device}: non-finite loss in {:?}",
        report.losses
    );
    assert!(
        report.last_loss() < 0.5 * report.first_loss(),
        "{device}: loss should at least halve, went {} -> {}",
        report.first_loss(),
        report.last_loss()
    );
    assert!(
        report.frozen_unchanged,
        "{device}: the frozen weights changed during training"
    );
    assert!(
        report.steps_per_second > 0.0 && report.steps_per_second.is_finite(),
        "{device}: steps/s {}",
        report.steps_per_second
    );
    let expected_trainable = config.rank * (config.d_input + config.classes);
    assert_eq!(
        report.trainable_params, expected_trainable,
        "{device}: trainable parameters"
    );
    assert_eq!(
        report.frozen_params,
        config.d_input * config.classes,
        "{device}: frozen parameters"
    );
}

/// Two devices ran the same check from the same seed: their losses agree.
pub fn assert_same_losses(a: &CheckReport, b: &CheckReport, tolerance: f32) {
    let worst = a
        .losses
        .iter()
        .zip(&b.losses)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= tolerance,
        "losses differ by up to {worst} (tolerance {tolerance}):\n{:?}\n{:?}",
        a.losses,
        b.losses
    );
}
