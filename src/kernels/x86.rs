//! x86_64 AVX2 + FMA kernels, and an AVX-512F GEMM.
//!
//! GEMM: 6×16 register-blocked micro-kernel (12 ymm accumulators, two B
//! vectors, one A broadcast) driven by [`super::portable::gemm_blocked`];
//! with AVX-512F a 12×32 one (24 zmm accumulators), twice the FMA width on
//! CPUs with two 512-bit FMA ports. The elementwise kernels are memory-bound
//! and stay AVX2 in both tables.
//! Elementwise kernels process 8 lanes at a time and fall back to the scalar
//! reference formula for tails.
//!
//! The safe functions here may only run on CPUs with AVX2 and FMA. This
//! module is private; its functions are reachable only through
//! [`super::Kernels::for_isa`], which checks `is_x86_feature_detected!` first.

use std::arch::x86_64::*;

use super::portable::{
    MicroKernel, TileEpilogue, gemm_blocked, gemm_packed_with, pack_b_with, skinny,
};
use super::{AdamStep, Epilogue, Isa, Kernels, Mat, MatMut, SgdStep, scalar};

pub(super) fn kernels() -> Kernels {
    Kernels {
        isa: Isa::Avx2Fma,
        threads: 1,
        gemm,
        pack_b: |b| pack_b_with::<Avx2Kernel>(b),
        gemm_packed: gemm_packed_avx2,
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

/// The AVX2 table with the AVX-512 GEMM.
pub(super) fn kernels_avx512() -> Kernels {
    Kernels {
        isa: Isa::Avx512,
        gemm: gemm_avx512,
        pack_b: pack_b_avx512,
        gemm_packed: gemm_packed_avx512,
        ..kernels()
    }
}

struct Avx512Kernel;

// SAFETY: only used through `kernels_avx512()`, after feature detection.
unsafe impl MicroKernel for Avx512Kernel {
    const MR: usize = 12;
    const NR: usize = 32;
    const KC: usize = 256;
    const MC: usize = 120;
    const NC: usize = 1024;

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
        unsafe { tile_12x32(k, alpha, a, b, beta, c, ldc) }
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
        unsafe { tile_12x32_direct(k, a, lda, b, accumulate, c, ldc, epi) }
    }

    #[inline(always)]
    unsafe fn skinny(
        alpha: f32,
        a: &Mat<'_>,
        b: &Mat<'_>,
        beta: f32,
        c: &mut MatMut<'_>,
        buf: &mut [f32],
    ) {
        unsafe { skinny_avx2(alpha, a, b, beta, c, buf) }
    }
}

/// 12×32 with `A` in place (row `i` at `a + i·lda`): per `p`, two `B`
/// vectors and twelve broadcasts straight from the activation rows.
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_12x32_direct(
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
        let mut acc = [[_mm512_setzero_ps(); 2]; 12];
        let rows: [*const f32; 12] = std::array::from_fn(|i| a.add(i * lda));
        let mut bp = b;
        for p in 0..k {
            let b0 = _mm512_loadu_ps(bp);
            let b1 = _mm512_loadu_ps(bp.add(16));
            for (row, r) in acc.iter_mut().zip(&rows) {
                let ai = _mm512_set1_ps(*r.add(p));
                row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
            }
            bp = bp.add(32);
        }
        let epi = epi.map(|e| {
            let (lo, hi) = (_mm512_set1_ps(e.lo), _mm512_set1_ps(e.hi));
            (
                e,
                lo,
                hi,
                _mm512_loadu_ps(e.bias),
                _mm512_loadu_ps(e.bias.add(16)),
            )
        });
        for (i, row) in acc.iter().enumerate() {
            let cr = c.add(i * ldc);
            let (mut x0, mut x1) = (row[0], row[1]);
            if accumulate {
                x0 = _mm512_add_ps(x0, _mm512_loadu_ps(cr));
                x1 = _mm512_add_ps(x1, _mm512_loadu_ps(cr.add(16)));
            }
            if let Some((e, lo, hi, b0, b1)) = epi {
                x0 = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(x0, b0), lo), hi);
                x1 = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(x1, b1), lo), hi);
                if !e.res.is_null() {
                    let r = e.res.add(i * e.ldr);
                    x0 = _mm512_add_ps(x0, _mm512_loadu_ps(r));
                    x1 = _mm512_add_ps(x1, _mm512_loadu_ps(r.add(16)));
                }
            }
            _mm512_storeu_ps(cr, x0);
            _mm512_storeu_ps(cr.add(16), x1);
        }
    }
}

