//! Portable kernels and the blocked GEMM driver shared by every SIMD path.
//!
//! The GEMM follows the GotoBLAS / BLIS scheme: loop over `NC`-wide column
//! blocks of `B` and `KC`-deep slices of `k`, pack the `KC × NC` block of `B`
//! into `NR`-wide micro-panels, loop over `MC`-tall row blocks of `A`, pack
//! them into `MR`-tall micro-panels, and call an `MR × NR` register-blocked
//! micro-kernel for every tile. Packing reads any strides, so transposed
//! operands cost nothing extra. Partial edge tiles are computed into a small
//! stack tile (packed panels are zero-padded) and then merged into `C`.
//!
//! The packing buffer is thread-local and only grows: after the first call
//! with the largest shape there is no allocation.
//!
//! The portable micro-kernel (4×8) and elementwise loops are plain Rust over
//! fixed-size chunks that LLVM vectorises for the target's baseline SIMD
//! (SSE2 on x86_64, NEON on armv7 with `+neon`, …).

use std::cell::RefCell;

use super::{AdamStep, Epilogue, Mat, MatMut, SgdStep, check_gemm_dims, scalar};

/// A register-blocked GEMM micro-kernel.
///
/// # Safety
/// Implementors must only be used on CPUs supporting the instructions they
/// use (the kernel table guarantees this for the in-crate implementations).
pub(crate) unsafe trait MicroKernel {
    /// Rows of a tile.
    const MR: usize;
    /// Columns of a tile.
    const NR: usize;
    /// Depth of a packed slice.
    const KC: usize;
    /// Rows of a packed `A` block (multiple of `MR`).
    const MC: usize;
    /// Columns of a packed `B` block (multiple of `NR`).
    const NC: usize;

    /// `C[0..MR, 0..NR] = alpha·Ã·B̃ + beta·C` (`C` not read if `beta == 0`)
    /// where `Ã` is a packed `MR × k` micro-panel (`MR` values per `p`) and `B̃`
    /// a packed `k × NR` micro-panel (`NR` values per `p`).
    ///
    /// # Safety
    /// `a` must be valid for `k·MR` reads, `b` for `k·NR` reads, `c` for
    /// `MR` rows of `NR` values at stride `ldc`; the CPU must support the
    /// kernel's instructions.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile(
        k: usize,
        alpha: f32,
        a: *const f32,
        b: *const f32,
        beta: f32,
        c: *mut f32,
        ldc: usize,
    );

    /// Whether [`MicroKernel::tile_direct`] is implemented.
    const DIRECT_A: bool = false;

    /// `C[0..MR, 0..NR] = A·B̃ (+ C when `accumulate`)` with `A` read in
    /// place: row `i` is the `k` values at `a + i·lda` (a channel-last
    /// activation tile, no packing), `B̃` a packed micro-panel as for
    /// [`MicroKernel::tile`]; then, with `epi`, the epilogue in registers
    /// before the one store. Only called when [`MicroKernel::DIRECT_A`].
    ///
    /// # Safety
    /// As for [`MicroKernel::tile`], with `a` valid for `MR` rows of `k`
    /// values at stride `lda`, and `epi`'s pointers valid for `NR` bias
    /// values and `MR` residual rows of `NR` values.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_direct(
        _k: usize,
        _a: *const f32,
        _lda: usize,
        _b: *const f32,
        _accumulate: bool,
        _c: *mut f32,
        _ldc: usize,
        _epi: Option<&TileEpilogue>,
    ) {
        unreachable!("tile_direct without DIRECT_A")
    }

    /// Skinny path for `n <= SKINNY_N` (see [`skinny`]); implementations
    /// override it only to compile the same code with their target features.
    ///
    /// # Safety
    /// As for [`MicroKernel::tile`]: the CPU must support the features.
    #[inline(always)]
    unsafe fn skinny(
        alpha: f32,
        a: &Mat<'_>,
        b: &Mat<'_>,
        beta: f32,
        c: &mut MatMut<'_>,
        buf: &mut [f32],
    ) {
        skinny(alpha, a, b, beta, c, buf)
    }
}

