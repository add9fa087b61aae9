//! edgetune: transfer learning on the edge.
//!
//! A frozen ONNX image backbone (run by tract) turns images into feature
//! vectors, which are cached on disk; a small dense head is trained on them
//! on the device with hand-written gradients and SIMD kernels.
//!
//! Modules, in pipeline order: [`manifest`] (how to run a backbone),
//! [`preprocess`] (decode, crop, resize, normalise), [`backbone`] (tract),
//! [`cache`] (redb feature store), [`dataset`] (folder-per-class),
//! [`extract`] (parallel, resumable extraction), [`kernels`] (SIMD
//! training kernels), [`head`] (the trainable head), [`headfile`] (its file),
//! [`metrics`] and [`plot`] (evaluation), [`cli`] (the commands).

pub mod atomic;
pub mod backbone;
pub mod cache;
pub mod cli;
pub mod dataset;
pub mod device;
pub mod doctor;
pub mod dwconv;
pub mod extract;
pub mod fusion;
pub mod head;
pub mod headfile;
pub mod install;
pub mod kernels;
pub mod manifest;
pub mod metrics;
pub mod plot;
pub mod preprocess;
pub mod pwconv;
pub mod stemconv;

/// Name of the instruction set the training kernels dispatch to.
pub fn simd_level_name() -> String {
    kernels::isa().name().to_string()
}
