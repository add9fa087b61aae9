//! Where the backbone's time goes: tract's plan timed node by node, summed
//! by op kind. `cargo run --release --example profile_backbone [RUNS]`
//! (EDGETUNE_DWCONV=0 / EDGETUNE_TRACT_NHWC=0 to compare the rewrites).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

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
    let mut s = b.session()?;
    let x = Array4::from_shape_fn((1, 3, 224, 224), |(_, c, y, x)| {
        ((c * 7 + y * 3 + x) % 255) as f32 / 127.5 - 1.0
    });
    s.profile(x.view(), 5)?; // warm-up
    let nodes = s.profile(x.view(), runs)?;
    let per_run = |d: Duration| d.as_secs_f64() * 1e3 / runs as f64;
    let total: f64 = nodes.iter().map(|n| per_run(n.total)).sum();
    let mut by_op: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for n in &nodes {
        let e = by_op.entry(&n.op).or_default();
        e.0 += per_run(n.total);
        e.1 += 1;
    }
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
    println!(
        "{runs} runs, {total:.3} ms per image in {} nodes",
        nodes.len()
    );
    println!(
        "{:<28} {:>6} {:>10} {:>6}",
        "op", "nodes", "ms/image", "share"
    );
    for (op, (ms, count)) in &ops {
        println!(
            "{op:<28} {count:>6} {ms:>10.3} {:>5.1}%",
            100.0 * ms / total
        );
    }
    if std::env::var_os("EDGETUNE_PROFILE_NODES").is_some() {
        println!();
        for n in &nodes {
            println!("{:>8.3} ms  {:<20} {}", per_run(n.total), n.op, n.name);
        }
    }
    Ok(())
}
