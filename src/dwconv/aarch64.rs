//! aarch64 NEON kernel (4 channels a vector, scalar tail). Same walk as the
//! x86 kernels: output row, channel block (taps and bias in registers),
//! output column; interior pixels unrolled, border pixels loop their valid
//! taps.

use std::arch::aarch64::*;

use super::{Geometry, scalar};

/// # Safety
/// NEON must be available (it always is on aarch64 Linux/macOS); the slices
/// must have the sizes `g` implies (the safe wrapper in `super` checks).
#[target_feature(enable = "neon")]
pub unsafe fn dw3x3_neon(g: &Geometry, x: &[f32], k: &[f32], b: &[f32], y: &mut [f32]) {
    let full = g.c / 4 * 4;
    for oy in 0..g.oh {
        let mut c0 = 0;
        while c0 < full {
            unsafe { row128(g, x, k, b, y, oy, c0) };
            c0 += 4;
        }
    }
    if full < g.c {
        scalar::dw3x3_range(g, x, k, b, y, full, g.c);
    }
}

#[inline]
#[target_feature(enable = "neon")]
unsafe fn row128(
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
        let mut wv = [vdupq_n_f32(0.0); 9];
        for (t, w) in wv.iter_mut().enumerate() {
            *w = vld1q_f32(kp.add(t * c + c0));
        }
        let bv = vld1q_f32(b.as_ptr().add(c0));
        let (lo, hi) = (vdupq_n_f32(g.lo), vdupq_n_f32(g.hi));
        let iy0 = oy as isize * g.stride as isize - g.pad_top as isize;
        let ky0 = (-iy0).clamp(0, 3) as usize;
        let ky1 = (g.h as isize - iy0).clamp(0, 3) as usize;
        let full_rows = ky0 == 0 && ky1 == 3;
        for ox in 0..g.ow {
            let ix0 = ox as isize * g.stride as isize - g.pad_left as isize;
            let kx0 = (-ix0).clamp(0, 3) as usize;
            let kx1 = (g.w as isize - ix0).clamp(0, 3) as usize;
            let base = xp.wrapping_offset(iy0 * row + ix0 * c as isize + c0 as isize);
            let mut acc = bv;
            if full_rows && kx0 == 0 && kx1 == 3 {
                let (r0, r1, r2) = (base, base.offset(row), base.offset(2 * row));
                let cs = c as isize;
                acc = vfmaq_f32(acc, vld1q_f32(r0), wv[0]);
                acc = vfmaq_f32(acc, vld1q_f32(r0.offset(cs)), wv[1]);
                acc = vfmaq_f32(acc, vld1q_f32(r0.offset(2 * cs)), wv[2]);
                acc = vfmaq_f32(acc, vld1q_f32(r1), wv[3]);
                acc = vfmaq_f32(acc, vld1q_f32(r1.offset(cs)), wv[4]);
                acc = vfmaq_f32(acc, vld1q_f32(r1.offset(2 * cs)), wv[5]);
                acc = vfmaq_f32(acc, vld1q_f32(r2), wv[6]);
                acc = vfmaq_f32(acc, vld1q_f32(r2.offset(cs)), wv[7]);
                acc = vfmaq_f32(acc, vld1q_f32(r2.offset(2 * cs)), wv[8]);
            } else {
                for ky in ky0..ky1 {
                    for kx in kx0..kx1 {
                        let p = base.wrapping_offset(ky as isize * row + (kx * c) as isize);
                        acc = vfmaq_f32(acc, vld1q_f32(p), wv[ky * 3 + kx]);
                    }
                }
            }
            acc = vminq_f32(vmaxq_f32(acc, lo), hi);
            vst1q_f32(yp.add((oy * g.ow + ox) * c + c0), acc);
        }
    }
}
