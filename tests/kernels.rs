// Every SIMD kernel against the scalar reference, on awkward and real shapes.
//
// ISAs the CPU lacks are skipped with a printed note (the test still passes).

use edgetune::kernels::{self, AdamStep, Isa, Kernels, Mat, MatMut, SgdStep, XentOpts, scalar};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rvec(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// Kernel tables to compare against the reference (all but scalar).
fn candidates() -> Vec<Kernels> {
    let mut out = Vec::new();
    for isa in Isa::ALL {
        if isa == Isa::Scalar {
            continue;
        }
        match Kernels::for_isa(isa) {
            Some(k) => out.push(k),
            None => println!(
                "note: {} kernels not available on this CPU, skipped",
                isa.name()
            ),
        }
    }
    out
}

#[derive(Clone, Copy, Debug)]
enum Layout {
    NN,
    NT,
    TN,
    TT,
}

const LAYOUTS: [Layout; 4] = [Layout::NN, Layout::NT, Layout::TN, Layout::TT];

/// Run `C = alpha·op(A)·op(B) + beta·C` with kernel table `k`; C has leading
/// dimension `ldc`.
#[allow(clippy::too_many_arguments)]
fn run_gemm(
    k: &Kernels,
    layout: Layout,
    (m, n, kk): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    alpha: f32,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    let am = match layout {
        Layout::NN | Layout::NT => Mat::new(a, m, kk),
        Layout::TN | Layout::TT => Mat::new(a, kk, m).t(),
    };
    let bm = match layout {
        Layout::NN | Layout::TN => Mat::new(b, kk, n),
        Layout::NT | Layout::TT => Mat::new(b, n, kk).t(),
    };
    k.gemm(alpha, am, bm, beta, MatMut::with_ld(c, m, n, ldc));
}

fn check_gemm(
    k: &Kernels,
    rng: &mut ChaCha8Rng,
    layout: Layout,
    dims: (usize, usize, usize),
    alpha: f32,
    beta: f32,
) {
    let (m, n, kk) = dims;
    let ldc = n + if m % 2 == 1 { 3 } else { 0 };
    let a = rvec(rng, m * kk);
    let b = rvec(rng, kk * n);
    let c0 = rvec(rng, m.saturating_sub(1) * ldc + n);
    let mut c_ref = c0.clone();
    let mut c_got = c0.clone();
    if beta == 0.0 {
        // C must not be read when beta == 0.
        c_got.iter_mut().for_each(|v| *v = f32::NAN);
    }
    let c_init = c_got.clone();
    let sk = Kernels::scalar();
    run_gemm(&sk, layout, dims, &a, &b, alpha, beta, &mut c_ref, ldc);
    run_gemm(k, layout, dims, &a, &b, alpha, beta, &mut c_got, ldc);
    // |a|·|b| magnitudes for the tolerance (with the portable kernels for
    // speed in debug builds; they are themselves checked against scalar here).
    let (aa, ba): (Vec<f32>, Vec<f32>) = (
        a.iter().map(|v| v.abs()).collect(),
        b.iter().map(|v| v.abs()).collect(),
    );
    let mut c_mag = vec![0.0f32; c0.len()];
    run_gemm(
        &Kernels::portable(),
        layout,
        dims,
        &aa,
        &ba,
        alpha.abs(),
        0.0,
        &mut c_mag,
        ldc,
    );
    for i in 0..m {
        for j in 0..n {
            let idx = i * ldc + j;
            let tol = 1e-4 * (c_mag[idx] + beta.abs() * c0[idx].abs()) + 1e-6;
            let (r, g) = (c_ref[idx], c_got[idx]);
            assert!(
                (r - g).abs() <= tol,
                "{} gemm {layout:?} {m}x{n}x{kk} alpha {alpha} beta {beta}: C[{i},{j}] = {g}, reference {r} (tol {tol})",
                k.isa().name()
            );
        }
        // Padding between rows (ld > n) must be untouched.
        if i + 1 < m {
            for j in n..ldc {
                let idx = i * ldc + j;
                assert_eq!(
                    c_got[idx].to_bits(),
                    c_init[idx].to_bits(),
                    "padding C[{i},{j}] was written"
                );
            }
        }
    }
}

#[test]
fn gemm_small_and_odd_shapes_match_scalar() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let sizes = [1usize, 2, 3, 7, 8, 16, 17, 33];
    for k in candidates() {
        for &m in &sizes {
            for &n in &sizes {
                for &kk in &[1usize, 3, 7, 17, 64] {
                    for layout in LAYOUTS {
                        check_gemm(&k, &mut rng, layout, (m, n, kk), 1.0, 0.0);
                    }
                }
            }
        }
    }
}