#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn tile_12x32(
    k: usize,
    alpha: f32,
    a: *const f32,
    b: *const f32,
    beta: f32,
    c: *mut f32,
    ldc: usize,
) {
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); 2]; 12];
        let mut ap = a;
        let mut bp = b;
        for _ in 0..k {
            let b0 = _mm512_loadu_ps(bp);
            let b1 = _mm512_loadu_ps(bp.add(16));
            // fully unrolled by the compiler: 12 broadcasts, 24 FMAs
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(*ap.add(i));
                row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
            }
            ap = ap.add(12);
            bp = bp.add(32);
        }
        let va = _mm512_set1_ps(alpha);
        for (i, row) in acc.iter().enumerate() {
            let cr = c.add(i * ldc);
            if beta == 0.0 {
                _mm512_storeu_ps(cr, _mm512_mul_ps(va, row[0]));
                _mm512_storeu_ps(cr.add(16), _mm512_mul_ps(va, row[1]));
            } else {
                let vb = _mm512_set1_ps(beta);
                let o0 = _mm512_mul_ps(vb, _mm512_loadu_ps(cr));
                let o1 = _mm512_mul_ps(vb, _mm512_loadu_ps(cr.add(16)));
                _mm512_storeu_ps(cr, _mm512_fmadd_ps(va, row[0], o0));
                _mm512_storeu_ps(cr.add(16), _mm512_fmadd_ps(va, row[1], o1));
            }
        }
    }
}

fn gemm_avx512(alpha: f32, a: Mat<'_>, b: Mat<'_>, beta: f32, c: MatMut<'_>) {
    gemm_blocked::<Avx512Kernel>(alpha, a, b, beta, c)
}

/// Up to this many columns the AVX2 6×16 tile beats the 12×32 one, whose
/// second 16 lanes would be padding (MobileNetV2's 32 → 16 conv: 136 vs
/// 79 GFLOP/s).
const AVX512_MIN_N: usize = 17;

fn pack_b_avx512(b: &Mat<'_>) -> Vec<f32> {
    match b.cols() < AVX512_MIN_N {
        true => pack_b_with::<Avx2Kernel>(b),
        false => pack_b_with::<Avx512Kernel>(b),
    }
}

fn gemm_packed_avx512(a: Mat<'_>, b: &[f32], epi: &Epilogue<'_>, mut c: MatMut<'_>) {
    // SAFETY: reachable only through `kernels_avx512()` (features detected);
    // `b` was packed by `pack_b_avx512` for the same width.
    unsafe {
        match c.cols() < AVX512_MIN_N {
            true => gemm_packed_avx2_impl(&a, b, epi, &mut c),
            false => gemm_packed_avx512_impl(&a, b, epi, &mut c),
        }
    }
}

/// The driver, packing and epilogue compiled with AVX-512.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn gemm_packed_avx512_impl(a: &Mat<'_>, b: &[f32], epi: &Epilogue<'_>, c: &mut MatMut<'_>) {
    gemm_packed_with::<Avx512Kernel>(a, b, epi, c)
}

