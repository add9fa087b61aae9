//! Helpers for the conv-op tests (tests/dwconv.rs, pwconv.rs, stemconv.rs).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tract_onnx::prelude::*;

/// `n` values uniform in [-1, 1).
pub fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// max |a - b| / (1 + |b|)
pub fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0, f32::max)
}

/// tract's own rewrite of the convs to channel-last, as the backbone runs it.
pub fn conv_nhwc(mut model: TypedModel) -> TypedModel {
    let t = tract_onnx::tract_core::transform::get_transform("conv_nhwc")
        .unwrap()
        .unwrap();
    model.transform(&*t).unwrap();
    model
}

/// The op names of a model's nodes.
pub fn ops_of(model: &TypedModel) -> Vec<String> {
    model
        .nodes
        .iter()
        .map(|n| n.op().name().to_string())
        .collect()
}

/// A tensor's values, in order.
pub fn values(t: &TValue) -> Vec<f32> {
    t.to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}
