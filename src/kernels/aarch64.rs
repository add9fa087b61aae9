//! aarch64 NEON kernels (Raspberry Pi 3/4/5 in 64-bit mode).
//!
//! GEMM: 8×8 register-blocked micro-kernel (16 q-register accumulators, A
//! and B micro-panels loaded as two q registers each, `fmla` by lane),
//! driven by [`super::portable::gemm_blocked`]. Elementwise kernels process
//! 4 lanes at a time and use the scalar reference formula for tails.
//!
//! NEON is part of the aarch64 baseline, so no run-time detection is needed.
#![allow(unused_unsafe)]

use std::arch::aarch64::*;

use super::portable::{MicroKernel, TileEpilogue, gemm_blocked, gemm_packed_with, pack_b_with};
use super::{AdamStep, Epilogue, Isa, Kernels, Mat, MatMut, SgdStep, scalar};

pub(super) fn kernels() -> Kernels {
    Kernels {
        isa: Isa::Neon,
        threads: 1,
        gemm,
        pack_b: |b| pack_b_with::<NeonKernel>(b),
        gemm_packed,
        add_row,
        col_sums,
        relu,
        relu_backward,
        mul,
        sum_sq,
        adam,
        sgd,
        softmax_xent: scalar::softmax_xent,
        softmax_rows: scalar::softmax_rows,
    }
}

struct NeonKernel;

// SAFETY: NEON is always available on aarch64.
unsafe impl MicroKernel for NeonKernel {
    const MR: usize = 8;
    const NR: usize = 8;
    const KC: usize = 256;
    // A block 64×256×4 = 64 KiB, B block 256×512×4 = 512 KiB: fits the
    // Cortex-A72/A76 L2 (1 MiB / 512 KiB per core).
    const MC: usize = 64;
    const NC: usize = 512;

    #[inline(always)]
    unsafe fn tile(
        k: usize,
        alpha: f32,
        a: *const f32,
        b: *const f32,
        beta: f32,
        c: *mut f32,
        ldc: usize,
    ) {
        unsafe { tile_8x8(k, alpha, a, b, beta, c, ldc) }
    }

    const DIRECT_A: bool = true;

    #[inline(always)]
    unsafe fn tile_direct(
        k: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        accumulate: bool,
        c: *mut f32,
        ldc: usize,
        epi: Option<&TileEpilogue>,
    ) {
        unsafe { tile_8x8_direct(k, a, lda, b, accumulate, c, ldc, epi) }
    }
}

/// 8×8 with `A` in place (row `i` at `a + i·lda`): `fmla` by a scalar
/// loaded straight from each activation row.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_8x8_direct(
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    accumulate: bool,
    c: *mut f32,
    ldc: usize,
    epi: Option<&TileEpilogue>,
) {
    unsafe {
        let z = vdupq_n_f32(0.0);
        let mut acc = [[z; 2]; 8];
        let rows: [*const f32; 8] = std::array::from_fn(|i| a.add(i * lda));
        let mut bp = b;
        for p in 0..k {
            let b0 = vld1q_f32(bp);
            let b1 = vld1q_f32(bp.add(4));
            for (row, r) in acc.iter_mut().zip(&rows) {
                let ai = *r.add(p);
                row[0] = vfmaq_n_f32(row[0], b0, ai);
                row[1] = vfmaq_n_f32(row[1], b1, ai);
            }
            bp = bp.add(8);
        }
        let epi = epi.map(|e| {
            let (lo, hi) = (vdupq_n_f32(e.lo), vdupq_n_f32(e.hi));
            (e, lo, hi, vld1q_f32(e.bias), vld1q_f32(e.bias.add(4)))
        });
        for (i, row) in acc.iter().enumerate() {
            let cr = c.add(i * ldc);
            let (mut x0, mut x1) = (row[0], row[1]);
            if accumulate {
                x0 = vaddq_f32(x0, vld1q_f32(cr));
                x1 = vaddq_f32(x1, vld1q_f32(cr.add(4)));
            }
            if let Some((e, lo, hi, b0, b1)) = epi {
                // vmaxnmq/vminnmq: the non-NaN operand, as f32::max/min
                x0 = vminnmq_f32(vmaxnmq_f32(vaddq_f32(x0, b0), lo), hi);
                x1 = vminnmq_f32(vmaxnmq_f32(vaddq_f32(x1, b1), lo), hi);
                if !e.res.is_null() {
                    let r = e.res.add(i * e.ldr);
                    x0 = vaddq_f32(x0, vld1q_f32(r));
                    x1 = vaddq_f32(x1, vld1q_f32(r.add(4)));
                }
            }
            vst1q_f32(cr, x0);
            vst1q_f32(cr.add(4), x1);
        }
    }
}