/// An [`Epilogue`] narrowed to one full tile, for the micro-kernel to apply
/// in registers: `c = clamp(acc + bias[j], lo, hi) + res[i·ldr + j]`.
// Built only by drivers of kernels that read `A` in place (x86_64,
// aarch64); on armv7 and ARMv6 nothing reads the fields.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
pub(crate) struct TileEpilogue {
    /// The tile's `NR` bias values.
    pub bias: *const f32,
    pub lo: f32,
    pub hi: f32,
    /// The tile's residual rows (null: none), `ldr` apart.
    pub res: *const f32,
    pub ldr: usize,
}

/// Largest `MR·NR` of any micro-kernel (size of the edge scratch tile).
const MAX_TILE: usize = 384;
/// Alignment of packed panels, in floats (64 bytes).
const ALIGN: usize = 16;

thread_local! {
    static PACK_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Blocked GEMM driver, generic over the micro-kernel.
pub(crate) fn gemm_blocked<K: MicroKernel>(
    alpha: f32,
    a: Mat<'_>,
    b: Mat<'_>,
    beta: f32,
    mut c: MatMut<'_>,
) {
    check_gemm_dims(&a, &b, &c);
    debug_assert!(K::MR * K::NR <= MAX_TILE && K::MC % K::MR == 0 && K::NC % K::NR == 0);
    let (m, n, k) = (a.rows(), b.cols(), a.cols());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || alpha == 0.0 {
        for i in 0..m {
            let row = c.row_mut(i);
            if beta == 0.0 {
                row.fill(0.0);
            } else if beta != 1.0 {
                row.iter_mut().for_each(|v| *v *= beta);
            }
        }
        return;
    }
    if n <= SKINNY_N && (a.col_stride() == 1 || a.row_stride() == 1) {
        let need = skinny_buf_len(m, n, k) + ALIGN;
        let mut run = |buf: &mut Vec<f32>| {
            if buf.len() < need {
                buf.resize(need, 0.0);
            }
            // SAFETY: see the trait; dimensions were checked above.
            unsafe { K::skinny(alpha, &a, &b, beta, &mut c, &mut buf[..need]) };
        };
        PACK_BUF.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => run(&mut buf),
            Err(_) => run(&mut Vec::new()),
        });
        return;
    }
    let kc_max = K::KC.min(k);
    let mc_max = K::MC.min(m.div_ceil(K::MR) * K::MR);
    let nc_max = K::NC.min(n.div_ceil(K::NR) * K::NR);
    let a_len = mc_max * kc_max;
    let b_len = nc_max * kc_max;
    let need = a_len.div_ceil(ALIGN) * ALIGN + b_len + ALIGN;

    let mut run = |buf: &mut Vec<f32>| {
        if buf.len() < need {
            buf.resize(need, 0.0);
        }
        let off = buf.as_ptr().align_offset(ALIGN * 4).min(ALIGN);
        let (apack, rest) = buf[off..].split_at_mut(a_len.div_ceil(ALIGN) * ALIGN);
        let bpack = &mut rest[..b_len];
        // SAFETY: dimensions were checked against the slices by `Mat`,
        // `MatMut` and `check_gemm_dims`; packed buffers are sized above.
        unsafe { gemm_loops::<K>(alpha, &a, &b, beta, &mut c, apack, bpack) };
    };
    PACK_BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => run(&mut buf),
        Err(_) => run(&mut Vec::new()),
    });
}

