//! MobileNetV2 (tract) latency for one image on one thread, and images/s on
//! all cores with one plan state per core (how `extract` runs it). Needs the
//! model from ../shared/models (or EDGETUNE_SHARED).

use std::path::PathBuf;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use edgetune::backbone::{Backbone, ModelSpec};
use edgetune::manifest::Manifest;
use ndarray::Array4;

pub fn shared() -> PathBuf {
    std::env::var_os("EDGETUNE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

fn backbone() -> Backbone {
    let manifest = Manifest::builtin("mobilenet_v2_1.0_224_features").unwrap();
    let path = shared().join("models").join(&manifest.file);
    let t0 = Instant::now();
    let b = Backbone::load(&ModelSpec { manifest, path }).expect("model in ../shared/models");
    eprintln!(
        "backbone load + optimise: {:.1} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    b
}

fn input() -> Array4<f32> {
    Array4::from_shape_fn((1, 3, 224, 224), |(_, c, y, x)| {
        ((c * 7 + y * 3 + x) % 255) as f32 / 127.5 - 1.0
    })
}

fn latency(c: &mut Criterion) {
    let b = backbone();
    let mut s = b.session().unwrap();
    let x = input();
    let mut g = c.benchmark_group("backbone");
    g.sample_size(30);
    g.throughput(Throughput::Elements(1));
    g.bench_function("mobilenet_v2_1thread", |bch| {
        bch.iter(|| s.run_input(x.view()).unwrap())
    });
    g.finish();
}

fn all_cores(c: &mut Criterion) {
    let b = backbone();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let per_thread = 8;
    let x = input();
    let mut g = c.benchmark_group("backbone");
    g.sample_size(10);
    g.throughput(Throughput::Elements((threads * per_thread) as u64));
    g.bench_function(
        format!("mobilenet_v2_{threads}threads_x{per_thread}"),
        |bch| {
            bch.iter(|| {
                std::thread::scope(|scope| {
                    for _ in 0..threads {
                        scope.spawn(|| {
                            let mut s = b.session().unwrap();
                            for _ in 0..per_thread {
                                s.run_input(x.view()).unwrap();
                            }
                        });
                    }
                })
            })
        },
    );
    g.finish();
}

criterion_group!(benches, latency, all_cores);
criterion_main!(benches);