#[test]
fn gemm_alpha_beta_and_accumulate() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for k in candidates() {
        for &(alpha, beta) in &[
            (1.0f32, 1.0f32),
            (0.5, 0.0),
            (-2.0, 0.25),
            (0.0, 1.0),
            (0.0, 0.0),
            (1.0, -1.0),
        ] {
            for layout in LAYOUTS {
                for dims in [
                    (7, 17, 3),
                    (13, 19, 300),
                    (1, 1, 1),
                    (6, 16, 5),
                    (9, 3, 37),
                    (5, 2, 8),
                    (40, 4, 33),
                ] {
                    check_gemm(&k, &mut rng, layout, dims, alpha, beta);
                }
            }
        }
    }
}

#[test]
fn gemm_large_edges_1281_match_scalar() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for k in candidates() {
        for (layout, dims) in [
            (Layout::NN, (17, 1281, 7)),
            (Layout::NT, (3, 1281, 17)),
            (Layout::TN, (1281, 7, 3)),
            (Layout::NN, (7, 3, 1281)),
            (Layout::TT, (33, 17, 1281)),
            (Layout::NN, (130, 1030, 260)),
        ] {
            check_gemm(&k, &mut rng, layout, dims, 1.0, 0.0);
            check_gemm(&k, &mut rng, layout, dims, 1.0, 1.0);
        }
    }
}

#[test]
fn gemm_training_shapes_match_scalar() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for k in candidates() {
        // The scalar reference is slow without optimisation: debug builds
        // check batch 32 only.
        let batches: &[usize] = if cfg!(debug_assertions) {
            &[32]
        } else {
            &[32, 256]
        };
        for &batch in batches {
            // forward X·W, dW = Xᵀ·dY, dX = dY·Wᵀ for 1280 -> 256 -> N
            check_gemm(&k, &mut rng, Layout::NN, (batch, 256, 1280), 1.0, 0.0);
            check_gemm(&k, &mut rng, Layout::TN, (1280, 256, batch), 1.0, 0.0);
            check_gemm(&k, &mut rng, Layout::NT, (batch, 1280, 256), 1.0, 0.0);
            for n_classes in [2usize, 5, 10] {
                check_gemm(&k, &mut rng, Layout::NN, (batch, n_classes, 256), 1.0, 0.0);
                check_gemm(&k, &mut rng, Layout::TN, (256, n_classes, batch), 1.0, 0.0);
                check_gemm(&k, &mut rng, Layout::NT, (batch, 256, n_classes), 1.0, 0.0);
                check_gemm(&k, &mut rng, Layout::NN, (batch, n_classes, 1280), 1.0, 0.0);
            }
        }
    }
}

#[test]
fn gemm_strided_operands() {
    // A is a column window of a wider matrix; B has row stride > cols.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (m, n, kk) = (19, 23, 29);
    let a_big = rvec(&mut rng, m * (kk + 5));
    let b_big = rvec(&mut rng, kk * (n + 9));
    let a = Mat::strided(&a_big[2..], m, kk, kk + 5, 1);
    let b = Mat::strided(&b_big, kk, n, n + 9, 1);
    let mut c_ref = vec![0.0; m * n];
    scalar::gemm(1.0, a, b, 0.0, MatMut::new(&mut c_ref, m, n));
    for k in candidates() {
        let mut c = vec![0.0; m * n];
        k.gemm(1.0, a, b, 0.0, MatMut::new(&mut c, m, n));
        for (x, y) in c.iter().zip(&c_ref) {
            assert!(
                (x - y).abs() <= 1e-4 * 30.0,
                "{}: {x} vs {y}",
                k.isa().name()
            );
        }
    }
}