#[inline(never)]
unsafe fn tile_8x8(
    k: usize,
    alpha: f32,
    a: *const f32,
    b: *const f32,
    beta: f32,
    c: *mut f32,
    ldc: usize,
) {
    unsafe {
        let z = vdupq_n_f32(0.0);
        let mut acc = [[z; 2]; 8];
        let mut ap = a;
        let mut bp = b;
        for _ in 0..k {
            let a0 = vld1q_f32(ap);
            let a1 = vld1q_f32(ap.add(4));
            let b0 = vld1q_f32(bp);
            let b1 = vld1q_f32(bp.add(4));
            macro_rules! row {
                ($i:literal, $a:ident, $l:literal) => {
                    acc[$i][0] = vfmaq_laneq_f32::<$l>(acc[$i][0], b0, $a);
                    acc[$i][1] = vfmaq_laneq_f32::<$l>(acc[$i][1], b1, $a);
                };
            }
            row!(0, a0, 0);
            row!(1, a0, 1);
            row!(2, a0, 2);
            row!(3, a0, 3);
            row!(4, a1, 0);
            row!(5, a1, 1);
            row!(6, a1, 2);
            row!(7, a1, 3);
            ap = ap.add(8);
            bp = bp.add(8);
        }
        let va = vdupq_n_f32(alpha);
        if beta == 0.0 {
            for (i, r) in acc.iter().enumerate() {
                let cr = c.add(i * ldc);
                vst1q_f32(cr, vmulq_f32(r[0], va));
                vst1q_f32(cr.add(4), vmulq_f32(r[1], va));
            }
        } else {
            let vb = vdupq_n_f32(beta);
            for (i, r) in acc.iter().enumerate() {
                let cr = c.add(i * ldc);
                let o0 = vmulq_f32(vld1q_f32(cr), vb);
                let o1 = vmulq_f32(vld1q_f32(cr.add(4)), vb);
                vst1q_f32(cr, vfmaq_f32(o0, r[0], va));
                vst1q_f32(cr.add(4), vfmaq_f32(o1, r[1], va));
            }
        }
    }
}

fn gemm(alpha: f32, a: Mat<'_>, b: Mat<'_>, beta: f32, c: MatMut<'_>) {
    gemm_blocked::<NeonKernel>(alpha, a, b, beta, c)
}

fn gemm_packed(a: Mat<'_>, b: &[f32], epi: &Epilogue<'_>, mut c: MatMut<'_>) {
    gemm_packed_with::<NeonKernel>(&a, b, epi, &mut c)
}

const W: usize = 4;

fn add_row(c: &mut [f32], bias: &[f32]) {
    let n = bias.len();
    if n == 0 {
        return;
    }
    let nv = n / W * W;
    for row in c.chunks_exact_mut(n) {
        let mut j = 0;
        while j < nv {
            // SAFETY: j + 4 <= nv <= n == row.len() == bias.len().
            unsafe {
                let x = vld1q_f32(row.as_ptr().add(j));
                let b = vld1q_f32(bias.as_ptr().add(j));
                vst1q_f32(row.as_mut_ptr().add(j), vaddq_f32(x, b));
            }
            j += W;
        }
        for jj in nv..n {
            row[jj] += bias[jj];
        }
    }
}

