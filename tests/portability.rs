// Heads and caches are portable between machines (issue #4): the head file
// stores little-endian f32 in a versioned safetensors container, and a head
// with fixed weights gives the same probabilities on x86_64 (AVX2), aarch64
// (NEON) and armv7 (portable kernels). The golden numbers below were computed
// on x86_64; scripts/arm.sh runs this file under qemu for the ARM targets.
// The cross-machine check with real files (a head trained on x86_64 used on
// ARM and the reverse, an x86_64 feature cache read on ARM) is in
// scripts/arm.sh, because it runs the `edgetune` binary under qemu.

use edgetune::cache::{Entry, EntryInfo, FeatureCache};
use edgetune::head::{Head, HeadConfig, Standardizer};
use edgetune::headfile::{BackboneInfo, FORMAT, FORMAT_VERSION, HeadFile};
use edgetune::manifest::Manifest;
use ndarray::{Array1, Array2};

/// A deterministic value in [-scale, scale] from integer arithmetic and one
/// correctly rounded division: the same bits on every IEEE-754 machine.
fn det(i: usize, salt: u32, scale: f32) -> f32 {
    let mut h = (i as u32).wrapping_mul(2_654_435_761) ^ salt.wrapping_mul(40_503);
    h ^= h >> 13;
    h = h.wrapping_mul(0x5bd1_e995);
    h ^= h >> 15;
    ((h % 2001) as f32 - 1000.0) / 1000.0 * scale
}

const FP: &str = "0123456789abcdef0123456789abcdef";
const D: usize = 64;
const HIDDEN: usize = 8;
const C: usize = 3;

/// A 64→8→3 MLP head with a standardiser and fixed weights.
fn fixed_head() -> Head {
    let mut head = Head::new(D, C, &HeadConfig::mlp(&[HIDDEN], 0.0), 0);
    for (l, layer) in head.layers.iter_mut().enumerate() {
        let salt = 10 * l as u32;
        let fan_in = layer.w.nrows() as f32;
        let scale = (2.0 / fan_in).sqrt();
        let n = layer.w.len();
        layer.w = Array2::from_shape_vec(
            layer.w.raw_dim(),
            (0..n).map(|i| det(i, salt + 1, scale)).collect(),
        )
        .unwrap();
        layer.b = Array1::from_iter((0..layer.b.len()).map(|i| det(i, salt + 2, 0.1)));
    }
    head.standardizer = Some(Standardizer {
        mean: Array1::from_iter((0..D).map(|i| det(i, 100, 0.5))),
        std: Array1::from_iter((0..D).map(|i| 1.0 + det(i, 101, 0.5).abs())),
    });
    head.check().unwrap();
    head
}

fn fixed_input(rows: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, D), |(r, j)| det(r * D + j, 200, 2.0) + 0.25)
}

fn backbone_info() -> BackboneInfo {
    BackboneInfo {
        name: "mobilenet_v2_1.0_224_features".into(),
        fingerprint: "0123456789abcdef0123456789abcdef".into(),
        model_sha256: "00".repeat(32),
        manifest: Manifest::builtin("mobilenet_v2_1.0_224_features").unwrap(),
    }
}

fn bits(a: &Head) -> Vec<u32> {
    let mut v = Vec::new();
    for l in &a.layers {
        v.extend(l.w.iter().map(|x| x.to_bits()));
        v.extend(l.b.iter().map(|x| x.to_bits()));
    }
    let s = a.standardizer.as_ref().unwrap();
    v.extend(s.mean.iter().chain(s.std.iter()).map(|x| x.to_bits()));
    v
}

