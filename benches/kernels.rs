//! Every training kernel, SIMD against the scalar reference, at the shapes
//! training uses; throughput is reported in FLOP (criterion "elements").
//! `cargo bench --bench kernels`; a kernel set missing on this CPU is skipped.

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use edgetune::kernels::{AdamStep, Epilogue, Isa, Kernels, Mat, MatMut, SgdStep, XentOpts};

fn data(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(747796405).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) - 0.5
        })
        .collect()
}

fn kernel_sets() -> Vec<Kernels> {
    Isa::ALL
        .iter()
        .filter_map(|&i| Kernels::for_isa(i))
        .collect()
}

fn gemm(c: &mut Criterion) {
    // (name, m, n, k): forward X·W, backward dX = dY·Wᵀ and dW = Xᵀ·dY
    let shapes = [
        ("fwd_256x1280x256", "nn", 256, 256, 1280),
        ("fwd_32x1280x256", "nn", 32, 256, 1280),
        ("dx_256x256x1280", "nt", 256, 1280, 256),
        ("dw_1280x256_k256", "tn", 1280, 256, 256),
        ("dw_1280x256_k32", "tn", 1280, 256, 32),
        ("out_256x256x2", "nn", 256, 2, 256),
        ("out_256x256x10", "nn", 256, 10, 256),
    ];
    let mut g = c.benchmark_group("gemm");
    g.sample_size(20);
    for (name, layout, m, n, k) in shapes {
        let (a, b) = (data(m * k, 1), data(k * n, 2));
        let mut out = vec![0.0f32; m * n];
        g.throughput(Throughput::Elements(2 * (m * n * k) as u64));
        for ks in kernel_sets() {
            g.bench_with_input(BenchmarkId::new(name, ks.isa().name()), &(), |bch, _| {
                bch.iter(|| match layout {
                    "nn" => ks.gemm_nn(m, n, k, &a, &b, 0.0, &mut out),
                    "nt" => ks.gemm_nt(m, n, k, &a, &b, 0.0, &mut out),
                    _ => ks.gemm_tn(m, n, k, &a, &b, 0.0, &mut out),
                })
            });
        }
    }
    g.finish();
}

/// The backbone's 1x1 convs (src/pwconv): the pre-packed GEMM with bias +
/// ReLU6 (+ residual) fused, at MobileNetV2's shapes (pixels × cin → cout).
fn pointwise(c: &mut Criterion) {
    let shapes = [
        ("112x112_32to16", 112 * 112, 32, 16, false),
        ("112x112_16to96_relu6", 112 * 112, 16, 96, false),
        ("56x56_144to24_residual", 56 * 56, 144, 24, true),
        ("28x28_32to192_relu6", 28 * 28, 32, 192, false),
        ("14x14_384to64_residual", 14 * 14, 384, 64, true),
        ("14x14_96to576_relu6", 14 * 14, 96, 576, false),
        ("7x7_960to160_residual", 7 * 7, 960, 160, true),
        ("7x7_320to1280_relu6", 7 * 7, 320, 1280, false),
    ];
    let mut g = c.benchmark_group("pointwise");
    g.sample_size(20);
    for (name, m, k, n, residual) in shapes {
        let (a, b, bias, r) = (data(m * k, 1), data(k * n, 2), data(n, 3), data(m * n, 4));
        let mut out = vec![0.0f32; m * n];
        let relu6 = name.ends_with("relu6");
        let epi = Epilogue {
            bias: &bias,
            lo: if relu6 { 0.0 } else { f32::NEG_INFINITY },
            hi: if relu6 { 6.0 } else { f32::INFINITY },
            residual: residual.then(|| Mat::new(&r, m, n)),
        };
        g.throughput(Throughput::Elements(2 * (m * n * k) as u64));
        for ks in kernel_sets() {
            let packed = ks.pack_b(Mat::new(&b, k, n));
            g.bench_with_input(BenchmarkId::new(name, ks.isa().name()), &(), |bch, _| {
                bch.iter(|| {
                    ks.gemm_packed(
                        Mat::new(&a, m, k),
                        &packed,
                        &epi,
                        MatMut::new(&mut out, m, n),
                    )
                })
            });
        }
    }
    g.finish();
}

