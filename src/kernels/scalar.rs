//! Scalar reference kernels.
//!
//! Deliberately simple, safe loops: these define the semantics every other
//! implementation is tested against (see the docs of the corresponding
//! methods on [`super::Kernels`]). They are also a complete runtime path
//! (`EDGETUNE_KERNELS=scalar`).

// The reference is plain index loops on purpose: obviously the formula.
#![allow(clippy::needless_range_loop)]

use super::{AdamStep, Epilogue, Mat, MatMut, SgdStep, XentOpts, check_gemm_dims};

/// Reference GEMM `C = alpha·A·B + beta·C` (`C` not read when `beta == 0`):
/// one f32 dot product per output element, accumulated in order of `k`.
pub fn gemm(alpha: f32, a: Mat<'_>, b: Mat<'_>, beta: f32, mut c: MatMut<'_>) {
    check_gemm_dims(&a, &b, &c);
    let (m, n, k) = (a.rows(), b.cols(), a.cols());
    for i in 0..m {
        let row = c.row_mut(i);
        for j in 0..n {
            let mut acc = 0.0f32;
            for p in 0..k {
                acc += a.get(i, p) * b.get(p, j);
            }
            let out = &mut row[j];
            *out = if beta == 0.0 {
                alpha * acc
            } else {
                alpha * acc + beta * *out
            };
        }
    }
}

/// The reference "packing": `B` row-major, as is.
pub fn pack_b(b: &Mat<'_>) -> Vec<f32> {
    let mut out = Vec::with_capacity(b.rows() * b.cols());
    for p in 0..b.rows() {
        for j in 0..b.cols() {
            out.push(b.get(p, j));
        }
    }
    out
}

/// `C = epilogue(A·B)` with `b` from [`pack_b`] (`k × n` row-major).
pub fn gemm_packed(a: Mat<'_>, b: &[f32], epi: &Epilogue<'_>, mut c: MatMut<'_>) {
    let (m, n, k) = (c.rows(), c.cols(), a.cols());
    for i in 0..m {
        let row = c.row_mut(i);
        for j in 0..n {
            let mut acc = 0.0f32;
            for p in 0..k {
                acc += a.get(i, p) * b[p * n + j];
            }
            let r = epi.residual.map_or(0.0, |r| r.get(i, j));
            row[j] = Epilogue::apply(epi.bias[j], epi.lo, epi.hi, acc, r);
        }
    }
}

/// `c[i, j] += bias[j]`.
pub fn add_row(c: &mut [f32], bias: &[f32]) {
    if bias.is_empty() {
        return;
    }
    for row in c.chunks_exact_mut(bias.len()) {
        for (x, b) in row.iter_mut().zip(bias) {
            *x += *b;
        }
    }
}

/// `out[j] = Σ_i x[i, j]`, rows summed in order.
pub fn col_sums(x: &[f32], out: &mut [f32]) {
    out.fill(0.0);
    if out.is_empty() {
        return;
    }
    let n = out.len();
    for row in x.chunks_exact(n) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += *v;
        }
    }
}

/// `x = max(x, 0)`.
pub fn relu(x: &mut [f32]) {
    for v in x {
        *v = if *v > 0.0 { *v } else { 0.0 };
    }
}

/// `dx = if y > 0 { dx } else { 0 }`.
pub fn relu_backward(dx: &mut [f32], y: &[f32]) {
    assert_eq!(dx.len(), y.len());
    for (d, v) in dx.iter_mut().zip(y) {
        if *v <= 0.0 {
            *d = 0.0;
        }
    }
}

/// `x *= m`.
pub fn mul(x: &mut [f32], m: &[f32]) {
    assert_eq!(x.len(), m.len());
    for (v, s) in x.iter_mut().zip(m) {
        *v *= *s;
    }
}

/// `Σ x²`, accumulated in order.
pub fn sum_sq(x: &[f32]) -> f32 {
    let mut acc = 0.0f32;
    for v in x {
        acc += v * v;
    }
    acc
}

/// Per-call constants shared by every Adam implementation.
#[inline]
pub(crate) fn adam_consts(s: &AdamStep) -> (f32, f32, f32) {
    let step_size = s.lr / s.bc1;
    let inv_sqrt_bc2 = 1.0 / s.bc2.sqrt();
    let decay = 1.0 - s.lr * s.decoupled_wd;
    (step_size, inv_sqrt_bc2, decay)
}

