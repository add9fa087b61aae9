//! The `models`, `extract`, `embed` and `info` commands as a user runs them.

mod common;

use std::process::Command;

use common::*;

fn edgetune(args: &[&str]) -> std::process::Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn models_install_copies_verifies_and_refuses_bad_files() {
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().to_str().unwrap();
    let from = shared().join("models");
    let from = from.to_str().unwrap();
    let o = edgetune(&["models", "install", "--from", from, "--models-dir", d]);
    assert!(o.status.success(), "{}", stderr(&o));
    let installed = dest.path().join("mobilenet_v2_1.0_224_features.onnx");
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(features_spec().path).unwrap()
    );
    let o = edgetune(&["models", "install", "--from", from, "--models-dir", d]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("already installed"));
    // the imagenet variant brings its labels file along
    let o = edgetune(&[
        "models",
        "install",
        "mobilenet_v2_1.0_224_imagenet",
        "--from",
        from,
        "--models-dir",
        d,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dest.path().join("imagenet_labels_1001.txt").exists());

    // a truncated source is refused with both hashes, and nothing is written
    let bad_src = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(features_spec().path).unwrap();
    std::fs::write(
        bad_src.path().join("mobilenet_v2_1.0_224_features.onnx"),
        &bytes[..1000],
    )
    .unwrap();
    let dest2 = tempfile::tempdir().unwrap();
    let o = edgetune(&[
        "models",
        "install",
        "--from",
        bad_src.path().to_str().unwrap(),
        "--models-dir",
        dest2.path().to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("expected 0552f83c") && e.contains("sha256 is "),
        "{e}"
    );
    assert_eq!(std::fs::read_dir(dest2.path()).unwrap().count(), 0);

    // no source at all: say which file to put where
    let o = edgetune(&[
        "models",
        "install",
        "--from",
        "/nonexistent",
        "--models-dir",
        dest2.path().to_str().unwrap(),
    ]);
    let e = stderr(&o);
    assert!(
        !o.status.success()
            && e.contains("mobilenet_v2_1.0_224_features.onnx")
            && e.contains("by hand"),
        "{e}"
    );
}

#[test]
fn custom_onnx_with_flags_and_embed_json() {
    // the full ImageNet model, described only by flags and cut at `features`
    let model = imagenet_spec().path;
    let photo = shared().join("models/photos/cat.bmp");
    let o = edgetune(&[
        "embed",
        photo.to_str().unwrap(),
        "--json",
        "--model",
        model.to_str().unwrap(),
        "--input",
        "input",
        "--cut",
        "features",
        "--size",
        "224",
        "--norm",
        "tf",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let a: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let o = edgetune(&[
        "embed",
        photo.to_str().unwrap(),
        "--json",
        "--models-dir",
        shared().join("models").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let b: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let fa: Vec<f32> = serde_json::from_value(a["features"].clone()).unwrap();
    let fb: Vec<f32> = serde_json::from_value(b["features"].clone()).unwrap();
    assert_eq!(fa.len(), 1280);
    assert!(max_abs_diff(&fa, &fb) < 1e-5);
    assert_ne!(
        a["fingerprint"], b["fingerprint"],
        "different model files, different fingerprints"
    );

    // a cut that does not exist: one line naming the file
    let o = edgetune(&[
        "embed",
        photo.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--input",
        "input",
        "--cut",
        "nope",
        "--size",
        "224",
        "--norm",
        "tf",
    ]);
    let e = stderr(&o);
    assert!(
        !o.status.success() && e.contains("nope") && e.contains("imagenet.onnx"),
        "{e}"
    );
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
}

#[test]
fn extract_reports_and_info_shows_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for (label, file) in [("cat", "cat.bmp"), ("parrot", "parrot.jpg")] {
        std::fs::create_dir_all(data.join(label)).unwrap();
        std::fs::copy(
            shared().join("models/photos").join(file),
            data.join(label).join(file),
        )
        .unwrap();
    }
    std::fs::write(data.join("cat/broken.jpg"), b"not a jpeg").unwrap();
    std::fs::write(data.join("cat/notes.txt"), b"ignored").unwrap();
    let cache = tmp.path().join("c.redb");
    let models = shared().join("models");
    let args = |json: bool| {
        let mut v = vec![
            "extract".to_string(),
            data.to_str().unwrap().into(),
            "--models-dir".into(),
            models.to_str().unwrap().into(),
            "--cache".into(),
            cache.to_str().unwrap().into(),
        ];
        if json {
            v.push("--json".into());
        }
        v
    };
    let o = Command::new(bin()).args(args(true)).output().unwrap();
    assert!(
        o.status.success(),
        "skipped images are not fatal: {}",
        stderr(&o)
    );
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["extracted"], 2);
    assert_eq!(j["ignored"], 1);
    let skipped = j["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0]["file"].as_str().unwrap().ends_with("broken.jpg"));
    let o = Command::new(bin()).args(args(false)).output().unwrap();
    let e = stderr(&o);
    assert!(
        e.contains("2 from cache") && e.contains("skipped") && e.contains("broken.jpg"),
        "{e}"
    );

    let o = edgetune(&[
        "info",
        "--json",
        "--models-dir",
        models.to_str().unwrap(),
        "--cache",
        cache.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["cache"]["entries_this_backbone"], 2);
    assert_eq!(j["manifest"]["feature_dim"], 1280);
    assert!(j["simd"].as_str().is_some());

    // a missing dataset folder is fatal and named
    let o = edgetune(&[
        "extract",
        "/no/such/dir",
        "--models-dir",
        models.to_str().unwrap(),
        "--cache",
        cache.to_str().unwrap(),
    ]);
    assert!(!o.status.success() && stderr(&o).contains("/no/such/dir"));
}
