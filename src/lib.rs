//! MoSE Lab: teach a small language model a sequence of your own text tasks,
//! on your own device, with Mixtures of SubExperts.
//!
//! One crate, two fronts: it compiles to WebAssembly for the browser app (the
//! `mose-lab` binary, built by Trunk) and natively for the library, the tests
//! and the command-line tool. Every computation takes a burn [`Device`], so the
//! same code runs on WebGPU, native wgpu and the CPU; [`backend`] picks one.
//!
//! [`Device`]: burn::tensor::Device
#![warn(missing_docs)]

pub mod backend;
pub mod chat;
pub mod check;
pub mod data;
pub mod eval;
pub mod export;
pub mod model;
pub mod mose;
pub mod optim;
pub mod project;
mod saved;
pub mod sequence;
pub mod session;
pub mod tasks;
pub mod tokenizer;
pub mod train;
