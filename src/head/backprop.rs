//! Forward and backward passes on preallocated buffers, with the kernels.
//!
//! Notation for layer `l` (0-based, `L` layers): `A_l` is its input
//! (`rows × d_l`, after dropout), `W_l` is `d_l × d_{l+1}`.
//!
//! ```text
//! forward:  A_l *= mask_l (training, dropout > 0)
//!           Z_l = A_l·W_l + b_l;  A_{l+1} = relu(Z_l) (hidden) or logits (last)
//! loss:     G = w_i (softmax(logits) - t) / Σw          (softmax_xent kernel)
//! backward: dW_l = A_lᵀ·G;  db_l = colsum(G)
//!           G = (G·W_lᵀ) * mask_l * (A_l > 0)            (l > 0)
//! ```

use ndarray::{Array1, Array2, ArrayView2};
use rand::RngCore;
use rand_chacha::ChaCha8Rng;

use super::model::{Head, argmax};
use crate::kernels::{Kernels, XentOpts};

/// All buffers of one forward/backward pass, sized for `cap` rows.
pub(crate) struct Workspace {
    pub cap: usize,
    pub dims: Vec<usize>,
    /// `acts[l]`: input of layer `l` (`cap × dims[l]`); `acts[0]` is filled
    /// by the caller.
    pub acts: Vec<Vec<f32>>,
    /// Dropout masks (same shapes as `acts`), empty without dropout.
    pub masks: Vec<Vec<f32>>,
    pub logits: Vec<f32>,
    delta: Vec<f32>,
    delta2: Vec<f32>,
    pub losses: Vec<f32>,
    pub targets: Vec<usize>,
    pub weights: Vec<f32>,
    /// `(dW, db)` per layer, row-major like the parameters.
    pub grads: Vec<(Vec<f32>, Vec<f32>)>,
}

impl Workspace {
    pub fn new(dims: &[usize], cap: usize, dropout: bool) -> Workspace {
        let n_layers = dims.len() - 1;
        let c = dims[n_layers];
        let widest = dims[1..].iter().copied().max().unwrap_or(1);
        Workspace {
            cap,
            dims: dims.to_vec(),
            acts: dims[..n_layers]
                .iter()
                .map(|&d| vec![0.0; cap * d])
                .collect(),
            masks: if dropout {
                dims[..n_layers]
                    .iter()
                    .map(|&d| vec![0.0; cap * d])
                    .collect()
            } else {
                Vec::new()
            },
            logits: vec![0.0; cap * c],
            delta: vec![0.0; cap * widest],
            delta2: vec![0.0; cap * widest],
            losses: vec![0.0; cap],
            targets: vec![0; cap],
            weights: vec![1.0; cap],
            grads: (0..n_layers)
                .map(|l| (vec![0.0; dims[l] * dims[l + 1]], vec![0.0; dims[l + 1]]))
                .collect(),
        }
    }

    pub fn n_classes(&self) -> usize {
        *self.dims.last().expect("dims")
    }

    /// Forward pass over the first `rows` rows of `acts[0]`, leaving the
    /// logits in `self.logits[..rows * C]`. With `dropout = Some((p, rng))`
    /// inverted dropout with rate `p` is applied to every layer input.
    pub fn forward(
        &mut self,
        k: &Kernels,
        head: &Head,
        rows: usize,
        mut dropout: Option<(f32, &mut ChaCha8Rng)>,
    ) {
        debug_assert!(rows <= self.cap);
        let n_layers = head.layers.len();
        for (l, layer) in head.layers.iter().enumerate() {
            let (din, dout) = (self.dims[l], self.dims[l + 1]);
            if let Some((p, rng)) = dropout.as_mut() {
                let mask = &mut self.masks[l][..rows * din];
                fill_dropout_mask(mask, *p, rng);
                k.mul(&mut self.acts[l][..rows * din], mask);
            }
            let (lo, hi) = self.acts.split_at_mut(l + 1);
            let input = &lo[l][..rows * din];
            let out = if l + 1 < n_layers {
                &mut hi[0][..rows * dout]
            } else {
                &mut self.logits[..rows * dout]
            };
            let w = layer
                .w
                .as_slice()
                .expect("weights must be in standard layout");
            let b = layer.b.as_slice().expect("bias must be contiguous");
            k.gemm_nn(rows, dout, din, input, w, 0.0, out);
            k.add_row(out, b);
            if l + 1 < n_layers {
                k.relu(out);
            }
        }
    }

    /// Loss and logits gradient for the first `rows` rows (targets and
    /// weights in `self.targets` / `self.weights`); returns
    /// `(Σ w_i·loss_i, Σ w_i)`. The gradient is that of the weighted mean.
    pub fn loss(
        &mut self,
        k: &Kernels,
        rows: usize,
        label_smoothing: f32,
        weighted: bool,
    ) -> (f64, f64) {
        let c = self.n_classes();
        let weights = &self.weights[..rows];
        let wsum: f64 = if weighted {
            weights.iter().map(|&w| w as f64).sum()
        } else {
            rows as f64
        };
        let opts = XentOpts {
            label_smoothing,
            scale: if wsum > 0.0 { wsum as f32 } else { 1.0 },
        };
        k.softmax_xent(
            &self.logits[..rows * c],
            c,
            &self.targets[..rows],
            if weighted { Some(weights) } else { None },
            opts,
            &mut self.losses[..rows],
            &mut self.delta[..rows * c],
        );
        let lsum: f64 = self.losses[..rows].iter().map(|&l| l as f64).sum();
        (lsum, wsum)
    }