fn elementwise(c: &mut Criterion) {
    let n = 1280 * 256; // the hidden layer's weights
    let (g0, x0) = (data(n, 3), data(n, 4));
    let mut g = c.benchmark_group("elementwise");
    g.sample_size(30);
    for ks in kernel_sets() {
        let isa = ks.isa().name();
        let (mut p, mut m, mut v) = (x0.clone(), vec![0.0f32; n], vec![0.0f32; n]);
        g.throughput(Throughput::Elements(n as u64));
        let step = AdamStep::new(1e-3, 0.9, 0.999, 1e-8, 10);
        g.bench_function(BenchmarkId::new("adam_327680", isa), |b| {
            b.iter(|| ks.adam(&mut p, &g0, &mut m, &mut v, &step))
        });
        let sgd = SgdStep::new(1e-2, 0.9, true);
        g.bench_function(BenchmarkId::new("sgd_nesterov_327680", isa), |b| {
            b.iter(|| ks.sgd(&mut p, &g0, &mut m, &sgd))
        });
        let mut h = data(256 * 256, 5);
        let bias = data(256, 6);
        g.throughput(Throughput::Elements((256 * 256) as u64));
        g.bench_function(BenchmarkId::new("add_row_256x256", isa), |b| {
            b.iter(|| ks.add_row(&mut h, &bias))
        });
        let mut sums = vec![0.0f32; 256];
        g.bench_function(BenchmarkId::new("col_sums_256x256", isa), |b| {
            b.iter(|| ks.col_sums(&h, &mut sums))
        });
        g.bench_function(BenchmarkId::new("relu_256x256", isa), |b| {
            b.iter(|| ks.relu(black_box(&mut h)))
        });
        let y = data(256 * 256, 7);
        g.bench_function(BenchmarkId::new("relu_backward_256x256", isa), |b| {
            b.iter(|| ks.relu_backward(black_box(&mut h), &y))
        });
        let logits = data(256 * 10, 8);
        let targets: Vec<usize> = (0..256).map(|i| i % 10).collect();
        let (mut loss, mut grad) = (vec![0.0f32; 256], vec![0.0f32; 2560]);
        g.throughput(Throughput::Elements(2560));
        g.bench_function(BenchmarkId::new("softmax_xent_256x10", isa), |b| {
            b.iter(|| {
                ks.softmax_xent(
                    &logits,
                    10,
                    &targets,
                    None,
                    XentOpts {
                        label_smoothing: 0.1,
                        scale: 256.0,
                    },
                    &mut loss,
                    &mut grad,
                )
            })
        });
    }
    g.finish();
}

/// One core's FMA peak with AVX2 (10 independent 8-lane FMA chains, enough
/// to cover the FMA latency on two ports): the yardstick for the GEMM numbers.
#[cfg(target_arch = "x86_64")]
fn fma_peak(c: &mut Criterion) {
    use std::arch::x86_64::*;
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run(iters: usize) -> f32 {
        let a = _mm256_set1_ps(0.999_9);
        let b = _mm256_set1_ps(1e-6);
        let mut acc = [_mm256_set1_ps(1.0); 10];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut out = [0.0f32; 8];
        let mut sum = _mm256_setzero_ps();
        for x in acc {
            sum = _mm256_add_ps(sum, x);
        }
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sum) };
        out.iter().sum()
    }
    if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
        return;
    }
    let iters = 100_000;
    let mut g = c.benchmark_group("peak");
    g.throughput(Throughput::Elements((iters * 10 * 8 * 2) as u64));
    g.bench_function("fma_avx2_1core", |b| {
        b.iter(|| unsafe { run(black_box(iters)) })
    });
    g.finish();
}

/// The same with AVX-512 (20 chains of 16 lanes).
#[cfg(target_arch = "x86_64")]
fn fma_peak_avx512(c: &mut Criterion) {
    use std::arch::x86_64::*;
    #[target_feature(enable = "avx512f")]
    unsafe fn run(iters: usize) -> f32 {
        let a = _mm512_set1_ps(0.999_9);
        let b = _mm512_set1_ps(1e-6);
        let mut acc = [_mm512_set1_ps(1.0); 20];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        let mut sum = _mm512_setzero_ps();
        for x in acc {
            sum = _mm512_add_ps(sum, x);
        }
        _mm512_reduce_add_ps(sum)
    }
    if !is_x86_feature_detected!("avx512f") {
        return;
    }
    let iters = 50_000;
    let mut g = c.benchmark_group("peak");
    g.throughput(Throughput::Elements((iters * 20 * 16 * 2) as u64));
    g.bench_function("fma_avx512_1core", |b| {
        b.iter(|| unsafe { run(black_box(iters)) })
    });
    g.finish();
}

#[cfg(not(target_arch = "x86_64"))]
fn fma_peak(_: &mut Criterion) {}
#[cfg(not(target_arch = "x86_64"))]
fn fma_peak_avx512(_: &mut Criterion) {}

criterion_group!(
    benches,
    fma_peak,
    fma_peak_avx512,
    gemm,
    pointwise,
    elementwise
);
criterion_main!(benches);
