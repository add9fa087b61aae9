//! edgetune: transfer learning on the edge.
//!
//! A frozen ONNX image backbone (run by tract) turns images into feature
//! vectors, which are cached on disk; a small dense head is trained on them
//! on the device with hand-written gradients and SIMD kernels.
//!
//! Modules, in pipeline order: [`manifest`] (how to run a backbone),
//! [`preprocess`] (decode, crop, resize, normalise), [`backbone`] (tract),
//! [`cache`] (redb feature store), [`dataset`] (folder-per-class),
//! [`extract`] (parallel, resumable extraction).

pub mod atomic;
pub mod backbone;
pub mod cache;
pub mod cli;
pub mod dataset;
pub mod extract;
pub mod install;
pub mod manifest;
pub mod metrics;
pub mod preprocess;

/// Name of the instruction set the training kernels use.
pub fn simd_level_name() -> String {
    "(kernels not built yet)".to_string()
}
