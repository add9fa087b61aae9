//! Head training speed: one epoch over 4,000 cached-feature-sized vectors
//! (1280-d, 5 classes) for the linear and the 1280→256→N head, and a whole
//! early-stopped run. Features are synthetic clusters of MobileNetV2's shape
//! and range so the bench needs no model.

use criterion::{Criterion, criterion_group, criterion_main};
use edgetune::head::{HeadConfig, TrainConfig, train};
use ndarray::Array2;

const N: usize = 4000;
const D: usize = 1280;
const C: usize = 5;

fn dataset(n: usize, seed: u32) -> (Array2<f32>, Vec<usize>) {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(7);
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        s as f32 / u32::MAX as f32
    };
    let centers: Vec<Vec<f32>> = (0..C)
        .map(|_| (0..D).map(|_| rnd() * 2.0).collect())
        .collect();
    let y: Vec<usize> = (0..n).map(|i| i % C).collect();
    let x = Array2::from_shape_fn((n, D), |(i, j)| {
        (centers[y[i]][j] + 1.5 * rnd() - 0.75).max(0.0)
    });
    (x, y)
}

fn epochs(c: &mut Criterion) {
    let (x, y) = dataset(N, 1);
    let mut g = c.benchmark_group("head_epoch_4000x1280");
    g.sample_size(10);
    for (name, hidden) in [("linear", vec![]), ("mlp_256", vec![256])] {
        let head = HeadConfig {
            hidden,
            dropout: 0.2,
        };
        let cfg = TrainConfig {
            epochs: 1,
            patience: None,
            ..TrainConfig::default()
        };
        // time the epoch itself (as `EpochMetrics::seconds` reports it), not the set-up
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iters {
                    train(x.view(), &y, None, C, &head, &cfg, &mut |m| {
                        total += std::time::Duration::from_secs_f64(m.seconds)
                    })
                    .unwrap();
                }
                total
            })
        });
    }
    g.finish();
}

fn whole_run(c: &mut Criterion) {
    // the size of a hymenoptera-like set: 245 train, 153 validation images
    let (x, y) = dataset(245, 2);
    let (xv, yv) = dataset(153, 3);
    let mut g = c.benchmark_group("head_early_stopped_run_245");
    g.sample_size(10);
    for (name, hidden) in [("linear", vec![]), ("mlp_256", vec![256])] {
        let head = HeadConfig {
            hidden,
            dropout: 0.5,
        };
        let cfg = TrainConfig {
            standardize: false,
            ..TrainConfig::default()
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                train(
                    x.view(),
                    &y,
                    Some((xv.view(), &yv)),
                    C,
                    &head,
                    &cfg,
                    &mut |_| {},
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, epochs, whole_run);
criterion_main!(benches);