    /// Number of rows among the first `rows` whose arg-max logit is the target.
    pub fn correct(&self, rows: usize) -> usize {
        let c = self.n_classes();
        self.logits[..rows * c]
            .chunks_exact(c)
            .zip(&self.targets[..rows])
            .filter(|(z, t)| argmax(z) == **t)
            .count()
    }

    /// Backward pass after [`Workspace::forward`] and [`Workspace::loss`]
    /// (with the same `dropout` setting), filling `self.grads`.
    pub fn backward(&mut self, k: &Kernels, head: &Head, rows: usize, dropout: bool) {
        for l in (0..head.layers.len()).rev() {
            let (din, dout) = (self.dims[l], self.dims[l + 1]);
            let g = &self.delta[..rows * dout];
            let a = &self.acts[l][..rows * din];
            let (dw, db) = &mut self.grads[l];
            k.gemm_tn(din, dout, rows, a, g, 0.0, dw);
            k.col_sums(g, db);
            if l > 0 {
                let w = head.layers[l].w.as_slice().expect("standard layout");
                let dx = &mut self.delta2[..rows * din];
                k.gemm_nt(rows, din, dout, g, w, 0.0, dx);
                if dropout {
                    k.mul(dx, &self.masks[l][..rows * din]);
                }
                k.relu_backward(dx, a);
                std::mem::swap(&mut self.delta, &mut self.delta2);
            }
        }
    }

    /// Squared global norm of the gradients.
    pub fn grad_sq_norm(&self, k: &Kernels) -> f64 {
        self.grads
            .iter()
            .map(|(dw, db)| k.sum_sq(dw) as f64 + k.sum_sq(db) as f64)
            .sum()
    }
}

/// Inverted-dropout mask: 0 with probability `p`, `1/(1-p)` otherwise.
///
/// The random words are drawn in bulk straight into the mask's memory
/// (ChaCha's wide block function, ~8× cheaper than a call per element),
/// then turned into the mask in place by a branch-free, vectorisable pass.
/// The words are the ones `next_u32` would give, in the same order.
fn fill_dropout_mask(mask: &mut [f32], p: f32, rng: &mut ChaCha8Rng) {
    let keep = 1.0 / (1.0 - p);
    // Drop when a uniform u32 falls below p·2³².
    let threshold = (p as f64 * 4294967296.0).min(u32::MAX as f64) as u32;
    // SAFETY: f32 and [u8; 4] have the same size, any bit pattern is a
    // valid f32, and the slice is exclusively borrowed.
    let bytes = unsafe {
        std::slice::from_raw_parts_mut(mask.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(mask))
    };
    rng.fill_bytes(bytes);
    for m in mask.iter_mut() {
        let r = u32::from_le(m.to_bits());
        *m = if r < threshold { 0.0 } else { keep };
    }
}

/// Gradients `(dW, db)` of one dense layer.
pub type LayerGrads = (Array2<f32>, Array1<f32>);

/// Weighted mean cross-entropy of `head` on `(x, y)` and its gradients with
/// respect to every layer's `(W, b)`, computed with the same kernels and
/// code path as training (inference mode: no dropout).
///
/// The loss is `Σ_i w_i·CE_i / Σ_i w_i` (plain mean when `sample_weights` is
/// `None`), with label smoothing `ε`. If the head has a standardiser it is
/// applied to `x` first (gradients are with respect to the parameters only).
///
/// # Panics
/// On shape mismatches or out-of-range labels.
pub fn loss_and_grads(
    head: &Head,
    x: ArrayView2<f32>,
    y: &[usize],
    sample_weights: Option<&[f32]>,
    label_smoothing: f32,
) -> (f32, Vec<LayerGrads>) {
    let k = crate::kernels::kernels();
    head.check().expect("inconsistent head");
    let rows = x.nrows();
    assert_eq!(
        rows,
        y.len(),
        "x has {rows} rows but y has {} labels",
        y.len()
    );
    if let Some(w) = sample_weights {
        assert_eq!(w.len(), rows, "sample_weights length");
    }
    let mut head = head.clone();
    for l in &mut head.layers {
        if !l.w.is_standard_layout() {
            l.w = l.w.as_standard_layout().into_owned();
        }
    }
    let dims = head.dims();
    let mut ws = Workspace::new(&dims, rows.max(1), false);
    ws.acts[0][..rows * head.input_dim].copy_from_slice(&head.prepare_input(x));
    ws.targets[..rows].copy_from_slice(y);
    if let Some(w) = sample_weights {
        ws.weights[..rows].copy_from_slice(w);
    }
    ws.forward(k, &head, rows, None);
    let (lsum, wsum) = ws.loss(k, rows, label_smoothing, sample_weights.is_some());
    ws.backward(k, &head, rows, false);
    let grads = ws
        .grads
        .into_iter()
        .enumerate()
        .map(|(l, (dw, db))| {
            (
                Array2::from_shape_vec((dims[l], dims[l + 1]), dw).expect("shape"),
                Array1::from_vec(db),
            )
        })
        .collect();
    ((lsum / wsum.max(f64::MIN_POSITIVE)) as f32, grads)
}
