//! Hand-written f32 kernels for the dense head's forward and backward passes.
//!
//! Organisation (in the spirit of tract-linalg / matrixmultiply):
//!
//! * [`scalar`] — the reference implementation of every kernel. Plain, obvious
//!   loops; every other implementation is tested against it.
//! * [`portable`] — a cache-blocked GEMM driver (packing of A/B panels into a
//!   reusable thread-local buffer, register-blocked micro-kernel) generic over
//!   the micro-kernel, plus a plain-Rust 4×8 micro-kernel and chunked
//!   elementwise loops written so that LLVM auto-vectorises them. Used on
//!   armv7 and every architecture without a dedicated module.
//! * `x86` — AVX2+FMA micro-kernel (6×16) and elementwise kernels
//!   (x86_64 only, chosen at run time with `is_x86_feature_detected!`).
//! * `aarch64` — NEON micro-kernel (8×8) and elementwise kernels (aarch64
//!   only; NEON is architecturally guaranteed there).
//!
//! There is exactly one dispatch point: [`kernels()`] returns the
//! [`Kernels`] table chosen once (in a `OnceLock`) for this process, and
//! [`isa()`] tells which one it is. Setting the environment variable
//! `EDGETUNE_KERNELS` to `scalar`, `portable`, `avx2` or `neon` forces a
//! particular implementation (an unavailable one falls back to the best
//! available, with a note on stderr). Tests and benchmarks can build a table
//! for a specific instruction set with [`Kernels::for_isa`] /
//! [`Kernels::scalar`] / [`Kernels::best`].
//!
//! # Conventions
//!
//! * All matrices are `f32`. GEMM operands are described by [`Mat`] (any row
//!   and column strides, so transposes are free: [`Mat::t`]) and the output by
//!   [`MatMut`] (row-major with a leading dimension `ld`, unit column stride).
//! * GEMM computes `C = alpha·A·B + beta·C`; when `beta == 0` the old content
//!   of `C` is never read (so it may hold garbage, even NaN).
//! * Elementwise kernels work on plain contiguous slices; matrices are
//!   row-major `[rows × cols]` with `cols` given by the length of the row
//!   vector argument (bias, column sums).
//! * Softmax / cross-entropy is scalar on every ISA (rows are 2–10 classes
//!   wide; the head spends its time in GEMM).
//! * Nothing here allocates except the GEMM packing buffer, which is
//!   thread-local and only grows (so after the first call with the largest
//!   shape, there is no allocation).

use std::fmt;
use std::marker::PhantomData;
use std::sync::OnceLock;

pub mod portable;
pub mod scalar;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86;

/// Instruction-set families the kernels are implemented for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Reference implementation (simple loops).
    Scalar,
    /// Blocked GEMM with a plain-Rust micro-kernel, auto-vectorised loops.
    Portable,
    /// x86_64 AVX2 + FMA.
    Avx2Fma,
    /// x86_64 AVX-512F GEMM (elementwise kernels as for AVX2).
    Avx512,
    /// aarch64 Advanced SIMD (NEON).
    Neon,
}

impl Isa {
    /// Every variant, in order of increasing specialisation.
    pub const ALL: [Isa; 5] = [
        Isa::Scalar,
        Isa::Portable,
        Isa::Avx2Fma,
        Isa::Avx512,
        Isa::Neon,
    ];

