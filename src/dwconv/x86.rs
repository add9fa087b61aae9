//! x86_64 kernels: AVX-512F (16 channels a vector, masked tail) and
//! AVX2+FMA (8 channels a vector, scalar tail). Same walk as the scalar
//! reference; channels are the vector lanes, so every load is contiguous.
//!
//! Walk: output row, then channel block (the nine tap vectors and the bias
//! stay in registers for the whole row), then output column. Interior pixels
//! (all nine taps inside the image) take an unrolled path; border pixels
//! loop over their valid taps only.

use std::arch::x86_64::*;

use super::{Geometry, scalar};

/// The valid tap rows `ky0..ky1` of output row `oy`, and where it starts.
#[inline(always)]
fn rows(g: &Geometry, oy: usize) -> (isize, usize, usize) {
    let iy0 = oy as isize * g.stride as isize - g.pad_top as isize;
    let ky0 = (-iy0).clamp(0, 3) as usize;
    let ky1 = (g.h as isize - iy0).clamp(0, 3) as usize;
    (iy0, ky0, ky1)
}

/// Same for columns.
#[inline(always)]
fn cols(g: &Geometry, ox: usize) -> (isize, usize, usize) {
    let ix0 = ox as isize * g.stride as isize - g.pad_left as isize;
    let kx0 = (-ix0).clamp(0, 3) as usize;
    let kx1 = (g.w as isize - ix0).clamp(0, 3) as usize;
    (ix0, kx0, kx1)
}

// ---------------------------------------------------------------- AVX-512F

/// # Safety
/// AVX-512F must be available; the slices must have the sizes `g` implies
/// (the safe wrapper in `super` checks).
#[target_feature(enable = "avx512f")]
pub unsafe fn dw3x3_avx512(g: &Geometry, x: &[f32], k: &[f32], b: &[f32], y: &mut [f32]) {
    let full = g.c / 16 * 16;
    let tail = (g.c - full) as u32;
    for oy in 0..g.oh {
        let mut c0 = 0;
        while c0 < full {
            unsafe { row512::<false>(g, x, k, b, y, oy, c0, 0xffff) };
            c0 += 16;
        }
        if tail > 0 {
            unsafe { row512::<true>(g, x, k, b, y, oy, full, ((1u32 << tail) - 1) as u16) };
        }
    }
}

#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn ld512<const MASKED: bool>(p: *const f32, m: __mmask16) -> __m512 {
    unsafe {
        if MASKED {
            _mm512_maskz_loadu_ps(m, p)
        } else {
            _mm512_loadu_ps(p)
        }
    }
}

#[inline]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn row512<const MASKED: bool>(
    g: &Geometry,
    x: &[f32],
    k: &[f32],
    b: &[f32],
    y: &mut [f32],
    oy: usize,
    c0: usize,
    m: __mmask16,
) {
    unsafe {
        let c = g.c;
        let (xp, kp, yp) = (x.as_ptr(), k.as_ptr(), y.as_mut_ptr());
        let row = (g.w * c) as isize;
        let mut wv = [_mm512_setzero_ps(); 9];
        for (t, w) in wv.iter_mut().enumerate() {
            *w = ld512::<MASKED>(kp.add(t * c + c0), m);
        }
        let bv = ld512::<MASKED>(b.as_ptr().add(c0), m);
        let (lo, hi) = (_mm512_set1_ps(g.lo), _mm512_set1_ps(g.hi));
        let (iy0, ky0, ky1) = rows(g, oy);
        let full_rows = ky0 == 0 && ky1 == 3;
        for ox in 0..g.ow {
            let (ix0, kx0, kx1) = cols(g, ox);
            let base = xp.wrapping_offset(iy0 * row + ix0 * c as isize + c0 as isize);
            let mut acc = bv;
            if full_rows && kx0 == 0 && kx1 == 3 {
                let (r0, r1, r2) = (base, base.offset(row), base.offset(2 * row));
                let cs = c as isize;
                acc = _mm512_fmadd_ps(ld512::<MASKED>(r0, m), wv[0], acc);
                acc = _mm512_fmadd_ps(ld512::<MASKED>(r0.offset(cs), m), wv[1], acc);
                acc = _mm512_fmadd_ps(ld512::<MASKED>(r0.offset(2 * cs), m), wv[2], acc);
                acc = _mm512_fmadd_ps(ld512::<MASKED>(r1, m), wv[3], acc);
                acc = _mm512_fmadd_ps(ld512::<MASKED>(r1.offset(cs), m), wv[4], acc);
                acc = _mm512_fmadd_ps(ld512::<MASKED>(r1.offset(2 * cs), m), wv[5], acc);
                acc = _mm512_fmadd_ps(ld512::<MASKED>(r2, m), wv[6], acc);
                acc = _mm512_fmadd_ps(ld512::<MASKED>(r2.offset(cs), m), wv[7], acc);
                acc = _mm512_fmadd_ps(ld512::<MASKED>(r2.offset(2 * cs), m), wv[8], acc);
            } else {
                for ky in ky0..ky1 {
                    for kx in kx0..kx1 {
                        let p = base.wrapping_offset(ky as isize * row + (kx * c) as isize);
                        acc = _mm512_fmadd_ps(ld512::<MASKED>(p, m), wv[ky * 3 + kx], acc);
                    }
                }
            }
            acc = _mm512_min_ps(_mm512_max_ps(acc, lo), hi);
            let out = yp.add((oy * g.ow + ox) * c + c0);
            if MASKED {
                _mm512_mask_storeu_ps(out, m, acc);
            } else {
                _mm512_storeu_ps(out, acc);
            }
        }
    }
}

