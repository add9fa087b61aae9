//! The head itself: dense layers, initialisation, standardisation, inference.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};
use serde::{Deserialize, Serialize};

use crate::kernels::{self, Kernels};

/// Architecture of a head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadConfig {
    /// Widths of the hidden ReLU layers; empty for a linear softmax head.
    pub hidden: Vec<usize>,
    /// Inverted-dropout rate in `[0, 1)` applied, during training only, to
    /// the input of every dense layer (the backbone features and each hidden
    /// activation). `0` disables dropout.
    pub dropout: f32,
}

impl Default for HeadConfig {
    /// Linear softmax head with dropout 0.2 on the features (the classic
    /// Keras transfer-learning head).
    fn default() -> Self {
        HeadConfig {
            hidden: Vec::new(),
            dropout: 0.2,
        }
    }
}

impl HeadConfig {
    /// Linear softmax head without dropout.
    pub fn linear() -> Self {
        HeadConfig {
            hidden: Vec::new(),
            dropout: 0.0,
        }
    }

    /// MLP head with the given hidden widths and dropout rate.
    pub fn mlp(hidden: &[usize], dropout: f32) -> Self {
        HeadConfig {
            hidden: hidden.to_vec(),
            dropout,
        }
    }
}

/// A dense layer `y = x·W + b` with `W: [in, out]`, `b: [out]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    pub w: Array2<f32>,
    pub b: Array1<f32>,
}

impl Dense {
    pub fn in_dim(&self) -> usize {
        self.w.nrows()
    }
    pub fn out_dim(&self) -> usize {
        self.w.ncols()
    }
}

/// Per-feature standardisation `(x - mean) / std`, fitted on training data.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer {
    pub mean: Array1<f32>,
    /// Standard deviations; features with (near) zero spread get 1.
    pub std: Array1<f32>,
}

impl Standardizer {
    /// Fit on the rows of `x` (population std, computed in f64).
    pub fn fit(x: ArrayView2<f32>) -> Standardizer {
        let (n, d) = x.dim();
        let mut mean = vec![0.0f64; d];
        for row in x.rows() {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        let inv_n = 1.0 / n.max(1) as f64;
        mean.iter_mut().for_each(|m| *m *= inv_n);
        let mut var = vec![0.0f64; d];
        for row in x.rows() {
            for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
                let dv = v as f64 - m;
                *s += dv * dv;
            }
        }
        let std = var.iter().map(|s| {
            let sd = (s * inv_n).sqrt();
            if sd > 1e-6 { sd as f32 } else { 1.0 }
        });
        Standardizer {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std: std.collect(),
        }
    }

    /// Standardise `x` into a new contiguous array.
    pub fn apply(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut out = Array2::zeros(x.dim());
        for (src, mut dst) in x.rows().into_iter().zip(out.rows_mut()) {
            for (((o, &v), &m), &s) in dst.iter_mut().zip(src).zip(&self.mean).zip(&self.std) {
                *o = (v - m) / s;
            }
        }
        out
    }

    /// Standardise one row into `dst` (same length as the mean).
    pub(crate) fn apply_row(&self, src: impl IntoIterator<Item = f32>, dst: &mut [f32]) {
        for (((o, v), &m), &s) in dst.iter_mut().zip(src).zip(&self.mean).zip(&self.std) {
            *o = (v - m) / s;
        }
    }
}

/// A trained (or freshly initialised) classification head.
#[derive(Clone, Debug, PartialEq)]
pub struct Head {
    pub input_dim: usize,
    pub n_classes: usize,
    pub config: HeadConfig,
    /// `hidden.len() + 1` dense layers; all but the last are followed by ReLU.
    pub layers: Vec<Dense>,
    /// Applied to the input by [`Head::logits`] / [`Head::predict_proba`].
    pub standardizer: Option<Standardizer>,
}

impl Head {
    /// A freshly initialised head: He-normal weights for the ReLU layers,
    /// Glorot-uniform for the output layer, zero biases; drawn from
    /// `ChaCha8Rng::seed_from_u64(seed)` so the same seed always gives the
    /// same weights.
    ///
    /// # Panics
    /// If `input_dim`, `n_classes` or a hidden width is zero.
    pub fn new(input_dim: usize, n_classes: usize, config: &HeadConfig, seed: u64) -> Head {
        assert!(input_dim > 0, "input_dim must be positive");
        assert!(n_classes > 0, "n_classes must be positive");
        assert!(
            config.hidden.iter().all(|&h| h > 0),
            "hidden widths must be positive"
        );
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut dims = vec![input_dim];
        dims.extend_from_slice(&config.hidden);
        dims.push(n_classes);
        let n_layers = dims.len() - 1;
        let layers = (0..n_layers)
            .map(|l| {
                let (fan_in, fan_out) = (dims[l], dims[l + 1]);
                let w = if l + 1 < n_layers {
                    let normal =
                        Normal::new(0.0f32, (2.0 / fan_in as f32).sqrt()).expect("valid std");
                    Array2::from_shape_simple_fn((fan_in, fan_out), || normal.sample(&mut rng))
                } else {
                    let a = (6.0 / (fan_in + fan_out) as f32).sqrt();
                    let uni = Uniform::new_inclusive(-a, a);
                    Array2::from_shape_simple_fn((fan_in, fan_out), || uni.sample(&mut rng))
                };
                Dense {
                    w,
                    b: Array1::zeros(fan_out),
                }
            })
            .collect();
        Head {
            input_dim,
            n_classes,
            config: config.clone(),
            layers,
            standardizer: None,
        }
    }

