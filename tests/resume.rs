//! kill -9 in the middle of an extraction, run again: only the missing images
//! are computed, and what was written before the kill is intact.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use edgetune::backbone::Backbone;
use edgetune::cache::{FeatureCache, hash_bytes};

const N: usize = 400;

fn noise_png(path: &Path, seed: u32) {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    let img = image::RgbImage::from_fn(96, 72, |_, _| {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        image::Rgb([s as u8, (s >> 8) as u8, (s >> 16) as u8])
    });
    img.save(path).unwrap();
}

fn extract_cmd(data: &Path, cache: &Path) -> Command {
    let mut c = Command::new(bin());
    c.arg("extract")
        .arg(data)
        .arg("--models-dir")
        .arg(shared().join("models"))
        .arg("--cache")
        .arg(cache)
        .args(["--threads", "2", "--batch", "8"]);
    c
}

fn run_json(data: &Path, cache: &Path) -> serde_json::Value {
    let out = extract_cmd(data, cache)
        .args(["--json", "--progress", "none"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn killed_extraction_resumes_without_losing_or_corrupting_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for i in 0..N {
        let class = data.join(if i % 2 == 0 { "even" } else { "odd" });
        std::fs::create_dir_all(&class).unwrap();
        noise_png(&class.join(format!("{i:04}.png")), i as u32);
    }
    let cache = tmp.path().join("cache.redb");

    let mut child = extract_cmd(&data, &cache)
        .args(["--progress", "plain"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut committed = 0usize;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.split("committed ").nth(1) {
            committed = rest.split('/').next().unwrap().parse().unwrap();
            if committed >= 24 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the first run must have been killed mid-way"
    );
    assert!((24..N).contains(&committed), "committed {committed}");

    let second = run_json(&data, &cache);
    let (extracted, cached) = (
        second["extracted"].as_u64().unwrap() as usize,
        second["cached"].as_u64().unwrap() as usize,
    );
    assert!(
        cached >= committed,
        "lost work: {cached} cached < {committed} committed"
    );
    assert!(extracted > 0);
    assert_eq!(extracted + cached, N);
    assert_eq!(second["skipped"].as_array().unwrap().len(), 0);

    let third = run_json(&data, &cache);
    assert_eq!(third["extracted"], 0);
    assert_eq!(third["cached"].as_u64().unwrap() as usize, N);

    // what the cache holds is what the backbone computes
    let b = Backbone::load(&features_spec()).unwrap();
    let c = FeatureCache::open(&cache, &b.fingerprint).unwrap();
    let mut s = b.session().unwrap();
    for i in [0usize, 1, 57, 398] {
        let p = data
            .join(if i % 2 == 0 { "even" } else { "odd" })
            .join(format!("{i:04}.png"));
        let bytes = std::fs::read(&p).unwrap();
        let cached = c.get(&hash_bytes(&bytes)).unwrap().expect("in cache");
        let img = edgetune::preprocess::decode(&bytes).unwrap();
        let fresh = s.run_image(&img).unwrap().features;
        assert_eq!(cached.features, fresh, "{}", p.display());
        assert_eq!(cached.info.name, p.file_name().unwrap().to_string_lossy());
    }
}