/// One Adam(W) step (see [`AdamStep`]).
pub fn adam(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &AdamStep) {
    let n = p.len();
    assert!(g.len() == n && m.len() == n && v.len() == n);
    let (step_size, inv_sqrt_bc2, decay) = adam_consts(s);
    let (b1, b2) = (s.beta1, s.beta2);
    let (c1, c2) = (1.0 - b1, 1.0 - b2);
    for i in 0..n {
        adam_one(
            &mut p[i],
            g[i],
            &mut m[i],
            &mut v[i],
            s,
            (b1, b2, c1, c2),
            (step_size, inv_sqrt_bc2, decay),
        );
    }
}

/// Adam on one element; the SIMD implementations use it for their tails so
/// that tails are bit-identical to the reference.
#[inline(always)]
pub(crate) fn adam_one(
    p: &mut f32,
    g: f32,
    m: &mut f32,
    v: &mut f32,
    s: &AdamStep,
    (b1, b2, c1, c2): (f32, f32, f32, f32),
    (step_size, inv_sqrt_bc2, decay): (f32, f32, f32),
) {
    let g = s.grad_scale * g + s.l2 * *p;
    *m = b1 * *m + c1 * g;
    *v = b2 * *v + c2 * (g * g);
    let denom = v.sqrt() * inv_sqrt_bc2 + s.eps;
    *p = *p * decay - step_size * (*m / denom);
}

/// One SGD-with-momentum step (see [`SgdStep`]).
pub fn sgd(p: &mut [f32], g: &[f32], vel: &mut [f32], s: &SgdStep) {
    let n = p.len();
    assert!(g.len() == n && vel.len() == n);
    let decay = 1.0 - s.lr * s.decoupled_wd;
    for i in 0..n {
        sgd_one(&mut p[i], g[i], &mut vel[i], s, decay);
    }
}

#[inline(always)]
pub(crate) fn sgd_one(p: &mut f32, g: f32, vel: &mut f32, s: &SgdStep, decay: f32) {
    let g = s.grad_scale * g + s.l2 * *p;
    *vel = s.momentum * *vel + g;
    let u = if s.nesterov {
        g + s.momentum * *vel
    } else {
        *vel
    };
    *p = *p * decay - s.lr * u;
}

pub(crate) fn check_xent(
    logits: &[f32],
    n: usize,
    targets: &[usize],
    weights: Option<&[f32]>,
    loss: &[f32],
    grad: &[f32],
) {
    let m = targets.len();
    assert!(n > 0, "softmax_xent: zero classes");
    assert_eq!(logits.len(), m * n, "softmax_xent: logits length");
    assert_eq!(grad.len(), m * n, "softmax_xent: grad length");
    assert_eq!(loss.len(), m, "softmax_xent: loss length");
    if let Some(w) = weights {
        assert_eq!(w.len(), m, "softmax_xent: weights length");
    }
    if let Some(t) = targets.iter().find(|&&t| t >= n) {
        panic!("softmax_xent: target {t} out of range for {n} classes");
    }
}

/// Softmax cross-entropy with label smoothing and sample weights (see
/// [`super::Kernels::softmax_xent`]).
pub fn softmax_xent(
    logits: &[f32],
    n: usize,
    targets: &[usize],
    weights: Option<&[f32]>,
    opts: XentOpts,
    loss: &mut [f32],
    grad: &mut [f32],
) {
    check_xent(logits, n, targets, weights, loss, grad);
    let eps = opts.label_smoothing;
    let off = eps / n as f32;
    let on = 1.0 - eps + off;
    let inv_scale = 1.0 / opts.scale;
    for (i, (&t, (z, g))) in targets
        .iter()
        .zip(logits.chunks_exact(n).zip(grad.chunks_exact_mut(n)))
        .enumerate()
    {
        let max = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let mut sum = 0.0f32;
        for (gj, &zj) in g.iter_mut().zip(z) {
            let e = (zj - max).exp();
            *gj = e;
            sum += e;
        }
        let lse = max + sum.ln();
        // Σ_j t_j (lse - z_j), each term >= 0.
        let mut l = (1.0 - eps) * (lse - z[t]);
        if off != 0.0 {
            let mut s = 0.0f32;
            for &zj in z {
                s += lse - zj;
            }
            l += off * s;
        }
        let w = weights.map_or(1.0, |w| w[i]);
        loss[i] = w * l;
        let inv_sum = 1.0 / sum;
        let gs = w * inv_scale;
        for (j, gj) in g.iter_mut().enumerate() {
            let tj = if j == t { on } else { off };
            *gj = (*gj * inv_sum - tj) * gs;
        }
    }
}

/// Row-wise numerically stable softmax, in place.
pub fn softmax_rows(x: &mut [f32], n: usize) {
    if n == 0 {
        return;
    }
    for row in x.chunks_exact_mut(n) {
        let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let mut sum = 0.0f32;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}
