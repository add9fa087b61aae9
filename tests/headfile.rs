//! The head file: round trip, and one-line errors for every way it can be
//! wrong (truncated, corrupt, foreign, other version, other backbone).

use edgetune::head::{Head, HeadConfig};
use edgetune::headfile::{BackboneInfo, HeadFile};
use edgetune::manifest::Manifest;
use ndarray::Array2;

fn backbone() -> BackboneInfo {
    let manifest = Manifest::builtin("mobilenet_v2_1.0_224_features").unwrap();
    BackboneInfo {
        name: manifest.name.clone(),
        fingerprint: manifest.fingerprint(&manifest.sha256),
        model_sha256: manifest.sha256.clone(),
        manifest,
    }
}

fn sample_head(hidden: &[usize], standardize: bool) -> Head {
    let mut h = Head::new(40, 3, &HeadConfig::mlp(hidden, 0.1), 7);
    if standardize {
        let x = Array2::from_shape_fn((10, 40), |(i, j)| ((i * 40 + j) as f32).sin());
        h.standardizer = Some(edgetune::head::Standardizer::fit(x.view()));
    }
    h
}

fn labels() -> Vec<String> {
    vec!["ants".into(), "abeilles 🐝".into(), "wasp queen".into()]
}

fn saved(hidden: &[usize], standardize: bool) -> (tempfile::TempDir, std::path::PathBuf, Head) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("head.safetensors");
    let head = sample_head(hidden, standardize);
    let mut f = HeadFile::new(
        head.clone(),
        labels(),
        backbone(),
        serde_json::json!({"epochs": 3}),
    );
    f.save(&path).unwrap();
    (dir, path, head)
}

fn load_err(path: &std::path::Path) -> String {
    match HeadFile::load(path) {
        Ok(_) => panic!("{} should not load", path.display()),
        Err(e) => {
            let s = format!("{e:#}");
            assert!(
                s.contains(&path.display().to_string()),
                "error must name the file: {s}"
            );
            assert!(!s.contains('\n'), "one line: {s}");
            s
        }
    }
}

#[test]
fn round_trip_keeps_weights_labels_and_predictions() {
    for (hidden, std) in [(&[][..], false), (&[16][..], true), (&[16, 8][..], false)] {
        let (_d, path, head) = saved(hidden, std);
        let f = HeadFile::load(&path).unwrap();
        assert_eq!(f.head.layers, head.layers);
        assert_eq!(f.head.standardizer.is_some(), std);
        assert_eq!(f.meta.labels, labels());
        assert_eq!(f.meta.config.hidden, hidden);
        assert_eq!(f.meta.training["epochs"], 3);
        let x = Array2::from_shape_fn((5, 40), |(i, j)| (i as f32 - j as f32) / 10.0);
        assert_eq!(f.head.predict_proba(x.view()), head.predict_proba(x.view()));
    }
}

#[test]
fn saving_over_a_head_replaces_it_whole() {
    let (_d, path, _) = saved(&[16], true);
    let mut other = HeadFile::new(
        sample_head(&[], false),
        labels(),
        backbone(),
        serde_json::Value::Null,
    );
    other.save(&path).unwrap();
    assert!(HeadFile::load(&path).unwrap().meta.config.hidden.is_empty());
    let siblings = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
    assert_eq!(siblings, 1, "no temporary files left behind");
}

#[test]
fn truncated_file_is_refused() {
    let (_d, path, _) = saved(&[16], true);
    let bytes = std::fs::read(&path).unwrap();
    for cut in [0, 7, 100, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        load_err(&path);
    }
}

#[test]
fn flipped_weight_byte_is_caught_by_the_checksum() {
    let (_d, path, _) = saved(&[16], false);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let e = load_err(&path);
    assert!(e.contains("corrupt"), "{e}");
}

#[test]
fn foreign_files_and_other_versions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.safetensors");
    std::fs::write(&text, "hello").unwrap();
    load_err(&text);

    // a valid safetensors file that is not an edgetune head
    let plain = dir.path().join("plain.safetensors");
    let data = vec![0u8; 16];
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![4], &data).unwrap();
    std::fs::write(
        &plain,
        safetensors::serialize([("w", view)], &None).unwrap(),
    )
    .unwrap();
    assert!(load_err(&plain).contains("not an edgetune head"));

    // a future format version
    let (_d, path, _) = saved(&[], false);
    let bytes = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + header_len].to_vec()).unwrap();
    let new_header = header.replace("\\\"format_version\\\":1", "\\\"format_version\\\":9");
    assert_ne!(header, new_header, "test must find the version field");
    let mut out = (new_header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(new_header.as_bytes());
    out.extend_from_slice(&bytes[8 + header_len..]);
    std::fs::write(&path, out).unwrap();
    assert!(load_err(&path).contains("version 9"));
}

#[test]
fn shapes_that_do_not_match_the_metadata_are_refused() {
    let (_d, path, _) = saved(&[16], false);
    let bytes = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + header_len].to_vec()).unwrap();
    // claim a 32-wide hidden layer while the tensors hold 16
    let new_header = header.replace("\\\"hidden\\\":[16]", "\\\"hidden\\\":[32]");
    assert_ne!(header, new_header);
    let mut out = (new_header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(new_header.as_bytes());
    out.extend_from_slice(&bytes[8 + header_len..]);
    std::fs::write(&path, out).unwrap();
    assert!(load_err(&path).contains("shape"));
}

#[test]
fn head_from_another_backbone_is_refused_by_name() {
    let (_d, path, _) = saved(&[], false);
    let f = HeadFile::load(&path).unwrap();
    let e = f
        .check_backbone(&path, "0123456789abcdef0123456789abcdef", "other_net")
        .unwrap_err();
    let s = format!("{e:#}");
    assert!(
        s.contains("other_net") && s.contains("mobilenet_v2_1.0_224_features"),
        "{s}"
    );
    f.check_backbone(&path, &backbone().fingerprint, "x")
        .unwrap();
}
