//! Shared helpers for the integration tests: where `../shared` is, and
//! model specs pointing straight at its files (tests never copy the model).
#![allow(dead_code)]

pub mod convs;

use std::path::PathBuf;

use edgetune::backbone::ModelSpec;
use edgetune::manifest::Manifest;

/// `$EDGETUNE_SHARED`, else `../shared` beside the checkout.
pub fn shared() -> PathBuf {
    let p = std::env::var_os("EDGETUNE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    assert!(
        p.join("models").is_dir(),
        "{} not found: the tests need the shared models and data (set EDGETUNE_SHARED)",
        p.display()
    );
    p
}

pub fn spec(name: &str) -> ModelSpec {
    let manifest = Manifest::builtin(name).unwrap();
    let path = shared().join("models").join(&manifest.file);
    ModelSpec { manifest, path }
}

pub fn features_spec() -> ModelSpec {
    spec("mobilenet_v2_1.0_224_features")
}

pub fn imagenet_spec() -> ModelSpec {
    spec("mobilenet_v2_1.0_224_imagenet")
}

pub fn read_f32(path: PathBuf) -> Vec<f32> {
    let b = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The built `edgetune` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_edgetune"))
}