    /// Layer widths `[input_dim, hidden..., n_classes]`.
    pub fn dims(&self) -> Vec<usize> {
        let mut d = vec![self.input_dim];
        d.extend(self.layers.iter().map(|l| l.out_dim()));
        d
    }

    /// Number of trainable parameters.
    pub fn n_params(&self) -> usize {
        self.layers.iter().map(|l| l.w.len() + l.b.len()).sum()
    }

    /// Check internal consistency (layer shapes chain from `input_dim` to
    /// `n_classes`, standardiser length).
    pub fn check(&self) -> Result<(), String> {
        if self.layers.is_empty() {
            return Err("head has no layers".into());
        }
        let mut d = self.input_dim;
        for (i, l) in self.layers.iter().enumerate() {
            if l.in_dim() != d || l.b.len() != l.out_dim() {
                return Err(format!(
                    "layer {i} has W {:?} and b [{}], expected W [{d}, _]",
                    l.w.dim(),
                    l.b.len()
                ));
            }
            d = l.out_dim();
        }
        if d != self.n_classes {
            return Err(format!(
                "last layer has {d} outputs but the head has {} classes",
                self.n_classes
            ));
        }
        if let Some(s) = &self.standardizer
            && (s.mean.len() != self.input_dim || s.std.len() != self.input_dim)
        {
            return Err("standardizer length does not match input_dim".into());
        }
        Ok(())
    }

    /// Input standardised (if the head has a standardiser) as a contiguous
    /// row-major buffer.
    pub(crate) fn prepare_input(&self, x: ArrayView2<f32>) -> Vec<f32> {
        assert_eq!(
            x.ncols(),
            self.input_dim,
            "head expects {} features, got {}",
            self.input_dim,
            x.ncols()
        );
        let mut out = vec![0.0f32; x.len()];
        for (src, dst) in x
            .rows()
            .into_iter()
            .zip(out.chunks_exact_mut(self.input_dim.max(1)))
        {
            match &self.standardizer {
                Some(s) => s.apply_row(src.iter().copied(), dst),
                None => dst.iter_mut().zip(src).for_each(|(o, &v)| *o = v),
            }
        }
        out
    }

    /// Raw class scores (before softmax), inference mode (no dropout).
    ///
    /// # Panics
    /// If `x` does not have `input_dim` columns.
    pub fn logits(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let k = kernels::kernels();
        let rows = x.nrows();
        let mut cur = self.prepare_input(x);
        let n_layers = self.layers.len();
        for (l, layer) in self.layers.iter().enumerate() {
            let out = forward_layer(k, layer, &cur, rows, l + 1 < n_layers);
            cur = out;
        }
        Array2::from_shape_vec((rows, self.n_classes), cur).expect("shape")
    }

    /// Class probabilities (softmax of [`Head::logits`]), inference mode.
    pub fn predict_proba(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut z = self.logits(x);
        let slice = z.as_slice_mut().expect("contiguous");
        kernels::kernels().softmax_rows(slice, self.n_classes);
        z
    }

    /// Most probable class per row.
    pub fn predict(&self, x: ArrayView2<f32>) -> Vec<usize> {
        self.logits(x)
            .axis_iter(Axis(0))
            .map(|r| argmax(r.as_slice().expect("contiguous")))
            .collect()
    }
}

fn forward_layer(k: &Kernels, layer: &Dense, input: &[f32], rows: usize, relu: bool) -> Vec<f32> {
    let (din, dout) = layer.w.dim();
    let w = layer.w.as_standard_layout();
    let b = layer.b.as_standard_layout();
    let mut out = vec![0.0f32; rows * dout];
    k.gemm_nn(
        rows,
        dout,
        din,
        input,
        w.as_slice().expect("standard layout"),
        0.0,
        &mut out,
    );
    k.add_row(&mut out, b.as_slice().expect("standard layout"));
    if relu {
        k.relu(&mut out);
    }
    out
}

/// Index of the largest value (first one on ties; NaN never wins).
pub(crate) fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate().skip(1) {
        if x > v[best] {
            best = i;
        }
    }
    best
}