/// Computed on x86_64 (AVX2+FMA kernels); must hold on every target.
const GOLDEN_PROBA: [[f32; C]; 4] = [
    [0.3298077, 0.4268068, 0.24338545],
    [0.2664922, 0.3136596, 0.41984823],
    [0.22137417, 0.45954013, 0.31908572],
    [0.30741838, 0.4578916, 0.23468997],
];
/// sha256 over tensor names, shapes and little-endian bytes (the head file's
/// `weights_sha256`): identical bytes on every machine.
const GOLDEN_WEIGHTS_SHA256: &str =
    "58f5bdf5b50aaad7cf29281bb4aa69ea6fffd4e9e9cd5633536d91804b47bc1b";

#[test]
fn head_file_is_little_endian_versioned_and_round_trips_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("head.safetensors");
    let head = fixed_head();
    let labels = vec!["ants".to_string(), "bees".to_string(), "wasps".to_string()];
    HeadFile::new(
        head.clone(),
        labels.clone(),
        backbone_info(),
        serde_json::json!({}),
    )
    .save(&path)
    .unwrap();

    // the container: u64 little-endian header length, then a JSON header
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(bytes[8], b'{', "safetensors header length is little-endian");
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    // every tensor's bytes are the little-endian encoding of the weights
    let w0 = &header["layers.0.weight"];
    assert_eq!(w0["dtype"], "F32");
    let off = w0["data_offsets"][0].as_u64().unwrap() as usize;
    let want: Vec<u8> = head.layers[0]
        .w
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    assert_eq!(&data[off..off + want.len()], &want[..]);
    // the metadata names the format and its version
    let meta: serde_json::Value =
        serde_json::from_str(header["__metadata__"]["edgetune"].as_str().unwrap()).unwrap();
    assert_eq!(meta["format"], FORMAT);
    assert_eq!(meta["format_version"], FORMAT_VERSION);

    let loaded = HeadFile::load(&path).unwrap();
    assert_eq!(loaded.meta.labels, labels);
    assert_eq!(bits(&loaded.head), bits(&head), "round trip is bit-exact");
    assert_eq!(
        loaded.meta.weights_sha256, GOLDEN_WEIGHTS_SHA256,
        "weights bytes differ from x86_64's"
    );
}

#[test]
fn fixed_head_predicts_the_x86_64_probabilities() {
    let head = fixed_head();
    let p = head.predict_proba(fixed_input(4).view());
    eprintln!("kernels: {}\n{p:?}", edgetune::simd_level_name());
    for (r, want) in GOLDEN_PROBA.iter().enumerate() {
        for (c, &w) in want.iter().enumerate() {
            let got = p[[r, c]];
            assert!(
                (got - w).abs() < 1e-5,
                "row {r} class {c}: {got} vs x86_64 {w}"
            );
        }
    }
    // and the same after a save/load
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.safetensors");
    HeadFile::new(
        head,
        vec!["a".into(), "b".into(), "c".into()],
        backbone_info(),
        serde_json::json!({}),
    )
    .save(&path)
    .unwrap();
    let q = HeadFile::load(&path)
        .unwrap()
        .head
        .predict_proba(fixed_input(4).view());
    assert_eq!(p, q);
}

#[test]
fn feature_cache_round_trips_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("features.redb");
    let features: Vec<f32> = (0..1280).map(|i| det(i, 300, 6.0)).collect();
    let key = edgetune::cache::hash_bytes(b"an image");
    let entry = Entry {
        features: features.clone(),
        info: EntryInfo {
            width: 640,
            height: 480,
            name: "x.jpg".into(),
        },
    };
    {
        let cache = FeatureCache::open(&path, FP).unwrap();
        cache.put(&key, &entry).unwrap();
    }
    let cache = FeatureCache::open(&path, FP).unwrap();
    let got = cache
        .get(&key)
        .unwrap()
        .expect("entry is there after reopening");
    assert_eq!(got.info, entry.info);
    assert!(
        got.features
            .iter()
            .zip(&features)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    // another backbone's fingerprint does not see it
    drop(cache);
    assert!(
        FeatureCache::open(&path, &"f".repeat(32))
            .unwrap()
            .get(&key)
            .unwrap()
            .is_none()
    );
}