fn col_sums(x: &[f32], out: &mut [f32]) {
    out.fill(0.0);
    let n = out.len();
    if n == 0 {
        return;
    }
    let nv = n / W * W;
    for row in x.chunks_exact(n) {
        let mut j = 0;
        while j < nv {
            // SAFETY: j + 4 <= n.
            unsafe {
                let o = vld1q_f32(out.as_ptr().add(j));
                let v = vld1q_f32(row.as_ptr().add(j));
                vst1q_f32(out.as_mut_ptr().add(j), vaddq_f32(o, v));
            }
            j += W;
        }
        for jj in nv..n {
            out[jj] += row[jj];
        }
    }
}

fn relu(x: &mut [f32]) {
    let n = x.len();
    let nv = n / W * W;
    let mut i = 0;
    while i < nv {
        // SAFETY: i + 4 <= n.
        unsafe {
            let z = vdupq_n_f32(0.0);
            let v = vld1q_f32(x.as_ptr().add(i));
            // Select rather than vmaxq (which propagates NaN) to match the
            // reference `v > 0 ? v : 0`.
            let keep = vcgtq_f32(v, z);
            vst1q_f32(x.as_mut_ptr().add(i), vbslq_f32(keep, v, z));
        }
        i += W;
    }
    scalar::relu(&mut x[nv..]);
}

fn relu_backward(dx: &mut [f32], y: &[f32]) {
    assert_eq!(dx.len(), y.len());
    let n = dx.len();
    let nv = n / W * W;
    let mut i = 0;
    while i < nv {
        // SAFETY: i + 4 <= n for both slices.
        unsafe {
            let z = vdupq_n_f32(0.0);
            let d = vld1q_f32(dx.as_ptr().add(i));
            let v = vld1q_f32(y.as_ptr().add(i));
            let keep = vcgtq_f32(v, z);
            vst1q_f32(dx.as_mut_ptr().add(i), vbslq_f32(keep, d, z));
        }
        i += W;
    }
    scalar::relu_backward(&mut dx[nv..], &y[nv..]);
}

fn mul(x: &mut [f32], m: &[f32]) {
    assert_eq!(x.len(), m.len());
    let n = x.len();
    let nv = n / W * W;
    let mut i = 0;
    while i < nv {
        // SAFETY: i + 4 <= n for both slices.
        unsafe {
            let a = vld1q_f32(x.as_ptr().add(i));
            let b = vld1q_f32(m.as_ptr().add(i));
            vst1q_f32(x.as_mut_ptr().add(i), vmulq_f32(a, b));
        }
        i += W;
    }
    scalar::mul(&mut x[nv..], &m[nv..]);
}

fn sum_sq(x: &[f32]) -> f32 {
    let n = x.len();
    let n16 = n / 16 * 16;
    let nv = n / W * W;
    let p = x.as_ptr();
    // SAFETY: every load is at an offset + 4 <= n.
    unsafe {
        let z = vdupq_n_f32(0.0);
        let mut acc = [z; 4];
        let mut i = 0;
        while i < n16 {
            for (u, a) in acc.iter_mut().enumerate() {
                let v = vld1q_f32(p.add(i + u * W));
                *a = vfmaq_f32(*a, v, v);
            }
            i += 16;
        }
        while i < nv {
            let v = vld1q_f32(p.add(i));
            acc[0] = vfmaq_f32(acc[0], v, v);
            i += W;
        }
        let s = vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
        vaddvq_f32(s) + scalar::sum_sq(&x[nv..])
    }
}

