//! MobileNetV2 latency, as benches/compare/compare.py times ONNX Runtime:
//! `RUNS` runs of one preprocessed input after 5 warm-up runs, on one
//! thread, then on every core with one plan state per core. Prints one
//! JSON line. `cargo run --release --example bench_backbone [RUNS]`.

use std::path::PathBuf;
use std::time::Instant;

use edgetune::backbone::{Backbone, ModelSpec};
use edgetune::manifest::Manifest;
use ndarray::Array4;

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args().nth(1).map_or(Ok(50), |a| a.parse())?;
    let shared = std::env::var_os("EDGETUNE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let manifest = Manifest::builtin("mobilenet_v2_1.0_224_features").unwrap();
    let path = shared.join("models").join(&manifest.file);
    let b = Backbone::load(&ModelSpec { manifest, path })?;
    let x = Array4::from_shape_fn((1, 3, 224, 224), |(_, c, y, x)| {
        ((c * 7 + y * 3 + x) % 255) as f32 / 127.5 - 1.0
    });
    let mut s = b.session()?;
    for _ in 0..5 {
        s.run_input(x.view())?;
    }
    let t0 = Instant::now();
    for _ in 0..runs {
        s.run_input(x.view())?;
    }
    let one = t0.elapsed().as_secs_f64() * 1e3 / runs as f64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let t0 = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..cores)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    let mut s = b.session()?;
                    for _ in 0..runs {
                        s.run_input(x.view())?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().expect("worker panicked")?;
        }
        Ok(())
    })?;
    let all = t0.elapsed().as_secs_f64() * 1e3 / (runs * cores) as f64;
    println!(
        "{{\"ms_per_image_1_thread\":{one:.3},\"ms_per_image_all_cores\":{all:.3},\"cores\":{cores}}}"
    );
    Ok(())
}