#[allow(clippy::too_many_arguments)]
unsafe fn gemm_loops<K: MicroKernel>(
    alpha: f32,
    a: &Mat<'_>,
    b: &Mat<'_>,
    beta: f32,
    c: &mut MatMut<'_>,
    apack: &mut [f32],
    bpack: &mut [f32],
) {
    let (m, n, k) = (a.rows(), b.cols(), a.cols());
    let ldc = c.ld();
    let cptr = c.as_mut_ptr();
    let mut tmp = [0.0f32; MAX_TILE];
    // SAFETY: all offsets below stay inside `c` (checked by the caller),
    // `apack` and `bpack` (sized for one block by the caller).
    unsafe {
        for jc in (0..n).step_by(K::NC) {
            let nc = K::NC.min(n - jc);
            for pc in (0..k).step_by(K::KC) {
                let kc = K::KC.min(k - pc);
                pack_b::<K>(b, pc, kc, jc, nc, bpack);
                let beta_eff = if pc == 0 { beta } else { 1.0 };
                for ic in (0..m).step_by(K::MC) {
                    let mc = K::MC.min(m - ic);
                    pack_a::<K>(a, ic, mc, pc, kc, apack);
                    for jr in (0..nc).step_by(K::NR) {
                        let nr = K::NR.min(nc - jr);
                        let bp = bpack.as_ptr().add(jr * kc);
                        for ir in (0..mc).step_by(K::MR) {
                            let mr = K::MR.min(mc - ir);
                            let ap = apack.as_ptr().add(ir * kc);
                            let ctile = cptr.add((ic + ir) * ldc + jc + jr);
                            if mr == K::MR && nr == K::NR {
                                K::tile(kc, alpha, ap, bp, beta_eff, ctile, ldc);
                            } else {
                                K::tile(kc, alpha, ap, bp, 0.0, tmp.as_mut_ptr(), K::NR);
                                for i in 0..mr {
                                    for j in 0..nr {
                                        let dst = &mut *ctile.add(i * ldc + j);
                                        let v = tmp[i * K::NR + j];
                                        *dst = if beta_eff == 0.0 {
                                            v
                                        } else {
                                            v + beta_eff * *dst
                                        };
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Packs all of `B` (`k × n`) for [`gemm_packed_with`]: for each `KC`-deep
/// slice `pc`, its `NR`-column micro-panels, the slice starting at
/// `pc · n_pad` and panel `jr` of it at `jr · kc` (`n_pad` = `n` rounded up
/// to `NR`; padding columns are zero).
pub(crate) fn pack_b_with<K: MicroKernel>(b: &Mat<'_>) -> Vec<f32> {
    let (k, n) = (b.rows(), b.cols());
    let n_pad = n.div_ceil(K::NR) * K::NR;
    let mut out = vec![0.0f32; k * n_pad];
    if n == 0 {
        return out;
    }
    for pc in (0..k).step_by(K::KC) {
        let kc = K::KC.min(k - pc);
        pack_b::<K>(b, pc, kc, 0, n, &mut out[pc * n_pad..(pc + kc) * n_pad]);
    }
    out
}

/// `C = epilogue(A·B)` with `B` packed by [`pack_b_with`] for the same `K`.
/// Loops: `MC` rows of `A` (packed, or read in place), `KC` slices, `NR` panels of `B`, `MR`
/// rows; the epilogue runs on each tile right after its last slice, while
/// it is still in L1.
///
/// `#[inline(always)]` so that a caller compiled with target features
/// (AVX2, AVX-512) compiles the packing and the epilogue with them too.
#[inline(always)]
pub(crate) fn gemm_packed_with<K: MicroKernel>(
    a: &Mat<'_>,
    bp: &[f32],
    epi: &Epilogue<'_>,
    c: &mut MatMut<'_>,
) {
    let (m, n, k) = (c.rows(), c.cols(), a.cols());
    if m == 0 || n == 0 {
        return;
    }
    let n_pad = n.div_ceil(K::NR) * K::NR;
    assert!(bp.len() >= k * n_pad, "gemm_packed: packed B too short");
    let kc_max = K::KC.min(k.max(1));
    let mc_max = K::MC.min(m.div_ceil(K::MR) * K::MR);
    let need = (mc_max * kc_max).max(K::MR * kc_max) + ALIGN;
    let mut run = |buf: &mut Vec<f32>| {
        if buf.len() < need {
            buf.resize(need, 0.0);
        }
        let off = buf.as_ptr().align_offset(ALIGN * 4).min(ALIGN);
        let apack = &mut buf[off..off + (mc_max * kc_max).max(K::MR * kc_max)];
        // SAFETY: dimensions were checked by the caller (`Kernels::gemm_packed`)
        // and above; the packing buffer is sized for one block.
        unsafe {
            if K::DIRECT_A && a.col_stride() == 1 {
                gemm_packed_loops::<K, true>(a, bp, n_pad, epi, c, apack)
            } else {
                gemm_packed_loops::<K, false>(a, bp, n_pad, epi, c, apack)
            }
        };
    };
    PACK_BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => run(&mut buf),
        Err(_) => run(&mut Vec::new()),
    });
}

/// The loops of [`gemm_packed_with`]. With `DIRECT`, `A` (row-major) is
/// read in place by [`MicroKernel::tile_direct`], which also applies the
/// epilogue in registers to full tiles, and only a block's last, partial
/// row tile is copied (zero-padded) into `buf`; otherwise each `MC × KC`
/// block of `A` is packed into `buf` for [`MicroKernel::tile`]. Edge tiles
/// go through a scratch tile and get the epilogue from [`epilogue_row`].
#[inline(always)]
unsafe fn gemm_packed_loops<K: MicroKernel, const DIRECT: bool>(
    a: &Mat<'_>,
    bp: &[f32],
    n_pad: usize,
    epi: &Epilogue<'_>,
    c: &mut MatMut<'_>,
    buf: &mut [f32],
) {
    let (m, n, k) = (c.rows(), c.cols(), a.cols());
    let (ldc, lda) = (c.ld(), a.row_stride());
    let cptr = c.as_mut_ptr();
    let aptr = a.data().as_ptr();
    let mut tmp = [0.0f32; MAX_TILE];
    // SAFETY: all offsets stay inside `c` (m × n at ldc), `a` (m × k at
    // lda, checked by `Mat`), `bp` (k × n_pad) and `buf` (one MC × KC
    // block, or MR × KC).
    unsafe {
        for ic in (0..m).step_by(K::MC) {
            let mc = K::MC.min(m - ic);
            if k == 0 {
                for i in ic..ic + mc {
                    epilogue_row(cptr.add(i * ldc), 0, n, i, epi, true);
                }
                continue;
            }
            let full_rows = mc / K::MR * K::MR;
            for pc in (0..k).step_by(K::KC) {
                let kc = K::KC.min(k - pc);
                let last = pc + kc == k;
                let accumulate = pc > 0;
                if !DIRECT {
                    pack_a::<K>(a, ic, mc, pc, kc, buf);
                } else if full_rows < mc {
                    for i in 0..K::MR {
                        let dst = &mut buf[i * kc..(i + 1) * kc];
                        if full_rows + i < mc {
                            let src = aptr.add((ic + full_rows + i) * lda + pc);
                            dst.copy_from_slice(std::slice::from_raw_parts(src, kc));
                        } else {
                            dst.fill(0.0);
                        }
                    }
                }
                let bslice = bp.as_ptr().add(pc * n_pad);
                for jr in (0..n).step_by(K::NR) {
                    let nr = K::NR.min(n - jr);
                    let bpanel = bslice.add(jr * kc);
                    for ir in (0..mc).step_by(K::MR) {
                        let mr = K::MR.min(mc - ir);
                        let ctile = cptr.add((ic + ir) * ldc + jr);
                        // this tile's rows of A, and their stride
                        let (ap, ld) = match (DIRECT, mr == K::MR) {
                            (false, _) => (buf.as_ptr().add(ir * kc), 0),
                            (true, true) => (aptr.add((ic + ir) * lda + pc), lda),
                            (true, false) => (buf.as_ptr(), kc),
                        };
                        let tile = |acc: bool,
                                    dst: *mut f32,
                                    ldd: usize,
                                    te: Option<&TileEpilogue>| {
                            if DIRECT {
                                K::tile_direct(kc, ap, ld, bpanel, acc, dst, ldd, te)
                            } else {
                                K::tile(kc, 1.0, ap, bpanel, if acc { 1.0 } else { 0.0 }, dst, ldd)
                            }
                        };
                        if mr == K::MR && nr == K::NR {
                            // a full tile: in place, with the epilogue in
                            // registers where the kernel reads A directly
                            let te = (DIRECT && last).then(|| TileEpilogue {
                                bias: epi.bias.as_ptr().add(jr),
                                lo: epi.lo,
                                hi: epi.hi,
                                res: epi.residual.as_ref().map_or(std::ptr::null(), |r| {
                                    r.data().as_ptr().add((ic + ir) * r.row_stride() + jr)
                                }),
                                ldr: epi.residual.as_ref().map_or(0, |r| r.row_stride()),
                            });
                            tile(accumulate, ctile, ldc, te.as_ref());
                            if te.is_some() {
                                continue;
                            }
                        } else {
                            tile(false, tmp.as_mut_ptr(), K::NR, None);
                            for i in 0..mr {
                                for j in 0..nr {
                                    let dst = &mut *ctile.add(i * ldc + j);
                                    let v = tmp[i * K::NR + j];
                                    *dst = if accumulate { v + *dst } else { v };
                                }
                            }
                        }
                        if last {
                            for i in 0..mr {
                                epilogue_row(ctile.add(i * ldc), jr, nr, ic + ir + i, epi, false);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The epilogue on columns `j0..j0+len` of output row `i` at `row`
/// (`row` points at column `j0`); `zero` when no product was accumulated
/// (`k == 0`).
#[inline(always)]
unsafe fn epilogue_row(
    row: *mut f32,
    j0: usize,
    len: usize,
    i: usize,
    epi: &Epilogue<'_>,
    zero: bool,
) {
    // SAFETY: the caller passes a row segment inside `C`.
    let out = unsafe { std::slice::from_raw_parts_mut(row, len) };
    let bias = &epi.bias[j0..j0 + len];
    let (lo, hi) = (epi.lo, epi.hi);
    if zero {
        out.fill(0.0);
    }
    match &epi.residual {
        None => {
            for (o, &b) in out.iter_mut().zip(bias) {
                *o = Epilogue::apply(b, lo, hi, *o, 0.0);
            }
        }
        Some(r) => {
            let res = &r.data()[i * r.row_stride() + j0..][..len];
            for ((o, &b), &rv) in out.iter_mut().zip(bias).zip(res) {
                *o = Epilogue::apply(b, lo, hi, *o, rv);
            }
        }
    }
}

/// Pack `A[ic..ic+mc, pc..pc+kc]` into `MR`-row micro-panels
/// (`dst[panel][p][i]`), zero-padding the last panel.
fn pack_a<K: MicroKernel>(
    a: &Mat<'_>,
    ic: usize,
    mc: usize,
    pc: usize,
    kc: usize,
    dst: &mut [f32],
) {
    let (rs, cs, src) = (a.row_stride(), a.col_stride(), a.data());
    for (panel, ir) in (0..mc).step_by(K::MR).enumerate() {
        let mr = K::MR.min(mc - ir);
        let out = &mut dst[panel * K::MR * kc..(panel + 1) * K::MR * kc];
        if cs == 1 {
            // Row-major A: read rows contiguously.
            for i in 0..mr {
                let row = &src[(ic + ir + i) * rs + pc..][..kc];
                for (p, &v) in row.iter().enumerate() {
                    out[p * K::MR + i] = v;
                }
            }
        } else {
            for p in 0..kc {
                let base = (pc + p) * cs + (ic + ir) * rs;
                for i in 0..mr {
                    out[p * K::MR + i] = src[base + i * rs];
                }
            }
        }
        if mr < K::MR {
            for p in 0..kc {
                out[p * K::MR + mr..(p + 1) * K::MR].fill(0.0);
            }
        }
    }
}

/// Pack `B[pc..pc+kc, jc..jc+nc]` into `NR`-column micro-panels
/// (`dst[panel][p][j]`), zero-padding the last panel.
fn pack_b<K: MicroKernel>(
    b: &Mat<'_>,
    pc: usize,
    kc: usize,
    jc: usize,
    nc: usize,
    dst: &mut [f32],
) {
    let (rs, cs, src) = (b.row_stride(), b.col_stride(), b.data());
    for (panel, jr) in (0..nc).step_by(K::NR).enumerate() {
        let nr = K::NR.min(nc - jr);
        let out = &mut dst[panel * K::NR * kc..(panel + 1) * K::NR * kc];
        if cs == 1 {
            for p in 0..kc {
                let row = &src[(pc + p) * rs + jc + jr..][..nr];
                out[p * K::NR..p * K::NR + nr].copy_from_slice(row);
                out[p * K::NR + nr..(p + 1) * K::NR].fill(0.0);
            }
        } else {
            // Transposed B (e.g. Wᵀ): column j of B is contiguous in p.
            if nr < K::NR {
                out.fill(0.0);
            }
            for j in 0..nr {
                let base = (jc + jr + j) * cs + pc * rs;
                for p in 0..kc {
                    out[p * K::NR + j] = src[base + p * rs];
                }
            }
        }
    }
}

/// Widest `n` handled by the skinny path (output layers with 2–4 classes,
/// whose `NR`-wide tiles would be mostly padding).
pub(crate) const SKINNY_N: usize = 4;

fn skinny_buf_len(m: usize, n: usize, k: usize) -> usize {
    (n * k).max(n * m)
}

/// GEMM for `n <= SKINNY_N` without packing `A`:
///
/// * `A` row-major (`cs == 1`): each `C[i, j]` is a dot product of row `i`
///   of `A` with column `j` of `B` (packed once into `buf` as `Bᵀ`), 32
///   lanes at a time;
/// * `A` column-major (`rs == 1`, e.g. `Xᵀ` for `dW`): `Cᵀ[j, :]` (in `buf`)
///   accumulates `B[p, j]·A[:, p]` over `p`, four `p` at a time.
///
/// Written as plain loops over fixed-width chunks so that it vectorises for
/// whatever target features the caller was compiled with.
#[inline(always)]
pub(crate) fn skinny(
    alpha: f32,
    a: &Mat<'_>,
    b: &Mat<'_>,
    beta: f32,
    c: &mut MatMut<'_>,
    buf: &mut [f32],
) {
    match b.cols() {
        1 => skinny_n::<1>(alpha, a, b, beta, c, buf),
        2 => skinny_n::<2>(alpha, a, b, beta, c, buf),
        3 => skinny_n::<3>(alpha, a, b, beta, c, buf),
        4 => skinny_n::<4>(alpha, a, b, beta, c, buf),
        n => unreachable!("skinny gemm called with n = {n}"),
    }
}

/// Dot product with `L` independent partial sums, combined pairwise in a
/// fixed order, then the tail.
#[inline(always)]
fn dot<const L: usize>(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0.0f32; L];
    let (xc, yc) = (x.chunks_exact(L), y.chunks_exact(L));
    let (xt, yt) = (xc.remainder(), yc.remainder());
    for (xa, ya) in xc.zip(yc) {
        for l in 0..L {
            acc[l] += xa[l] * ya[l];
        }
    }
    let mut w = L;
    while w > 1 {
        w /= 2;
        for l in 0..w {
            acc[l] += acc[l + w];
        }
    }
    let mut s = acc[0];
    for (a, b) in xt.iter().zip(yt) {
        s += a * b;
    }
    s
}

#[inline(always)]
fn store(dst: &mut f32, v: f32, alpha: f32, beta: f32) {
    *dst = if beta == 0.0 {
        alpha * v
    } else {
        alpha * v + beta * *dst
    };
}

#[inline(always)]
fn skinny_n<const N: usize>(
    alpha: f32,
    a: &Mat<'_>,
    b: &Mat<'_>,
    beta: f32,
    c: &mut MatMut<'_>,
    buf: &mut [f32],
) {
    const L: usize = 32;
    let (m, k) = (a.rows(), a.cols());
    let (ars, acs, ad) = (a.row_stride(), a.col_stride(), a.data());
    if acs == 1 {
        // Bᵀ packed: bt[j][p].
        let bt = &mut buf[..N * k];
        for j in 0..N {
            for p in 0..k {
                bt[j * k + p] = b.get(p, j);
            }
        }
        let bt = &buf[..N * k];
        for i in 0..m {
            let row = &ad[i * ars..i * ars + k];
            let out = c.row_mut(i);
            for j in 0..N {
                store(
                    &mut out[j],
                    dot::<L>(row, &bt[j * k..(j + 1) * k]),
                    alpha,
                    beta,
                );
            }
        }
    } else {
        debug_assert_eq!(ars, 1);
        // Column p of A is ad[p*acs .. p*acs + m].
        let ct = &mut buf[..N * m];
        ct.fill(0.0);
        let k4 = k / 4 * 4;
        for p in (0..k4).step_by(4) {
            let c0 = &ad[p * acs..p * acs + m];
            let c1 = &ad[(p + 1) * acs..(p + 1) * acs + m];
            let c2 = &ad[(p + 2) * acs..(p + 2) * acs + m];
            let c3 = &ad[(p + 3) * acs..(p + 3) * acs + m];
            for j in 0..N {
                let (b0, b1, b2, b3) = (
                    b.get(p, j),
                    b.get(p + 1, j),
                    b.get(p + 2, j),
                    b.get(p + 3, j),
                );
                let out = &mut ct[j * m..(j + 1) * m];
                for i in 0..m {
                    out[i] += b0 * c0[i] + b1 * c1[i] + b2 * c2[i] + b3 * c3[i];
                }
            }
        }
        for p in k4..k {
            let c0 = &ad[p * acs..p * acs + m];
            for j in 0..N {
                let b0 = b.get(p, j);
                let out = &mut ct[j * m..(j + 1) * m];
                for i in 0..m {
                    out[i] += b0 * c0[i];
                }
            }
        }
        for i in 0..m {
            let out = c.row_mut(i);
            for j in 0..N {
                store(&mut out[j], ct[j * m + i], alpha, beta);
            }
        }
    }
}

/// Plain-Rust 4×8 micro-kernel, auto-vectorised.
struct PortableKernel;

const PMR: usize = 4;
const PNR: usize = 8;

// SAFETY: uses no instruction beyond the target's baseline.
unsafe impl MicroKernel for PortableKernel {
    const MR: usize = PMR;
    const NR: usize = PNR;
    const KC: usize = 256;
    const MC: usize = 64;
    const NC: usize = 1024;

    #[inline]
    unsafe fn tile(
        k: usize,
        alpha: f32,
        a: *const f32,
        b: *const f32,
        beta: f32,
        c: *mut f32,
        ldc: usize,
    ) {
        let a = unsafe { std::slice::from_raw_parts(a, k * PMR) };
        let b = unsafe { std::slice::from_raw_parts(b, k * PNR) };
        let mut acc = [[0.0f32; PNR]; PMR];
        for (ap, bp) in a.chunks_exact(PMR).zip(b.chunks_exact(PNR)) {
            let ap: &[f32; PMR] = ap.try_into().unwrap();
            let bp: &[f32; PNR] = bp.try_into().unwrap();
            for i in 0..PMR {
                for j in 0..PNR {
                    acc[i][j] += ap[i] * bp[j];
                }
            }
        }
        for (i, acc_row) in acc.iter().enumerate() {
            let row = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), PNR) };
            if beta == 0.0 {
                for j in 0..PNR {
                    row[j] = alpha * acc_row[j];
                }
            } else {
                for j in 0..PNR {
                    row[j] = alpha * acc_row[j] + beta * row[j];
                }
            }
        }
    }
}

/// Blocked GEMM with the portable micro-kernel.
pub fn gemm(alpha: f32, a: Mat<'_>, b: Mat<'_>, beta: f32, c: MatMut<'_>) {
    gemm_blocked::<PortableKernel>(alpha, a, b, beta, c)
}

/// Packs `B` for the portable micro-kernel.
pub fn pack_b_full(b: &Mat<'_>) -> Vec<f32> {
    pack_b_with::<PortableKernel>(b)
}

/// Pre-packed GEMM with fused epilogue, portable micro-kernel.
pub fn gemm_packed(a: Mat<'_>, b: &[f32], epi: &Epilogue<'_>, mut c: MatMut<'_>) {
    gemm_packed_with::<PortableKernel>(&a, b, epi, &mut c)
}

/// `c[i, j] += bias[j]` (the reference loop vectorises as is).
pub fn add_row(c: &mut [f32], bias: &[f32]) {
    scalar::add_row(c, bias)
}

/// Column sums (row-by-row vertical adds vectorise as is).
pub fn col_sums(x: &[f32], out: &mut [f32]) {
    scalar::col_sums(x, out)
}

/// ReLU via `max`, which maps to a vector max instruction.
pub fn relu(x: &mut [f32]) {
    for v in x {
        *v = v.max(0.0);
    }
}

/// ReLU backward as a branch-free select.
pub fn relu_backward(dx: &mut [f32], y: &[f32]) {
    assert_eq!(dx.len(), y.len());
    for (d, v) in dx.iter_mut().zip(y) {
        *d = if *v > 0.0 { *d } else { 0.0 };
    }
}

/// `x *= m`.
pub fn mul(x: &mut [f32], m: &[f32]) {
    scalar::mul(x, m)
}

/// `Σ x²` with 16 independent partial sums (vectorisable reduction).
pub fn sum_sq(x: &[f32]) -> f32 {
    const L: usize = 16;
    let mut acc = [0.0f32; L];
    let chunks = x.chunks_exact(L);
    let tail = chunks.remainder();
    for ch in chunks {
        for j in 0..L {
            acc[j] += ch[j] * ch[j];
        }
    }
    let mut s = 0.0f32;
    for v in tail {
        s += v * v;
    }
    // Fixed-order pairwise combination.
    let mut w = L;
    while w > 1 {
        w /= 2;
        for j in 0..w {
            acc[j] += acc[j + w];
        }
    }
    acc[0] + s
}

/// Adam step (elementwise; the reference loop vectorises, sqrt/div included).
pub fn adam(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &AdamStep) {
    scalar::adam(p, g, m, v, s)
}

/// SGD step (elementwise).
pub fn sgd(p: &mut [f32], g: &[f32], vel: &mut [f32], s: &SgdStep) {
    scalar::sgd(p, g, vel, s)
}