fn gemm_packed_avx2(a: Mat<'_>, b: &[f32], epi: &Epilogue<'_>, mut c: MatMut<'_>) {
    // SAFETY: reachable only through `kernels()` (features detected).
    unsafe { gemm_packed_avx2_impl(&a, b, epi, &mut c) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_packed_avx2_impl(a: &Mat<'_>, b: &[f32], epi: &Epilogue<'_>, c: &mut MatMut<'_>) {
    gemm_packed_with::<Avx2Kernel>(a, b, epi, c)
}

struct Avx2Kernel;

// SAFETY: only used through `kernels()`, after feature detection.
unsafe impl MicroKernel for Avx2Kernel {
    const MR: usize = 6;
    const NR: usize = 16;
    const KC: usize = 256;
    const MC: usize = 120;
    const NC: usize = 1024;

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
        unsafe { tile_6x16(k, alpha, a, b, beta, c, ldc) }
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
        unsafe { tile_6x16_direct(k, a, lda, b, accumulate, c, ldc, epi) }
    }

    #[inline(always)]
    unsafe fn skinny(
        alpha: f32,
        a: &Mat<'_>,
        b: &Mat<'_>,
        beta: f32,
        c: &mut MatMut<'_>,
        buf: &mut [f32],
    ) {
        unsafe { skinny_avx2(alpha, a, b, beta, c, buf) }
    }
}

/// 6×16 with `A` in place (row `i` at `a + i·lda`).
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_6x16_direct(
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
        let mut acc = [[_mm256_setzero_ps(); 2]; 6];
        let rows: [*const f32; 6] = std::array::from_fn(|i| a.add(i * lda));
        let mut bp = b;
        for p in 0..k {
            let b0 = _mm256_loadu_ps(bp);
            let b1 = _mm256_loadu_ps(bp.add(8));
            for (row, r) in acc.iter_mut().zip(&rows) {
                let ai = _mm256_broadcast_ss(&*r.add(p));
                row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
            }
            bp = bp.add(16);
        }
        let epi = epi.map(|e| {
            let (lo, hi) = (_mm256_set1_ps(e.lo), _mm256_set1_ps(e.hi));
            (
                e,
                lo,
                hi,
                _mm256_loadu_ps(e.bias),
                _mm256_loadu_ps(e.bias.add(8)),
            )
        });
        for (i, row) in acc.iter().enumerate() {
            let cr = c.add(i * ldc);
            let (mut x0, mut x1) = (row[0], row[1]);
            if accumulate {
                x0 = _mm256_add_ps(x0, _mm256_loadu_ps(cr));
                x1 = _mm256_add_ps(x1, _mm256_loadu_ps(cr.add(8)));
            }
            if let Some((e, lo, hi, b0, b1)) = epi {
                x0 = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(x0, b0), lo), hi);
                x1 = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(x1, b1), lo), hi);
                if !e.res.is_null() {
                    let r = e.res.add(i * e.ldr);
                    x0 = _mm256_add_ps(x0, _mm256_loadu_ps(r));
                    x1 = _mm256_add_ps(x1, _mm256_loadu_ps(r.add(8)));
                }
            }
            _mm256_storeu_ps(cr, x0);
            _mm256_storeu_ps(cr.add(8), x1);
        }
    }
}

/// The portable skinny GEMM compiled with AVX2 (8-lane vectors).
#[target_feature(enable = "avx2,fma")]
unsafe fn skinny_avx2(
    alpha: f32,
    a: &Mat<'_>,
    b: &Mat<'_>,
    beta: f32,
    c: &mut MatMut<'_>,
    buf: &mut [f32],
) {
    skinny(alpha, a, b, beta, c, buf)
}