// ---------------------------------------------------------------- AVX2+FMA

/// # Safety
/// AVX2 and FMA must be available; the slices must have the sizes `g`
/// implies (the safe wrapper in `super` checks).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dw3x3_avx2(g: &Geometry, x: &[f32], k: &[f32], b: &[f32], y: &mut [f32]) {
    let full = g.c / 8 * 8;
    for oy in 0..g.oh {
        let mut c0 = 0;
        while c0 < full {
            unsafe { row256(g, x, k, b, y, oy, c0) };
            c0 += 8;
        }
    }
    if full < g.c {
        scalar::dw3x3_range(g, x, k, b, y, full, g.c);
    }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn row256(
    g: &Geometry,
    x: &[f32],
    k: &[f32],
    b: &[f32],
    y: &mut [f32],
    oy: usize,
    c0: usize,
) {
    unsafe {
        let c = g.c;
        let (xp, kp, yp) = (x.as_ptr(), k.as_ptr(), y.as_mut_ptr());
        let row = (g.w * c) as isize;
        let mut wv = [_mm256_setzero_ps(); 9];
        for (t, w) in wv.iter_mut().enumerate() {
            *w = _mm256_loadu_ps(kp.add(t * c + c0));
        }
        let bv = _mm256_loadu_ps(b.as_ptr().add(c0));
        let (lo, hi) = (_mm256_set1_ps(g.lo), _mm256_set1_ps(g.hi));
        let (iy0, ky0, ky1) = rows(g, oy);
        let full_rows = ky0 == 0 && ky1 == 3;
        for ox in 0..g.ow {
            let (ix0, kx0, kx1) = cols(g, ox);
            let base = xp.wrapping_offset(iy0 * row + ix0 * c as isize + c0 as isize);
            let mut acc = bv;
            if full_rows && kx0 == 0 && kx1 == 3 {
                let (r0, r1, r2) = (base, base.offset(row), base.offset(2 * row));
                let cs = c as isize;
                acc = _mm256_fmadd_ps(_mm256_loadu_ps(r0), wv[0], acc);
                acc = _mm256_fmadd_ps(_mm256_loadu_ps(r0.offset(cs)), wv[1], acc);
                acc = _mm256_fmadd_ps(_mm256_loadu_ps(r0.offset(2 * cs)), wv[2], acc);
                acc = _mm256_fmadd_ps(_mm256_loadu_ps(r1), wv[3], acc);
                acc = _mm256_fmadd_ps(_mm256_loadu_ps(r1.offset(cs)), wv[4], acc);
                acc = _mm256_fmadd_ps(_mm256_loadu_ps(r1.offset(2 * cs)), wv[5], acc);
                acc = _mm256_fmadd_ps(_mm256_loadu_ps(r2), wv[6], acc);
                acc = _mm256_fmadd_ps(_mm256_loadu_ps(r2.offset(cs)), wv[7], acc);
                acc = _mm256_fmadd_ps(_mm256_loadu_ps(r2.offset(2 * cs)), wv[8], acc);
            } else {
                for ky in ky0..ky1 {
                    for kx in kx0..kx1 {
                        let p = base.wrapping_offset(ky as isize * row + (kx * c) as isize);
                        acc = _mm256_fmadd_ps(_mm256_loadu_ps(p), wv[ky * 3 + kx], acc);
                    }
                }
            }
            acc = _mm256_min_ps(_mm256_max_ps(acc, lo), hi);
            _mm256_storeu_ps(yp.add((oy * g.ow + ox) * c + c0), acc);
        }
    }
}