    /// Short lower-case name (`scalar`, `portable`, `avx2`, `neon`), as
    /// accepted by `EDGETUNE_KERNELS`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Portable => "portable",
            Isa::Avx2Fma => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Parse a name as produced by [`Isa::name`] (case-insensitive; also
    /// accepts `avx2fma`/`avx2+fma`).
    pub fn from_name(name: &str) -> Option<Isa> {
        match name.trim().to_ascii_lowercase().as_str() {
            "scalar" => Some(Isa::Scalar),
            "portable" => Some(Isa::Portable),
            "avx2" | "avx2fma" | "avx2+fma" => Some(Isa::Avx2Fma),
            "avx512" | "avx512f" | "avx-512" => Some(Isa::Avx512),
            "neon" => Some(Isa::Neon),
            _ => None,
        }
    }

    /// Whether this ISA can run on the current CPU.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar | Isa::Portable => true,
            Isa::Avx2Fma => avx2_fma_available(),
            Isa::Avx512 => avx512_available(),
            Isa::Neon => cfg!(target_arch = "aarch64"),
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_fma_available() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_fma_available() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn avx512_available() -> bool {
    avx2_fma_available() && std::is_x86_feature_detected!("avx512f")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx512_available() -> bool {
    false
}

/// Read-only strided matrix view used as a GEMM operand.
///
/// Element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// Contiguous row-major `rows × cols` matrix (`data` may be longer).
    ///
    /// # Panics
    /// If `data` is shorter than `rows * cols`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols, 1)
    }

    /// Matrix with explicit row stride `rs` and column stride `cs`.
    ///
    /// # Panics
    /// If some element would fall outside `data`.
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        if rows > 0 && cols > 0 {
            let last = (rows - 1)
                .checked_mul(rs)
                .and_then(|r| (cols - 1).checked_mul(cs).and_then(|c| r.checked_add(c)))
                .expect("matrix extent overflows usize");
            assert!(
                last < data.len(),
                "matrix {rows}x{cols} (strides {rs},{cs}) does not fit in a slice of {}",
                data.len()
            );
        }
        Mat {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// Transposed view (free: swaps dimensions and strides).
    pub fn t(self) -> Self {
        Mat {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Columns `j0..j1` of the view.
    ///
    /// # Panics
    /// If `j0 >= j1` or `j1 > cols`.
    pub fn col_block(self, j0: usize, j1: usize) -> Self {
        assert!(
            j0 < j1 && j1 <= self.cols,
            "columns {j0}..{j1} of {}",
            self.cols
        );
        Mat {
            data: &self.data[j0 * self.cs..],
            cols: j1 - j0,
            ..self
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn row_stride(&self) -> usize {
        self.rs
    }
    pub fn col_stride(&self) -> usize {
        self.cs
    }
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// Element `(i, j)` (bounds-checked).
    #[inline]
    pub fn get(&self, i: usize, j: usize) -> f32 {
        debug_assert!(i < self.rows && j < self.cols);
        self.data[i * self.rs + j * self.cs]
    }
}

/// Mutable row-major matrix view used as GEMM output: element `(i, j)` is
/// at offset `i * ld + j` from the view's origin.
///
/// Held as a pointer (like ndarray's `ArrayViewMut`) so that a view can be
/// split into column blocks that share rows but never elements
/// ([`MatMut::split_at_col`]), which is how [`Kernels::gemm`] hands disjoint
/// parts of one output to several threads.
#[derive(Debug)]
pub struct MatMut<'a> {
    ptr: *mut f32,
    rows: usize,
    cols: usize,
    ld: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: a `MatMut` is an exclusive borrow of its elements (as `&mut [f32]`
// is); views made by splitting never share an element.
unsafe impl Send for MatMut<'_> {}

impl<'a> MatMut<'a> {
    /// Contiguous row-major `rows × cols` matrix (`data` may be longer).
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::with_ld(data, rows, cols, cols)
    }

    /// Row-major matrix with leading dimension `ld >= cols`.
    ///
    /// # Panics
    /// If `ld < cols` or the matrix does not fit in `data`.
    pub fn with_ld(data: &'a mut [f32], rows: usize, cols: usize, ld: usize) -> Self {
        assert!(ld >= cols, "leading dimension {ld} < cols {cols}");
        if rows > 0 && cols > 0 {
            let need = (rows - 1)
                .checked_mul(ld)
                .and_then(|r| r.checked_add(cols))
                .expect("matrix extent overflows usize");
            assert!(
                need <= data.len(),
                "matrix {rows}x{cols} (ld {ld}) does not fit in a slice of {}",
                data.len()
            );
        }
        MatMut {
            ptr: data.as_mut_ptr(),
            rows,
            cols,
            ld,
            _borrow: PhantomData,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn ld(&self) -> usize {
        self.ld
    }

    /// Row `i` of the view (`cols` elements).
    ///
    /// # Panics
    /// If `i >= rows`.
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        assert!(i < self.rows, "row {i} of a {}-row matrix", self.rows);
        // SAFETY: row `i` of the view lies inside the borrowed slice
        // (checked at construction) and belongs to this view alone.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(i * self.ld), self.cols) }
    }

    /// Pointer to element `(0, 0)`; element `(i, j)` is at `i * ld + j`.
    /// Writes through it must stay inside the `rows × cols` view.
    pub fn as_mut_ptr(&mut self) -> *mut f32 {
        self.ptr
    }

    /// Splits into columns `0..j` and `j..cols` (same rows, same `ld`).
    ///
    /// # Panics
    /// If `j > cols`.
    pub fn split_at_col(self, j: usize) -> (MatMut<'a>, MatMut<'a>) {
        assert!(
            j <= self.cols,
            "column {j} of a {}-column matrix",
            self.cols
        );
        let left = MatMut { cols: j, ..self };
        let right = MatMut {
            // SAFETY: `j <= cols`, so the offset stays inside (or one past)
            // the first row of the borrowed extent.
            ptr: unsafe { self.ptr.add(j) },
            cols: self.cols - j,
            ..self
        };
        (left, right)
    }
}

/// Parameters of one Adam / AdamW step (see [`Kernels::adam`]).
///
/// Per element, with `g` the raw gradient:
/// ```text
/// g  = grad_scale·g + l2·p
/// m  = beta1·m + (1-beta1)·g
/// v  = beta2·v + (1-beta2)·g²
/// p  = p·(1 - lr·decoupled_wd) - (lr/bc1) · m / (sqrt(v)/sqrt(bc2) + eps)
/// ```
/// where `bc1 = 1-beta1^t`, `bc2 = 1-beta2^t` are the bias corrections (the
/// PyTorch formulation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// `1 - beta1^t`.
    pub bc1: f32,
    /// `1 - beta2^t`.
    pub bc2: f32,
    /// L2 penalty coefficient added to the gradient (classic Adam weight decay).
    pub l2: f32,
    /// Decoupled weight decay (AdamW).
    pub decoupled_wd: f32,
    /// Multiplier applied to the raw gradient first (gradient clipping).
    pub grad_scale: f32,
}

impl AdamStep {
    /// Step `t` (1-based) with no weight decay and unit gradient scale.
    pub fn new(lr: f32, beta1: f32, beta2: f32, eps: f32, t: u64) -> Self {
        let t = t.max(1) as f64;
        AdamStep {
            lr,
            beta1,
            beta2,
            eps,
            bc1: (1.0 - (beta1 as f64).powf(t)) as f32,
            bc2: (1.0 - (beta2 as f64).powf(t)) as f32,
            l2: 0.0,
            decoupled_wd: 0.0,
            grad_scale: 1.0,
        }
    }
}

/// Parameters of one SGD-with-momentum step (see [`Kernels::sgd`]).
///
/// Per element (PyTorch semantics, no dampening):
/// ```text
/// g = grad_scale·g + l2·p
/// v = momentum·v + g
/// u = nesterov ? g + momentum·v : v
/// p = p·(1 - lr·decoupled_wd) - lr·u
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdStep {
    pub lr: f32,
    pub momentum: f32,
    pub nesterov: bool,
    pub l2: f32,
    pub decoupled_wd: f32,
    pub grad_scale: f32,
}

impl SgdStep {
    pub fn new(lr: f32, momentum: f32, nesterov: bool) -> Self {
        SgdStep {
            lr,
            momentum,
            nesterov,
            l2: 0.0,
            decoupled_wd: 0.0,
            grad_scale: 1.0,
        }
    }
}

/// Options of [`Kernels::softmax_xent`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct XentOpts {
    /// Label smoothing `ε ∈ [0, 1)`: the target is `(1-ε)·onehot + ε/n`.
    pub label_smoothing: f32,
    /// The gradient is divided by this (e.g. batch size, or the sum of the
    /// sample weights for a weighted mean).
    pub scale: f32,
}

impl Default for XentOpts {
    fn default() -> Self {
        XentOpts {
            label_smoothing: 0.0,
            scale: 1.0,
        }
    }
}

/// The right-hand operand of a GEMM packed once for one kernel table's
/// micro-kernel (the weights of a 1x1 convolution), so that repeated
/// products never re-pack it. Made by [`Kernels::pack_b`], used by
/// [`Kernels::gemm_packed`] of a table of the same instruction set.
#[derive(Clone, Debug)]
pub struct PackedB {
    isa: Isa,
    k: usize,
    n: usize,
    data: Vec<f32>,
}

impl PackedB {
    /// The packed values (layout private to the instruction set).
    pub fn data(&self) -> &[f32] {
        &self.data
    }
}

/// What [`Kernels::gemm_packed`] applies to each output element while the
/// tile is still in registers or L1, in this order:
/// `c[i, j] = clamp(A·B[i, j] + bias[j], lo, hi) + residual[i, j]`
/// (a conv's bias, a fused ReLU6, a residual connection).
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    /// One value per column of `C`.
    pub bias: &'a [f32],
    pub lo: f32,
    pub hi: f32,
    /// `m × n`, row-major with any row stride (unit column stride).
    pub residual: Option<Mat<'a>>,
}

impl Epilogue<'_> {
    /// Applies the epilogue to one value of column `j`; `r` is the residual.
    #[inline(always)]
    pub(crate) fn apply(bias: f32, lo: f32, hi: f32, acc: f32, r: f32) -> f32 {
        (acc + bias).max(lo).min(hi) + r
    }
}

pub(crate) type GemmFn = fn(f32, Mat<'_>, Mat<'_>, f32, MatMut<'_>);
pub(crate) type PackBFn = fn(&Mat<'_>) -> Vec<f32>;
pub(crate) type GemmPackedFn = fn(Mat<'_>, &[f32], &Epilogue<'_>, MatMut<'_>);
pub(crate) type AdamFn = fn(&mut [f32], &[f32], &mut [f32], &mut [f32], &AdamStep);
pub(crate) type XentFn =
    fn(&[f32], usize, &[usize], Option<&[f32]>, XentOpts, &mut [f32], &mut [f32]);

/// Smallest GEMM part worth a thread (2·m·n·k floating-point operations,
/// ~40 µs at 100 GFLOP/s; handing work to rayon costs a few µs).
const PAR_MIN_FLOP: usize = 4_000_000;
/// Column blocks of a split GEMM (and chunks of a split optimiser step) are
/// multiples of this: it is a multiple of every micro-kernel's `NR` and
/// every elementwise kernel's vector width.
const PAR_COL_ALIGN: usize = 64;
/// Smallest optimiser-step chunk worth a thread (memory-bound: ~20 µs).
const PAR_MIN_ELEMS: usize = 32_768;

/// A table of kernel implementations for one instruction set.
///
/// Obtain it with [`kernels()`] (process-wide choice), or
/// [`Kernels::best`], [`Kernels::scalar`], [`Kernels::for_isa`].
#[derive(Clone, Copy)]
pub struct Kernels {
    isa: Isa,
    /// Threads a large GEMM or optimiser step may be split across.
    threads: usize,
    gemm: GemmFn,
    pack_b: PackBFn,
    gemm_packed: GemmPackedFn,
    add_row: fn(&mut [f32], &[f32]),
    col_sums: fn(&[f32], &mut [f32]),
    relu: fn(&mut [f32]),
    relu_backward: fn(&mut [f32], &[f32]),
    mul: fn(&mut [f32], &[f32]),
    sum_sq: fn(&[f32]) -> f32,
    adam: AdamFn,
    sgd: fn(&mut [f32], &[f32], &mut [f32], &SgdStep),
    softmax_xent: XentFn,
    softmax_rows: fn(&mut [f32], usize),
}

impl fmt::Debug for Kernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernels")
            .field("isa", &self.isa)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl Kernels {
    /// The scalar reference kernels.
    pub fn scalar() -> Kernels {
        Kernels {
            isa: Isa::Scalar,
            threads: 1,
            gemm: scalar::gemm,
            pack_b: scalar::pack_b,
            gemm_packed: scalar::gemm_packed,
            add_row: scalar::add_row,
            col_sums: scalar::col_sums,
            relu: scalar::relu,
            relu_backward: scalar::relu_backward,
            mul: scalar::mul,
            sum_sq: scalar::sum_sq,
            adam: scalar::adam,
            sgd: scalar::sgd,
            softmax_xent: scalar::softmax_xent,
            softmax_rows: scalar::softmax_rows,
        }
    }

    /// The portable (auto-vectorised, blocked) kernels; available everywhere.
    pub fn portable() -> Kernels {
        Kernels {
            isa: Isa::Portable,
            threads: 1,
            gemm: portable::gemm,
            pack_b: portable::pack_b_full,
            gemm_packed: portable::gemm_packed,
            add_row: portable::add_row,
            col_sums: portable::col_sums,
            relu: portable::relu,
            relu_backward: portable::relu_backward,
            mul: portable::mul,
            sum_sq: portable::sum_sq,
            adam: portable::adam,
            sgd: portable::sgd,
            softmax_xent: scalar::softmax_xent,
            softmax_rows: scalar::softmax_rows,
        }
    }

    /// Kernels for `isa`, or `None` if this CPU (or build) cannot run them.
    pub fn for_isa(isa: Isa) -> Option<Kernels> {
        match isa {
            Isa::Scalar => Some(Self::scalar()),
            Isa::Portable => Some(Self::portable()),
            Isa::Avx2Fma => {
                #[cfg(target_arch = "x86_64")]
                {
                    if avx2_fma_available() {
                        // SAFETY (of the table's entries): AVX2 and FMA were
                        // detected just above; the x86 module's safe
                        // wrappers are only reachable through this table.
                        return Some(x86::kernels());
                    }
                }
                None
            }
            Isa::Avx512 => {
                #[cfg(target_arch = "x86_64")]
                {
                    if avx512_available() {
                        // SAFETY: as above, with AVX-512F also detected.
                        return Some(x86::kernels_avx512());
                    }
                }
                None
            }
            Isa::Neon => {
                #[cfg(target_arch = "aarch64")]
                {
                    return Some(aarch64::kernels());
                }
                #[allow(unreachable_code)]
                None
            }
        }
    }

    /// The fastest kernels this CPU supports.
    pub fn best() -> Kernels {
        [Isa::Avx512, Isa::Avx2Fma, Isa::Neon]
            .into_iter()
            .find_map(Self::for_isa)
            .unwrap_or_else(Self::portable)
    }

    /// Which instruction set this table uses.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The same kernels, allowed to split large GEMMs and optimiser steps
    /// across `threads` threads (rayon's pool; 1 = never). Splitting never
    /// changes a result: each output element is computed by the same code in
    /// the same order whichever thread computes it, so seeded runs stay
    /// bit-identical whatever the thread count.
    pub fn with_threads(self, threads: usize) -> Kernels {
        Kernels {
            threads: threads.max(1),
            ..self
        }
    }

    /// How many threads large operations may use (see [`Kernels::with_threads`]).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Into how many column blocks a GEMM of this shape is split: only when
    /// every part keeps at least [`PAR_MIN_FLOP`] of work and
    /// [`PAR_COL_ALIGN`] columns (a multiple of every micro-kernel's width,
    /// so each part has the same edge tiles as the whole).
    fn gemm_parts(&self, m: usize, n: usize, k: usize) -> usize {
        if self.threads <= 1 {
            return 1;
        }
        let flop = 2 * m * n * k;
        self.threads
            .min(n / PAR_COL_ALIGN)
            .min(flop / PAR_MIN_FLOP)
            .max(1)
    }

    /// General matrix multiply `C = alpha·A·B + beta·C`.
    ///
    /// `A` is `m × k`, `B` is `k × n`, `C` is `m × n`. When `beta == 0`, `C` is
    /// not read.
    ///
    /// # Panics
    /// On a dimension mismatch.
    #[inline]
    pub fn gemm(&self, alpha: f32, a: Mat<'_>, b: Mat<'_>, beta: f32, c: MatMut<'_>) {
        check_gemm_dims(&a, &b, &c);
        match self.gemm_parts(a.rows(), b.cols(), a.cols()) {
            1 => (self.gemm)(alpha, a, b, beta, c),
            parts => self.gemm_split(parts, alpha, a, b, beta, c),
        }
    }

    /// Column blocks of `C` (and `B`) on `parts` threads.
    fn gemm_split(
        &self,
        parts: usize,
        alpha: f32,
        a: Mat<'_>,
        b: Mat<'_>,
        beta: f32,
        c: MatMut<'_>,
    ) {
        let n = b.cols();
        let width = n.div_ceil(parts).next_multiple_of(PAR_COL_ALIGN);
        if parts <= 1 || width >= n {
            return (self.gemm)(alpha, a, b, beta, c);
        }
        let (c_left, c_right) = c.split_at_col(width);
        let (b_left, b_right) = (b.col_block(0, width), b.col_block(width, n));
        rayon::join(
            || (self.gemm)(alpha, a, b_left, beta, c_left),
            || self.gemm_split(parts - 1, alpha, a, b_right, beta, c_right),
        );
    }

    /// `C[m×n] = A[m×k]·B[k×n] + beta·C`, all contiguous row-major
    /// (forward pass `Z = X·W`).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_nn(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        b: &[f32],
        beta: f32,
        c: &mut [f32],
    ) {
        self.gemm(
            1.0,
            Mat::new(a, m, k),
            Mat::new(b, k, n),
            beta,
            MatMut::new(c, m, n),
        )
    }

    /// `C[m×n] = A[m×k]·B[n×k]ᵀ + beta·C`, all contiguous row-major
    /// (backward pass `dX = dY·Wᵀ`).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_nt(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        b: &[f32],
        beta: f32,
        c: &mut [f32],
    ) {
        self.gemm(
            1.0,
            Mat::new(a, m, k),
            Mat::new(b, n, k).t(),
            beta,
            MatMut::new(c, m, n),
        )
    }

    /// `C[m×n] = A[k×m]ᵀ·B[k×n] + beta·C`, all contiguous row-major
    /// (backward pass `dW = Xᵀ·dY`).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_tn(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        b: &[f32],
        beta: f32,
        c: &mut [f32],
    ) {
        self.gemm(
            1.0,
            Mat::new(a, k, m).t(),
            Mat::new(b, k, n),
            beta,
            MatMut::new(c, m, n),
        )
    }

    /// Packs `B` (`k × n`, any strides) for [`Kernels::gemm_packed`].
    pub fn pack_b(&self, b: Mat<'_>) -> PackedB {
        PackedB {
            isa: self.isa,
            k: b.rows(),
            n: b.cols(),
            data: (self.pack_b)(&b),
        }
    }

    /// `C = epilogue(A·B)` with `B` packed by [`Kernels::pack_b`] (see
    /// [`Epilogue`]): a 1x1 convolution over `m` pixels of `k` channels
    /// with its bias, clamp and residual add fused. One thread (the
    /// backbone runs one plan per core).
    ///
    /// # Panics
    /// On a dimension mismatch, a bias that is not `n` long, or `B` packed
    /// for another instruction set.
    pub fn gemm_packed(&self, a: Mat<'_>, b: &PackedB, epi: &Epilogue<'_>, c: MatMut<'_>) {
        assert_eq!(
            b.isa, self.isa,
            "gemm_packed: B was packed for {}, this table is {}",
            b.isa, self.isa
        );
        assert!(
            a.cols() == b.k && a.rows() == c.rows() && b.n == c.cols(),
            "gemm_packed dimension mismatch: A {}x{} · B {}x{} -> C {}x{}",
            a.rows(),
            a.cols(),
            b.k,
            b.n,
            c.rows(),
            c.cols()
        );
        assert_eq!(epi.bias.len(), b.n, "gemm_packed: bias length");
        if let Some(r) = &epi.residual {
            assert!(
                r.rows() == c.rows() && r.cols() == c.cols() && r.col_stride() == 1,
                "gemm_packed: residual must be a row-major {}x{} matrix",
                c.rows(),
                c.cols()
            );
        }
        (self.gemm_packed)(a, &b.data, epi, c)
    }

    /// Broadcast-add a row: `c[i, j] += bias[j]` for a row-major matrix with
    /// `bias.len()` columns.
    ///
    /// # Panics
    /// If `c.len()` is not a multiple of `bias.len()`.
    #[inline]
    pub fn add_row(&self, c: &mut [f32], bias: &[f32]) {
        check_rows(c.len(), bias.len());
        (self.add_row)(c, bias)
    }

    /// Column sums `out[j] = Σ_i x[i, j]` of a row-major matrix with
    /// `out.len()` columns (bias gradient). Overwrites `out`.
    #[inline]
    pub fn col_sums(&self, x: &[f32], out: &mut [f32]) {
        check_rows(x.len(), out.len());
        (self.col_sums)(x, out)
    }

    /// In-place ReLU `x = max(x, 0)`.
    #[inline]
    pub fn relu(&self, x: &mut [f32]) {
        (self.relu)(x)
    }

    /// ReLU backward: `dx[i] = if y[i] > 0 { dx[i] } else { 0 }` where `y` is
    /// the ReLU output (or input: the sign is the same).
    #[inline]
    pub fn relu_backward(&self, dx: &mut [f32], y: &[f32]) {
        assert_eq!(dx.len(), y.len(), "relu_backward: length mismatch");
        (self.relu_backward)(dx, y)
    }

    /// Elementwise product `x[i] *= m[i]` (dropout mask apply, forward and
    /// backward).
    #[inline]
    pub fn mul(&self, x: &mut [f32], m: &[f32]) {
        assert_eq!(x.len(), m.len(), "mul: length mismatch");
        (self.mul)(x, m)
    }

    /// `Σ x[i]²` (for global gradient norms).
    #[inline]
    pub fn sum_sq(&self, x: &[f32]) -> f32 {
        (self.sum_sq)(x)
    }

    /// One Adam(W) step over a parameter slice; see [`AdamStep`].
    #[inline]
    pub fn adam(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], step: &AdamStep) {
        let n = p.len();
        assert!(
            g.len() == n && m.len() == n && v.len() == n,
            "adam: length mismatch"
        );
        self.adam_split(self.elementwise_parts(n), p, g, m, v, step)
    }

    fn adam_split(
        &self,
        parts: usize,
        p: &mut [f32],
        g: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        step: &AdamStep,
    ) {
        let len = p
            .len()
            .div_ceil(parts.max(1))
            .next_multiple_of(PAR_COL_ALIGN);
        if parts <= 1 || len >= p.len() {
            return (self.adam)(p, g, m, v, step);
        }
        let (p0, p1) = p.split_at_mut(len);
        let (g0, g1) = g.split_at(len);
        let (m0, m1) = m.split_at_mut(len);
        let (v0, v1) = v.split_at_mut(len);
        rayon::join(
            || (self.adam)(p0, g0, m0, v0, step),
            || self.adam_split(parts - 1, p1, g1, m1, v1, step),
        );
    }

    /// One SGD-with-momentum step over a parameter slice; see [`SgdStep`].
    #[inline]
    pub fn sgd(&self, p: &mut [f32], g: &[f32], vel: &mut [f32], step: &SgdStep) {
        let n = p.len();
        assert!(g.len() == n && vel.len() == n, "sgd: length mismatch");
        self.sgd_split(self.elementwise_parts(n), p, g, vel, step)
    }

    fn sgd_split(&self, parts: usize, p: &mut [f32], g: &[f32], vel: &mut [f32], step: &SgdStep) {
        let len = p
            .len()
            .div_ceil(parts.max(1))
            .next_multiple_of(PAR_COL_ALIGN);
        if parts <= 1 || len >= p.len() {
            return (self.sgd)(p, g, vel, step);
        }
        let (p0, p1) = p.split_at_mut(len);
        let (g0, g1) = g.split_at(len);
        let (v0, v1) = vel.split_at_mut(len);
        rayon::join(
            || (self.sgd)(p0, g0, v0, step),
            || self.sgd_split(parts - 1, p1, g1, v1, step),
        );
    }

    /// Into how many chunks an optimiser step over `n` parameters is split
    /// (chunk boundaries are multiples of [`PAR_COL_ALIGN`], so every element
    /// takes the same vector or tail path as unsplit).
    fn elementwise_parts(&self, n: usize) -> usize {
        self.threads.min(n / PAR_MIN_ELEMS).max(1)
    }

    /// Softmax cross-entropy on `m = targets.len()` rows of `n_classes` logits.
    ///
    /// Numerically stable (log-sum-exp with the row maximum subtracted). With
    /// label smoothing `ε` the target distribution is `t = (1-ε)·onehot + ε/n`
    /// and `w_i` is `weights[i]` (1 when `None`):
    ///
    /// * `loss[i] = w_i · Σ_j -t_j·log p_j` (weighted per-row loss),
    /// * `grad[i, j] = w_i · (p_j - t_j) / opts.scale`.
    ///
    /// # Panics
    /// On length mismatches or a target `>= n_classes`.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn softmax_xent(
        &self,
        logits: &[f32],
        n_classes: usize,
        targets: &[usize],
        weights: Option<&[f32]>,
        opts: XentOpts,
        loss: &mut [f32],
        grad: &mut [f32],
    ) {
        scalar::check_xent(logits, n_classes, targets, weights, loss, grad);
        (self.softmax_xent)(logits, n_classes, targets, weights, opts, loss, grad)
    }

    /// In-place, numerically stable softmax of each row of `n` columns.
    #[inline]
    pub fn softmax_rows(&self, x: &mut [f32], n: usize) {
        check_rows(x.len(), n);
        (self.softmax_rows)(x, n)
    }
}

fn check_rows(len: usize, cols: usize) {
    assert!(
        (cols == 0 && len == 0) || (cols > 0 && len.is_multiple_of(cols)),
        "slice of length {len} is not a whole number of rows of {cols}"
    );
}

pub(crate) fn check_gemm_dims(a: &Mat<'_>, b: &Mat<'_>, c: &MatMut<'_>) {
    assert!(
        a.cols == b.rows && a.rows == c.rows && b.cols == c.cols,
        "gemm dimension mismatch: A {}x{} · B {}x{} -> C {}x{}",
        a.rows,
        a.cols,
        b.rows,
        b.cols,
        c.rows,
        c.cols
    );
}

/// The ISA of the process-wide kernel table (see [`kernels()`]).
pub fn isa() -> Isa {
    kernels().isa
}

/// The process-wide kernel table: the best available implementation, unless
/// `EDGETUNE_KERNELS` names another one, on every core unless
/// `EDGETUNE_KERNEL_THREADS` says how many. Chosen once.
pub fn kernels() -> &'static Kernels {
    static CHOSEN: OnceLock<Kernels> = OnceLock::new();
    CHOSEN.get_or_init(|| chosen_isa().with_threads(chosen_threads()))
}

fn chosen_isa() -> Kernels {
    match std::env::var("EDGETUNE_KERNELS") {
        Ok(name) if !name.trim().is_empty() => match Isa::from_name(&name) {
            Some(isa) => Kernels::for_isa(isa).unwrap_or_else(|| {
                let best = Kernels::best();
                eprintln!(
                    "edgetune: EDGETUNE_KERNELS={name}: {} is not available on this CPU, using {}",
                    isa.name(),
                    best.isa.name()
                );
                best
            }),
            None => {
                let best = Kernels::best();
                eprintln!(
                    "edgetune: EDGETUNE_KERNELS={name} not understood (scalar|portable|avx2|avx512|neon), using {}",
                    best.isa.name()
                );
                best
            }
        },
        _ => Kernels::best(),
    }
}

fn chosen_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match std::env::var("EDGETUNE_KERNEL_THREADS") {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                eprintln!(
                    "edgetune: EDGETUNE_KERNEL_THREADS={v} is not a positive number, using {cores}"
                );
                cores
            }
        },
        _ => cores,
    }
}