#[target_feature(enable = "avx2,fma")]
unsafe fn tile_6x16(
    k: usize,
    alpha: f32,
    a: *const f32,
    b: *const f32,
    beta: f32,
    c: *mut f32,
    ldc: usize,
) {
    unsafe {
        let mut c00 = _mm256_setzero_ps();
        let mut c01 = _mm256_setzero_ps();
        let mut c10 = _mm256_setzero_ps();
        let mut c11 = _mm256_setzero_ps();
        let mut c20 = _mm256_setzero_ps();
        let mut c21 = _mm256_setzero_ps();
        let mut c30 = _mm256_setzero_ps();
        let mut c31 = _mm256_setzero_ps();
        let mut c40 = _mm256_setzero_ps();
        let mut c41 = _mm256_setzero_ps();
        let mut c50 = _mm256_setzero_ps();
        let mut c51 = _mm256_setzero_ps();
        let mut ap = a;
        let mut bp = b;
        macro_rules! step {
            () => {{
                let b0 = _mm256_loadu_ps(bp);
                let b1 = _mm256_loadu_ps(bp.add(8));
                let a0 = _mm256_broadcast_ss(&*ap);
                c00 = _mm256_fmadd_ps(a0, b0, c00);
                c01 = _mm256_fmadd_ps(a0, b1, c01);
                let a1 = _mm256_broadcast_ss(&*ap.add(1));
                c10 = _mm256_fmadd_ps(a1, b0, c10);
                c11 = _mm256_fmadd_ps(a1, b1, c11);
                let a2 = _mm256_broadcast_ss(&*ap.add(2));
                c20 = _mm256_fmadd_ps(a2, b0, c20);
                c21 = _mm256_fmadd_ps(a2, b1, c21);
                let a3 = _mm256_broadcast_ss(&*ap.add(3));
                c30 = _mm256_fmadd_ps(a3, b0, c30);
                c31 = _mm256_fmadd_ps(a3, b1, c31);
                let a4 = _mm256_broadcast_ss(&*ap.add(4));
                c40 = _mm256_fmadd_ps(a4, b0, c40);
                c41 = _mm256_fmadd_ps(a4, b1, c41);
                let a5 = _mm256_broadcast_ss(&*ap.add(5));
                c50 = _mm256_fmadd_ps(a5, b0, c50);
                c51 = _mm256_fmadd_ps(a5, b1, c51);
                ap = ap.add(6);
                bp = bp.add(16);
            }};
        }
        let mut p = 0;
        while p + 4 <= k {
            step!();
            step!();
            step!();
            step!();
            p += 4;
        }
        while p < k {
            step!();
            p += 1;
        }
        let va = _mm256_set1_ps(alpha);
        let rows = [
            (c00, c01),
            (c10, c11),
            (c20, c21),
            (c30, c31),
            (c40, c41),
            (c50, c51),
        ];
        if beta == 0.0 {
            for (i, (x0, x1)) in rows.into_iter().enumerate() {
                let cr = c.add(i * ldc);
                _mm256_storeu_ps(cr, _mm256_mul_ps(va, x0));
                _mm256_storeu_ps(cr.add(8), _mm256_mul_ps(va, x1));
            }
        } else {
            let vb = _mm256_set1_ps(beta);
            for (i, (x0, x1)) in rows.into_iter().enumerate() {
                let cr = c.add(i * ldc);
                let o0 = _mm256_mul_ps(vb, _mm256_loadu_ps(cr));
                let o1 = _mm256_mul_ps(vb, _mm256_loadu_ps(cr.add(8)));
                _mm256_storeu_ps(cr, _mm256_fmadd_ps(va, x0, o0));
                _mm256_storeu_ps(cr.add(8), _mm256_fmadd_ps(va, x1, o1));
            }
        }
    }
}

fn gemm(alpha: f32, a: Mat<'_>, b: Mat<'_>, beta: f32, c: MatMut<'_>) {
    gemm_blocked::<Avx2Kernel>(alpha, a, b, beta, c)
}

const W: usize = 8;

