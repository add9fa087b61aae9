//! The backbone against ONNX Runtime's reference outputs, and whole-pipeline
//! ImageNet top-1 on real photos.

mod common;

use common::*;
use edgetune::backbone::{Backbone, ModelSpec, top_k};
use edgetune::preprocess;
use ndarray::Array4;

fn reference_input() -> Array4<f32> {
    let v = read_f32(shared().join("models/reference/chelsea_input_1x3x224x224_f32.bin"));
    Array4::from_shape_vec((1, 3, 224, 224), v).unwrap()
}

#[test]
fn reference_input_gives_reference_features() {
    let b = Backbone::load(&features_spec()).unwrap();
    let out = b
        .session()
        .unwrap()
        .run_input(reference_input().view())
        .unwrap();
    let want = read_f32(shared().join("models/reference/chelsea_features_ort_1x1280_f32.bin"));
    let d = max_abs_diff(&out.features, &want);
    assert!(d < 1e-4, "max |tract - ORT| = {d}");
}

#[test]
fn imagenet_model_cut_at_features_matches_features_model_and_reference_logits() {
    let full = Backbone::load_classifier(&imagenet_spec()).unwrap();
    let cut = Backbone::load(&features_spec()).unwrap();
    let input = reference_input();
    let a = full.session().unwrap().run_input(input.view()).unwrap();
    let b = cut.session().unwrap().run_input(input.view()).unwrap();
    assert!(max_abs_diff(&a.features, &b.features) < 1e-5);
    let want = read_f32(shared().join("models/reference/chelsea_logits_ort_1x1001_f32.bin"));
    let logits = a.logits.unwrap();
    assert!(max_abs_diff(&logits, &want) < 1e-3);
    assert_eq!(top_k(&logits, 1)[0].0, 286); // Egyptian cat
}

#[test]
fn cutting_at_an_intermediate_node_works() {
    // the pooled node inside the full model, [1,1280,1,1]
    let mut spec = imagenet_spec();
    spec.manifest.cut = "MobilenetV2_Logits_AvgPool".into();
    let inner = Backbone::load(&spec).unwrap();
    let cut = Backbone::load(&features_spec()).unwrap();
    let input = reference_input();
    let a = inner.session().unwrap().run_input(input.view()).unwrap();
    let b = cut.session().unwrap().run_input(input.view()).unwrap();
    assert!(max_abs_diff(&a.features, &b.features) < 1e-5);
    assert_ne!(inner.fingerprint, cut.fingerprint);
}

#[test]
fn photos_give_documented_imagenet_top1() {
    let b = Backbone::load_classifier(&imagenet_spec()).unwrap();
    let mut s = b.session().unwrap();
    for (file, class) in [
        ("cat.bmp", 286),
        ("grace_hopper.bmp", 653),
        ("parrot.jpg", 89),
    ] {
        let img = preprocess::decode_file(&shared().join("models/photos").join(file)).unwrap();
        let out = s.run_image(&img).unwrap();
        let top = top_k(out.logits.as_ref().unwrap(), 3);
        assert_eq!(top[0].0, class, "{file}: top-3 {top:?}");
    }
}

#[test]
fn batch_matches_single_images() {
    let b = Backbone::load(&features_spec()).unwrap();
    let mut s = b.session().unwrap();
    let m = &b.manifest;
    let mut batch = preprocess::empty_input(m, 2);
    let imgs: Vec<_> = ["cat.bmp", "parrot.jpg"]
        .iter()
        .map(|f| preprocess::decode_file(&shared().join("models/photos").join(f)).unwrap())
        .collect();
    for (i, img) in imgs.iter().enumerate() {
        let rgb = preprocess::to_model_rgb(img, m);
        preprocess::normalise_into(&rgb, m, batch.slice_mut(ndarray::s![i, .., .., ..]));
    }
    let feats = s.run_batch(&batch).unwrap();
    for (i, img) in imgs.iter().enumerate() {
        let one = s.run_image(img).unwrap().features;
        assert!(max_abs_diff(feats.row(i).as_slice().unwrap(), &one) < 1e-6);
    }
}

fn err_of(spec: &ModelSpec) -> String {
    match Backbone::load(spec) {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn missing_truncated_and_miscut_models_are_one_line_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = features_spec();
    spec.path = dir.path().join("absent.onnx");
    let e = err_of(&spec);
    assert!(e.contains("absent.onnx") && e.contains("not found"), "{e}");
    assert!(!e.contains('\n'));

    let bytes = std::fs::read(features_spec().path).unwrap();
    let truncated = dir.path().join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    spec.path = truncated.clone();
    let e = err_of(&spec);
    assert!(
        e.contains("truncated.onnx") && e.contains("sha256") && e.contains(&spec.manifest.sha256),
        "{e}"
    );

    // without a sha256 to compare, tract's own parse error is reported with the file
    spec.manifest.sha256.clear();
    let e = err_of(&spec);
    assert!(e.contains("truncated.onnx"), "{e}");

    let mut spec = features_spec();
    spec.manifest.cut = "no_such_output".into();
    let e = err_of(&spec);
    assert!(
        e.contains("no_such_output") && e.contains(&spec.manifest.file),
        "{e}"
    );
    assert!(!e.contains('\n'));
}