fn adam(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &AdamStep) {
    let n = p.len();
    assert!(g.len() == n && m.len() == n && v.len() == n);
    let nv = n / W * W;
    let (step_size, inv_sqrt_bc2, decay) = scalar::adam_consts(s);
    let (b1, b2) = (s.beta1, s.beta2);
    let (c1, c2) = (1.0 - b1, 1.0 - b2);
    let mut i = 0;
    // SAFETY: i + 4 <= n for all four slices.
    unsafe {
        let vgs = vdupq_n_f32(s.grad_scale);
        let vl2 = vdupq_n_f32(s.l2);
        let vb1 = vdupq_n_f32(b1);
        let vb2 = vdupq_n_f32(b2);
        let vc1 = vdupq_n_f32(c1);
        let vc2 = vdupq_n_f32(c2);
        let veps = vdupq_n_f32(s.eps);
        let vstep = vdupq_n_f32(step_size);
        let vibc2 = vdupq_n_f32(inv_sqrt_bc2);
        let vdecay = vdupq_n_f32(decay);
        while i < nv {
            let pp = vld1q_f32(p.as_ptr().add(i));
            let gg = vld1q_f32(g.as_ptr().add(i));
            let mm = vld1q_f32(m.as_ptr().add(i));
            let vv = vld1q_f32(v.as_ptr().add(i));
            let gg = vaddq_f32(vmulq_f32(vgs, gg), vmulq_f32(vl2, pp));
            let mm = vaddq_f32(vmulq_f32(vb1, mm), vmulq_f32(vc1, gg));
            let vv = vaddq_f32(vmulq_f32(vb2, vv), vmulq_f32(vc2, vmulq_f32(gg, gg)));
            let denom = vaddq_f32(vmulq_f32(vsqrtq_f32(vv), vibc2), veps);
            let upd = vmulq_f32(vstep, vdivq_f32(mm, denom));
            let pp = vsubq_f32(vmulq_f32(pp, vdecay), upd);
            vst1q_f32(m.as_mut_ptr().add(i), mm);
            vst1q_f32(v.as_mut_ptr().add(i), vv);
            vst1q_f32(p.as_mut_ptr().add(i), pp);
            i += W;
        }
    }
    for j in nv..n {
        scalar::adam_one(
            &mut p[j],
            g[j],
            &mut m[j],
            &mut v[j],
            s,
            (b1, b2, c1, c2),
            (step_size, inv_sqrt_bc2, decay),
        );
    }
}

fn sgd(p: &mut [f32], g: &[f32], vel: &mut [f32], s: &SgdStep) {
    let n = p.len();
    assert!(g.len() == n && vel.len() == n);
    let nv = n / W * W;
    let decay = 1.0 - s.lr * s.decoupled_wd;
    let mut i = 0;
    // SAFETY: i + 4 <= n for all three slices.
    unsafe {
        let vgs = vdupq_n_f32(s.grad_scale);
        let vl2 = vdupq_n_f32(s.l2);
        let vmu = vdupq_n_f32(s.momentum);
        let vlr = vdupq_n_f32(s.lr);
        let vdecay = vdupq_n_f32(decay);
        while i < nv {
            let pp = vld1q_f32(p.as_ptr().add(i));
            let gg = vld1q_f32(g.as_ptr().add(i));
            let vv = vld1q_f32(vel.as_ptr().add(i));
            let gg = vaddq_f32(vmulq_f32(vgs, gg), vmulq_f32(vl2, pp));
            let vv = vaddq_f32(vmulq_f32(vmu, vv), gg);
            let u = if s.nesterov {
                vaddq_f32(gg, vmulq_f32(vmu, vv))
            } else {
                vv
            };
            let pp = vsubq_f32(vmulq_f32(pp, vdecay), vmulq_f32(vlr, u));
            vst1q_f32(vel.as_mut_ptr().add(i), vv);
            vst1q_f32(p.as_mut_ptr().add(i), pp);
            i += W;
        }
    }
    for j in nv..n {
        scalar::sgd_one(&mut p[j], g[j], &mut vel[j], s, decay);
    }
}