#[test]
fn gemm_empty_dimensions() {
    for k in candidates().into_iter().chain([Kernels::scalar()]) {
        let mut c = vec![3.0f32; 6];
        // k = 0: C = beta·C.
        k.gemm(
            1.0,
            Mat::new(&[], 2, 0),
            Mat::new(&[], 0, 3),
            0.5,
            MatMut::new(&mut c, 2, 3),
        );
        assert!(c.iter().all(|&v| v == 1.5), "{}: {c:?}", k.isa().name());
        k.gemm(
            1.0,
            Mat::new(&[], 2, 0),
            Mat::new(&[], 0, 3),
            0.0,
            MatMut::new(&mut c, 2, 3),
        );
        assert!(c.iter().all(|&v| v == 0.0));
        // m = 0 / n = 0: nothing to do.
        k.gemm(
            1.0,
            Mat::new(&[], 0, 4),
            Mat::new(&[1.0; 8], 4, 2),
            0.0,
            MatMut::new(&mut [], 0, 2),
        );
        k.gemm(
            1.0,
            Mat::new(&[1.0; 8], 2, 4),
            Mat::new(&[], 4, 0),
            0.0,
            MatMut::new(&mut [], 2, 0),
        );
    }
}

#[test]
#[should_panic(expected = "gemm dimension mismatch")]
fn gemm_dimension_mismatch_panics() {
    let a = [0.0f32; 6];
    let b = [0.0f32; 6];
    let mut c = [0.0f32; 4];
    kernels::kernels().gemm(
        1.0,
        Mat::new(&a, 2, 3),
        Mat::new(&b, 2, 3),
        0.0,
        MatMut::new(&mut c, 2, 2),
    );
}

#[test]
#[should_panic(expected = "does not fit")]
fn mat_out_of_bounds_panics() {
    let a = [0.0f32; 5];
    let _ = Mat::new(&a, 2, 3);
}

const LENS: [usize; 10] = [0, 1, 3, 7, 8, 16, 17, 33, 1281, 1280 * 256 + 5];

fn assert_close(what: &str, isa: Isa, got: &[f32], want: &[f32], rel: f32) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= rel * w.abs().max(1.0) || (g.is_nan() && w.is_nan()),
            "{} {what}[{i}]: {g} vs reference {w}",
            isa.name()
        );
    }
}

#[test]
fn add_row_and_col_sums_match_scalar() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    for k in candidates() {
        for rows in [1usize, 3, 32] {
            for &cols in &[1usize, 2, 7, 8, 17, 256, 1281] {
                let c0 = rvec(&mut rng, rows * cols);
                let bias = rvec(&mut rng, cols);
                let (mut r, mut g) = (c0.clone(), c0.clone());
                scalar::add_row(&mut r, &bias);
                k.add_row(&mut g, &bias);
                assert_close("add_row", k.isa(), &g, &r, 0.0);
                let (mut sr, mut sg) = (vec![0.0; cols], vec![f32::NAN; cols]);
                scalar::col_sums(&c0, &mut sr);
                k.col_sums(&c0, &mut sg);
                assert_close("col_sums", k.isa(), &sg, &sr, 1e-5);
            }
        }
    }
}

#[test]
fn relu_mask_mul_match_scalar() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for k in candidates() {
        for &n in &LENS {
            let mut x = rvec(&mut rng, n);
            if n > 2 {
                x[1] = 0.0;
                x[2] = -0.0;
            }
            let (mut r, mut g) = (x.clone(), x.clone());
            scalar::relu(&mut r);
            k.relu(&mut g);
            assert_close("relu", k.isa(), &g, &r, 0.0);
            assert!(g.iter().all(|&v| v >= 0.0));

            let d = rvec(&mut rng, n);
            let (mut r, mut g) = (d.clone(), d.clone());
            scalar::relu_backward(&mut r, &x);
            k.relu_backward(&mut g, &x);
            assert_close("relu_backward", k.isa(), &g, &r, 0.0);

            let mask: Vec<f32> = (0..n)
                .map(|i| if i % 3 == 0 { 0.0 } else { 1.25 })
                .collect();
            let (mut r, mut g) = (d.clone(), d.clone());
            scalar::mul(&mut r, &mask);
            k.mul(&mut g, &mask);
            assert_close("mul", k.isa(), &g, &r, 0.0);
        }
    }
}

