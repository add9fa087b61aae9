//! What a camera trigger costs: decode + crop/resize/normalise + backbone +
//! head for one JPEG, each stage alone and together; and the feature cache's
//! get/put.

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use edgetune::backbone::{Backbone, ModelSpec};
use edgetune::cache::{Entry, EntryInfo, FeatureCache, hash_bytes};
use edgetune::head::{Head, HeadConfig};
use edgetune::manifest::Manifest;
use edgetune::preprocess;
use ndarray::Array2;

fn shared() -> PathBuf {
    std::env::var_os("EDGETUNE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

fn pipeline(c: &mut Criterion) {
    let manifest = Manifest::builtin("mobilenet_v2_1.0_224_features").unwrap();
    let path = shared().join("models").join(&manifest.file);
    let b = Backbone::load(&ModelSpec {
        manifest: manifest.clone(),
        path,
    })
    .unwrap();
    let mut s = b.session().unwrap();
    // a typical 500x375 camera-sized JPEG from the ants-vs-bees set
    let jpeg = std::fs::read(shared().join("data/hymenoptera/val/bees/1032546534_06907fe3b3.jpg"))
        .unwrap();
    let head = Head::new(1280, 2, &HeadConfig::mlp(&[256], 0.0), 0);
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(30);
    g.bench_function("decode_jpeg", |bch| {
        bch.iter(|| preprocess::decode(&jpeg).unwrap())
    });
    let img = preprocess::decode(&jpeg).unwrap();
    g.bench_function("crop_resize_normalise", |bch| {
        bch.iter(|| preprocess::to_input(&img, &manifest))
    });
    let feats = s.run_image(&img).unwrap().features;
    let x = Array2::from_shape_vec((1, 1280), feats.clone()).unwrap();
    g.bench_function("head_mlp256_1image", |bch| {
        bch.iter(|| head.predict_proba(x.view()))
    });
    g.bench_function("jpeg_to_top_k", |bch| {
        bch.iter(|| {
            let img = preprocess::decode(&jpeg).unwrap();
            let f = s.run_image(&img).unwrap().features;
            head.predict_proba(Array2::from_shape_vec((1, 1280), f).unwrap().view())
        })
    });

    let dir = tempfile::tempdir().unwrap();
    let cache = FeatureCache::open(&dir.path().join("c.redb"), &b.fingerprint).unwrap();
    let entry = Entry {
        features: feats,
        info: EntryInfo {
            width: 500,
            height: 375,
            name: "bee.jpg".into(),
        },
    };
    let mut i = 0u64;
    g.bench_function("cache_put_1_commit", |bch| {
        bch.iter(|| {
            i += 1;
            cache.put(&hash_bytes(&i.to_le_bytes()), &entry).unwrap()
        })
    });
    let batch: Vec<_> = (0..16u64)
        .map(|k| {
            (
                hash_bytes(&((k + 1) << 40).to_le_bytes()),
                Ok(entry.clone()),
            )
        })
        .collect();
    g.bench_function("cache_put_16_one_commit", |bch| {
        bch.iter(|| cache.put_many(&batch).unwrap())
    });
    let key = hash_bytes(&1u64.to_le_bytes());
    g.bench_function("cache_get", |bch| {
        bch.iter(|| cache.get(&key).unwrap().unwrap())
    });
    g.bench_function("hash_jpeg_sha256", |bch| bch.iter(|| hash_bytes(&jpeg)));
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