fn add_row(c: &mut [f32], bias: &[f32]) {
    if bias.is_empty() {
        return;
    }
    // SAFETY: AVX2 detected (see module docs).
    unsafe { add_row_avx2(c, bias) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn add_row_avx2(c: &mut [f32], bias: &[f32]) {
    let n = bias.len();
    let nv = n / W * W;
    for row in c.chunks_exact_mut(n) {
        let mut j = 0;
        while j < nv {
            unsafe {
                let x = _mm256_loadu_ps(row.as_ptr().add(j));
                let b = _mm256_loadu_ps(bias.as_ptr().add(j));
                _mm256_storeu_ps(row.as_mut_ptr().add(j), _mm256_add_ps(x, b));
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
    if out.is_empty() {
        return;
    }
    // SAFETY: AVX2 detected.
    unsafe { col_sums_avx2(x, out) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn col_sums_avx2(x: &[f32], out: &mut [f32]) {
    let n = out.len();
    let nv = n / W * W;
    for row in x.chunks_exact(n) {
        let mut j = 0;
        while j < nv {
            unsafe {
                let o = _mm256_loadu_ps(out.as_ptr().add(j));
                let v = _mm256_loadu_ps(row.as_ptr().add(j));
                _mm256_storeu_ps(out.as_mut_ptr().add(j), _mm256_add_ps(o, v));
            }
            j += W;
        }
        for jj in nv..n {
            out[jj] += row[jj];
        }
    }
}

fn relu(x: &mut [f32]) {
    // SAFETY: AVX2 detected.
    unsafe { relu_avx2(x) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn relu_avx2(x: &mut [f32]) {
    let n = x.len();
    let nv = n / W * W;
    let zero = _mm256_setzero_ps();
    let mut i = 0;
    while i < nv {
        unsafe {
            let v = _mm256_loadu_ps(x.as_ptr().add(i));
            // max(v, 0) returns the second operand (0) for NaN, like the
            // reference's `v > 0 ? v : 0`.
            _mm256_storeu_ps(x.as_mut_ptr().add(i), _mm256_max_ps(v, zero));
        }
        i += W;
    }
    scalar::relu(&mut x[nv..]);
}

fn relu_backward(dx: &mut [f32], y: &[f32]) {
    assert_eq!(dx.len(), y.len());
    // SAFETY: AVX2 detected.
    unsafe { relu_backward_avx2(dx, y) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn relu_backward_avx2(dx: &mut [f32], y: &[f32]) {
    let n = dx.len();
    let nv = n / W * W;
    let zero = _mm256_setzero_ps();
    let mut i = 0;
    while i < nv {
        unsafe {
            let d = _mm256_loadu_ps(dx.as_ptr().add(i));
            let v = _mm256_loadu_ps(y.as_ptr().add(i));
            let keep = _mm256_cmp_ps::<_CMP_GT_OQ>(v, zero);
            _mm256_storeu_ps(dx.as_mut_ptr().add(i), _mm256_and_ps(d, keep));
        }
        i += W;
    }
    scalar::relu_backward(&mut dx[nv..], &y[nv..]);
}

fn mul(x: &mut [f32], m: &[f32]) {
    assert_eq!(x.len(), m.len());
    // SAFETY: AVX2 detected.
    unsafe { mul_avx2(x, m) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn mul_avx2(x: &mut [f32], m: &[f32]) {
    let n = x.len();
    let nv = n / W * W;
    let mut i = 0;
    while i < nv {
        unsafe {
            let a = _mm256_loadu_ps(x.as_ptr().add(i));
            let b = _mm256_loadu_ps(m.as_ptr().add(i));
            _mm256_storeu_ps(x.as_mut_ptr().add(i), _mm256_mul_ps(a, b));
        }
        i += W;
    }
    scalar::mul(&mut x[nv..], &m[nv..]);
}

fn sum_sq(x: &[f32]) -> f32 {
    // SAFETY: AVX2 detected.
    unsafe { sum_sq_avx2(x) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn sum_sq_avx2(x: &[f32]) -> f32 {
    let n = x.len();
    let n32 = n / 32 * 32;
    let nv = n / W * W;
    let mut acc = [_mm256_setzero_ps(); 4];
    let p = x.as_ptr();
    let mut i = 0;
    unsafe {
        while i < n32 {
            for (u, a) in acc.iter_mut().enumerate() {
                let v = _mm256_loadu_ps(p.add(i + u * W));
                *a = _mm256_fmadd_ps(v, v, *a);
            }
            i += 32;
        }
        while i < nv {
            let v = _mm256_loadu_ps(p.add(i));
            acc[0] = _mm256_fmadd_ps(v, v, acc[0]);
            i += W;
        }
        let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let lo = _mm256_castps256_ps128(s);
        let hi = _mm256_extractf128_ps::<1>(s);
        let q = _mm_add_ps(lo, hi);
        let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
        let q = _mm_add_ss(q, _mm_shuffle_ps::<0b01>(q, q));
        _mm_cvtss_f32(q) + scalar::sum_sq(&x[nv..])
    }
}

fn adam(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &AdamStep) {
    let n = p.len();
    assert!(g.len() == n && m.len() == n && v.len() == n);
    // SAFETY: AVX2 detected.
    unsafe { adam_avx2(p, g, m, v, s) }
}

/// Same operation order as [`scalar::adam_one`] (no FMA contraction), so
/// results match the reference bit for bit except for `sqrt`/`div`
/// rounding, which is also correctly rounded in AVX: identical.
#[target_feature(enable = "avx2,fma")]
unsafe fn adam_avx2(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &AdamStep) {
    let n = p.len();
    let nv = n / W * W;
    let (step_size, inv_sqrt_bc2, decay) = scalar::adam_consts(s);
    let (b1, b2) = (s.beta1, s.beta2);
    let (c1, c2) = (1.0 - b1, 1.0 - b2);
    let vgs = _mm256_set1_ps(s.grad_scale);
    let vl2 = _mm256_set1_ps(s.l2);
    let vb1 = _mm256_set1_ps(b1);
    let vb2 = _mm256_set1_ps(b2);
    let vc1 = _mm256_set1_ps(c1);
    let vc2 = _mm256_set1_ps(c2);
    let veps = _mm256_set1_ps(s.eps);
    let vstep = _mm256_set1_ps(step_size);
    let vibc2 = _mm256_set1_ps(inv_sqrt_bc2);
    let vdecay = _mm256_set1_ps(decay);
    let mut i = 0;
    while i < nv {
        unsafe {
            let pp = _mm256_loadu_ps(p.as_ptr().add(i));
            let gg = _mm256_loadu_ps(g.as_ptr().add(i));
            let mm = _mm256_loadu_ps(m.as_ptr().add(i));
            let vv = _mm256_loadu_ps(v.as_ptr().add(i));
            let gg = _mm256_add_ps(_mm256_mul_ps(vgs, gg), _mm256_mul_ps(vl2, pp));
            let mm = _mm256_add_ps(_mm256_mul_ps(vb1, mm), _mm256_mul_ps(vc1, gg));
            let vv = _mm256_add_ps(
                _mm256_mul_ps(vb2, vv),
                _mm256_mul_ps(vc2, _mm256_mul_ps(gg, gg)),
            );
            let denom = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vv), vibc2), veps);
            let upd = _mm256_mul_ps(vstep, _mm256_div_ps(mm, denom));
            let pp = _mm256_sub_ps(_mm256_mul_ps(pp, vdecay), upd);
            _mm256_storeu_ps(m.as_mut_ptr().add(i), mm);
            _mm256_storeu_ps(v.as_mut_ptr().add(i), vv);
            _mm256_storeu_ps(p.as_mut_ptr().add(i), pp);
        }
        i += W;
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
    // SAFETY: AVX2 detected.
    unsafe { sgd_avx2(p, g, vel, s) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn sgd_avx2(p: &mut [f32], g: &[f32], vel: &mut [f32], s: &SgdStep) {
    let n = p.len();
    let nv = n / W * W;
    let decay = 1.0 - s.lr * s.decoupled_wd;
    let vgs = _mm256_set1_ps(s.grad_scale);
    let vl2 = _mm256_set1_ps(s.l2);
    let vmu = _mm256_set1_ps(s.momentum);
    let vlr = _mm256_set1_ps(s.lr);
    let vdecay = _mm256_set1_ps(decay);
    let mut i = 0;
    while i < nv {
        unsafe {
            let pp = _mm256_loadu_ps(p.as_ptr().add(i));
            let gg = _mm256_loadu_ps(g.as_ptr().add(i));
            let vv = _mm256_loadu_ps(vel.as_ptr().add(i));
            let gg = _mm256_add_ps(_mm256_mul_ps(vgs, gg), _mm256_mul_ps(vl2, pp));
            let vv = _mm256_add_ps(_mm256_mul_ps(vmu, vv), gg);
            let u = if s.nesterov {
                _mm256_add_ps(gg, _mm256_mul_ps(vmu, vv))
            } else {
                vv
            };
            let pp = _mm256_sub_ps(_mm256_mul_ps(pp, vdecay), _mm256_mul_ps(vlr, u));
            _mm256_storeu_ps(vel.as_mut_ptr().add(i), vv);
            _mm256_storeu_ps(p.as_mut_ptr().add(i), pp);
        }
        i += W;
    }
    for j in nv..n {
        scalar::sgd_one(&mut p[j], g[j], &mut vel[j], s, decay);
    }
}