#[test]
fn sum_sq_matches_scalar() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for k in candidates() {
        for &n in &LENS {
            let x = rvec(&mut rng, n);
            let want: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
            let got = k.sum_sq(&x) as f64;
            let refv = scalar::sum_sq(&x) as f64;
            assert!(
                (got - want).abs() <= 1e-4 * want.max(1.0),
                "{} sum_sq n={n}: {got} vs {want}",
                k.isa().name()
            );
            assert!((refv - want).abs() <= 1e-3 * want.max(1.0));
        }
    }
}

#[test]
fn adam_matches_scalar() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for k in candidates() {
        for &n in &LENS {
            let p0 = rvec(&mut rng, n);
            let g = rvec(&mut rng, n);
            let m0 = rvec(&mut rng, n);
            let v0: Vec<f32> = rvec(&mut rng, n).iter().map(|v| v.abs()).collect();
            for (t, l2, dwd, gs) in [
                (1u64, 0.0f32, 0.0f32, 1.0f32),
                (7, 1e-2, 0.0, 0.5),
                (1000, 0.0, 1e-2, 1.0),
            ] {
                let mut s = AdamStep::new(1e-2, 0.9, 0.999, 1e-8, t);
                s.l2 = l2;
                s.decoupled_wd = dwd;
                s.grad_scale = gs;
                let (mut pr, mut mr, mut vr) = (p0.clone(), m0.clone(), v0.clone());
                let (mut pg, mut mg, mut vg) = (p0.clone(), m0.clone(), v0.clone());
                scalar::adam(&mut pr, &g, &mut mr, &mut vr, &s);
                k.adam(&mut pg, &g, &mut mg, &mut vg, &s);
                assert_close("adam p", k.isa(), &pg, &pr, 1e-6);
                assert_close("adam m", k.isa(), &mg, &mr, 1e-6);
                assert_close("adam v", k.isa(), &vg, &vr, 1e-6);
            }
        }
    }
}

#[test]
fn adam_first_step_moves_by_lr() {
    // With bias correction, the first Adam step is ≈ lr·sign(g).
    let mut p = vec![0.0f32; 5];
    let g = [1.0f32, -2.0, 0.5, -0.1, 3.0];
    let (mut m, mut v) = (vec![0.0; 5], vec![0.0; 5]);
    for k in candidates().into_iter().chain([Kernels::scalar()]) {
        p.fill(0.0);
        m.fill(0.0);
        v.fill(0.0);
        k.adam(
            &mut p,
            &g,
            &mut m,
            &mut v,
            &AdamStep::new(0.01, 0.9, 0.999, 1e-8, 1),
        );
        for (pi, gi) in p.iter().zip(&g) {
            assert!(
                (pi + 0.01 * gi.signum()).abs() < 1e-6,
                "{}: {p:?}",
                k.isa().name()
            );
        }
    }
}

#[test]
fn sgd_matches_scalar() {
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    for k in candidates() {
        for &n in &LENS {
            let p0 = rvec(&mut rng, n);
            let g = rvec(&mut rng, n);
            let v0 = rvec(&mut rng, n);
            for (mom, nest, l2, dwd, gs) in [
                (0.0f32, false, 0.0f32, 0.0f32, 1.0f32),
                (0.9, false, 1e-3, 0.0, 0.3),
                (0.9, true, 0.0, 1e-2, 1.0),
            ] {
                let mut s = SgdStep::new(0.1, mom, nest);
                s.l2 = l2;
                s.decoupled_wd = dwd;
                s.grad_scale = gs;
                let (mut pr, mut vr) = (p0.clone(), v0.clone());
                let (mut pg, mut vg) = (p0.clone(), v0.clone());
                scalar::sgd(&mut pr, &g, &mut vr, &s);
                k.sgd(&mut pg, &g, &mut vg, &s);
                assert_close("sgd p", k.isa(), &pg, &pr, 1e-6);
                assert_close("sgd v", k.isa(), &vg, &vr, 1e-6);
            }
        }
    }
}

#[test]
fn sgd_reference_semantics() {
    let s = SgdStep::new(0.1, 0.9, true);
    let (mut p, mut v) = ([1.0f32], [0.5f32]);
    scalar::sgd(&mut p, &[2.0], &mut v, &s);
    // v = 0.9·0.5 + 2 = 2.45; u = 2 + 0.9·2.45 = 4.205; p = 1 - 0.4205
    assert!((v[0] - 2.45).abs() < 1e-6);
    assert!((p[0] - (1.0 - 0.4205)).abs() < 1e-6);
}

/// Naive f64 softmax cross-entropy: (per-row weighted loss, gradient).
fn xent_f64(
    z: &[f32],
    n: usize,
    t: &[usize],
    w: Option<&[f32]>,
    eps: f64,
    scale: f64,
) -> (Vec<f64>, Vec<f64>) {
    let mut loss = Vec::new();
    let mut grad = Vec::new();
    for (i, row) in z.chunks(n).enumerate() {
        let max = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
        let s: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        let wi = w.map_or(1.0, |w| w[i] as f64);
        let mut l = 0.0;
        for (j, &v) in row.iter().enumerate() {
            let logp = v as f64 - max - s.ln();
            let tj = if j == t[i] {
                1.0 - eps + eps / n as f64
            } else {
                eps / n as f64
            };
            l -= tj * logp;
            grad.push(wi * (logp.exp() - tj) / scale);
        }
        loss.push(wi * l);
    }
    (loss, grad)
}

#[test]
fn softmax_xent_matches_f64_and_is_stable() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let all: Vec<Kernels> = candidates()
        .into_iter()
        .chain([Kernels::scalar()])
        .collect();
    for k in &all {
        for &n in &[2usize, 3, 10] {
            for &m in &[1usize, 5, 64] {
                let mut z: Vec<f32> = rvec(&mut rng, m * n).iter().map(|v| v * 8.0).collect();
                z[0] = 1e4; // extreme logits must not overflow
                if m * n > 1 {
                    z[1] = -1e4;
                }
                let t: Vec<usize> = (0..m).map(|i| (i * 7) % n).collect();
                let w: Vec<f32> = (0..m).map(|i| 0.5 + (i % 3) as f32).collect();
                for (eps, weights) in [(0.0f32, None), (0.1, Some(&w[..])), (0.2, None)] {
                    let scale = 3.5f32;
                    let mut loss = vec![0.0; m];
                    let mut grad = vec![0.0; m * n];
                    k.softmax_xent(
                        &z,
                        n,
                        &t,
                        weights,
                        XentOpts {
                            label_smoothing: eps,
                            scale,
                        },
                        &mut loss,
                        &mut grad,
                    );
                    let (lr, gr) = xent_f64(&z, n, &t, weights, eps as f64, scale as f64);
                    for (a, b) in loss.iter().zip(&lr) {
                        assert!(
                            a.is_finite() && (*a as f64 - b).abs() <= 1e-4 * b.abs().max(1.0),
                            "{}: loss {a} vs {b}",
                            k.isa().name()
                        );
                    }
                    for (a, b) in grad.iter().zip(&gr) {
                        assert!(
                            a.is_finite() && (*a as f64 - b).abs() <= 1e-5,
                            "{}: grad {a} vs {b}",
                            k.isa().name()
                        );
                    }
                    // Without weights, each gradient row sums to 0.
                    if weights.is_none() {
                        for row in grad.chunks(n) {
                            assert!(row.iter().sum::<f32>().abs() < 1e-5);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn softmax_rows_sum_to_one() {
    let mut x = vec![1.0f32, 2.0, 3.0, 1000.0, -1000.0, 0.0];
    kernels::kernels().softmax_rows(&mut x, 3);
    assert!((x[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
    assert!((x[3] - 1.0).abs() < 1e-6 && x[4] == 0.0);
}

#[test]
fn dispatch_and_names() {
    let chosen = kernels::isa();
    assert!(chosen.is_available());
    println!("dispatched kernels: {chosen}");
    for isa in Isa::ALL {
        assert_eq!(Isa::from_name(isa.name()), Some(isa));
        assert_eq!(Kernels::for_isa(isa).is_some(), isa.is_available());
        if let Some(k) = Kernels::for_isa(isa) {
            assert_eq!(k.isa(), isa);
        }
    }
    assert!(Isa::Scalar.is_available() && Isa::Portable.is_available());
    assert_ne!(Kernels::best().isa(), Isa::Scalar);
    assert_eq!(Isa::from_name("AVX2"), Some(Isa::Avx2Fma));
    assert_eq!(Isa::from_name("sse9"), None);
    match std::env::var("EDGETUNE_KERNELS")
        .ok()
        .as_deref()
        .and_then(Isa::from_name)
    {
        Some(forced) if forced.is_available() => assert_eq!(chosen, forced),
        _ => assert_eq!(chosen, Kernels::best().isa()),
    }
}

#[test]
fn convenience_gemm_layouts() {
    // 2x3 · 3x2 by hand.
    let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let b = [7.0f32, 8.0, 9.0, 10.0, 11.0, 12.0];
    let want = [58.0f32, 64.0, 139.0, 154.0];
    let bt = [7.0f32, 9.0, 11.0, 8.0, 10.0, 12.0]; // b transposed (2x3)
    let at = [1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0]; // a transposed (3x2)
    for k in candidates().into_iter().chain([Kernels::scalar()]) {
        let mut c = [0.0f32; 4];
        k.gemm_nn(2, 2, 3, &a, &b, 0.0, &mut c);
        assert_eq!(c, want);
        k.gemm_nt(2, 2, 3, &a, &bt, 0.0, &mut c);
        assert_eq!(c, want);
        k.gemm_tn(2, 2, 3, &at, &b, 1.0, &mut c);
        assert_eq!(c, want.map(|v| 2.0 * v));
    }
}

/// Large GEMMs and optimiser steps split across threads give exactly the
/// one-thread result (seeded runs must not depend on the core count).
#[test]
fn threaded_kernels_are_bit_identical_to_one_thread() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let shapes = [
        (32, 256, 1280), // forward X·W at the training shape
        (1280, 256, 32), // dW = Xᵀ·dY
        (5, 1000, 1000), // uneven halves: 512 + 488 columns
        (33, 321, 700),  // odd everything, edge tiles in the last part
    ];
    for k1 in candidates() {
        for threads in [2, 3] {
            let kt = k1.with_threads(threads);
            assert_eq!(kt.threads(), threads);
            for &(m, n, kk) in &shapes {
                for layout in LAYOUTS {
                    let ldc = n + 5;
                    let a = rvec(&mut rng, m * kk);
                    let b = rvec(&mut rng, kk * n);
                    let c0 = rvec(&mut rng, (m - 1) * ldc + n);
                    for (alpha, beta) in [(1.0, 0.0), (0.5, 1.0)] {
                        let (mut c1, mut ct) = (c0.clone(), c0.clone());
                        run_gemm(&k1, layout, (m, n, kk), &a, &b, alpha, beta, &mut c1, ldc);
                        run_gemm(&kt, layout, (m, n, kk), &a, &b, alpha, beta, &mut ct, ldc);
                        assert!(
                            c1.iter().zip(&ct).all(|(x, y)| x.to_bits() == y.to_bits()),
                            "{} gemm {layout:?} {m}x{n}x{kk} on {threads} threads differs",
                            k1.isa().name()
                        );
                    }
                }
            }
            let n = 327_680 + 17;
            let (p0, g, m0) = (rvec(&mut rng, n), rvec(&mut rng, n), rvec(&mut rng, n));
            let v0: Vec<f32> = rvec(&mut rng, n).iter().map(|v| v.abs()).collect();
            let s = AdamStep::new(1e-2, 0.9, 0.999, 1e-8, 3);
            let (mut p1, mut m1, mut v1) = (p0.clone(), m0.clone(), v0.clone());
            let (mut pt, mut mt, mut vt) = (p0.clone(), m0.clone(), v0.clone());
            k1.adam(&mut p1, &g, &mut m1, &mut v1, &s);
            kt.adam(&mut pt, &g, &mut mt, &mut vt, &s);
            assert!(
                p1 == pt && m1 == mt && v1 == vt,
                "{} adam on {threads} threads differs",
                k1.isa().name()
            );
            let s = SgdStep::new(0.1, 0.9, true);
            let (mut p1, mut v1) = (p0.clone(), m0.clone());
            let (mut pt, mut vt) = (p0.clone(), m0.clone());
            k1.sgd(&mut p1, &g, &mut v1, &s);
            kt.sgd(&mut pt, &g, &mut vt, &s);
            assert!(
                p1 == pt && v1 == vt,
                "{} sgd on {threads} threads differs",
                k1.isa().name()
            );
        }
    }
}
