//! The hand-written stem conv (src/stemconv): im2col against a plain
//! convolution, the op against tract's conv (+ ReLU6) for several
//! strides, paddings and kernel sizes, and MobileNetV2's stem replaced.

mod common;

use common::convs::*;
use common::*;
use edgetune::stemconv::{self, StemConv, StemGeometry};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec, PoolSpec};
use tract_onnx::tract_core::ops::math;
use tract_onnx::tract_core::ops::nn::DataFormat;

#[test]
fn im2col_is_a_plain_convolution() {
    // 1 channel 3x3 image, 2x2 kernel, stride 1, pad 1 before: patch of
    // output (0, 0) covers (-1..1, -1..1): three zeros and x[0][0]
    let g = StemGeometry {
        cin: 1,
        h: 3,
        w: 3,
        kh: 2,
        kw: 2,
        stride: 1,
        pad_top: 1,
        pad_left: 1,
        oh: 4,
        ow: 4,
        cout: 1,
    };
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let mut p = vec![f32::NAN; 16 * 4];
    g.im2col(&x, &mut p);
    assert_eq!(&p[..4], &[0.0, 0.0, 0.0, 1.0]);
    // output (1, 1) covers rows 0..2, cols 0..2
    assert_eq!(&p[5 * 4..6 * 4], &[1.0, 2.0, 4.0, 5.0]);
    // output (3, 3) covers (2..4, 2..4): x[2][2] then padding
    assert_eq!(&p[15 * 4..], &[9.0, 0.0, 0.0, 0.0]);
}

#[allow(clippy::too_many_arguments)]
fn stem_model(
    seed: u64,
    cin: usize,
    cout: usize,
    hw: (usize, usize),
    k: usize,
    stride: usize,
    padding: PaddingSpec,
    clip: bool,
) -> TypedModel {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut model = TypedModel::default();
    let x = model
        .add_source("x", f32::fact([1, cin, hw.0, hw.1]))
        .unwrap();
    let kt = Tensor::from_shape(&[cout, cin, k, k], &random(&mut rng, cout * cin * k * k)).unwrap();
    let b = Tensor::from_shape(&[cout], &random(&mut rng, cout)).unwrap();
    let kt = model.add_const("k", kt).unwrap();
    let b = model.add_const("b", b).unwrap();
    let conv = Conv {
        pool_spec: PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec!(k, k),
            padding,
            dilations: None,
            strides: Some(tvec!(stride, stride)),
            input_channels: cin,
            output_channels: cout,
        },
        kernel_fmt: KernelFormat::OIHW,
        group: 1,
        q_params: None,
    };
    let mut y = model.wire_node("stem", conv, &[x, kt, b]).unwrap()[0];
    if clip {
        let zero = model.add_const("zero", tensor4(&[[[[0f32]]]])).unwrap();
        let six = model.add_const("six", tensor4(&[[[[6f32]]]])).unwrap();
        y = model
            .wire_node("relu6.max", math::max(), &[y, zero])
            .unwrap()[0];
        y = model
            .wire_node("relu6.min", math::min(), &[y, six])
            .unwrap()[0];
    }
    model.select_output_outlets(&[y]).unwrap();
    model
}

#[test]
fn the_op_matches_tracts_conv() {
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let paddings = [
        PaddingSpec::SameUpper,
        PaddingSpec::Valid,
        PaddingSpec::Explicit(tvec!(1, 1), tvec!(1, 1)),
        PaddingSpec::Explicit(tvec!(0, 0), tvec!(1, 1)),
    ];
    let mut cases = 0;
    for &(cin, cout, hw) in &[
        (1, 1, (5, 5)),
        (3, 32, (17, 16)),
        (3, 8, (9, 12)),
        (4, 17, (7, 7)),
    ] {
        for k in [2, 3, 5] {
            for stride in [1, 2] {
                for padding in &paddings {
                    for clip in [false, true] {
                        let seed = rng.r#gen::<u64>();
                        let model =
                            || stem_model(seed, cin, cout, hw, k, stride, padding.clone(), clip);
                        let input = Tensor::from_shape(
                            &[1, cin, hw.0, hw.1],
                            &random(&mut rng, cin * hw.0 * hw.1),
                        )
                        .unwrap();
                        let want = conv_nhwc(model())
                            .into_optimized()
                            .unwrap()
                            .into_runnable()
                            .unwrap()
                            .run(tvec![input.clone().into_tvalue()])
                            .unwrap()
                            .remove(0);
                        let mut m = model();
                        assert_eq!(stemconv::rewrite(&mut m).unwrap().replaced, 1);
                        let m = conv_nhwc(m).into_decluttered().unwrap();
                        let stems: Vec<&StemConv> = m
                            .nodes
                            .iter()
                            .filter_map(|n| n.op_as::<StemConv>())
                            .collect();
                        assert_eq!(stems.len(), 1);
                        let want_clamp = if clip {
                            (0.0, 6.0)
                        } else {
                            (f32::NEG_INFINITY, f32::INFINITY)
                        };
                        assert_eq!((stems[0].lo, stems[0].hi), want_clamp);
                        let got = m
                            .into_optimized()
                            .unwrap()
                            .into_runnable()
                            .unwrap()
                            .run(tvec![input.into_tvalue()])
                            .unwrap()
                            .remove(0);
                        assert_eq!(
                            got.shape(),
                            want.shape(),
                            "cin{cin} k{k} s{stride} {padding:?}"
                        );
                        let d = max_rel(&values(&got), &values(&want));
                        assert!(
                            d < 1e-5,
                            "cin{cin} cout{cout} {hw:?} k{k} s{stride} {padding:?} clip {clip}: {d}"
                        );
                        cases += 1;
                    }
                }
            }
        }
    }
    assert_eq!(cases, 4 * 3 * 2 * 4 * 2);
}

#[test]
fn wide_inputs_and_pointwise_convs_are_left_alone() {
    let mut m = stem_model(1, 8, 8, (6, 6), 3, 1, PaddingSpec::SameUpper, false);
    assert_eq!(stemconv::rewrite(&mut m).unwrap().replaced, 0);
    let mut m = stem_model(1, 3, 8, (6, 6), 1, 1, PaddingSpec::Valid, false);
    assert_eq!(stemconv::rewrite(&mut m).unwrap().replaced, 0);
}

/// MobileNetV2 with all three rewrites, as the backbone builds it: nothing
/// of tract's convs is left, and the features are ORT's.
#[test]
fn mobilenet_with_every_rewrite_gives_reference_features() {
    let path = features_spec().path;
    let model = tract_onnx::onnx().model_for_path(&path).unwrap();
    let model = model
        .with_input_fact(0, f32::fact([1, 3, 224, 224]).into())
        .unwrap();
    let mut model = model.into_typed().unwrap();
    edgetune::dwconv::rewrite(&mut model).unwrap();
    edgetune::pwconv::rewrite(&mut model).unwrap();
    assert_eq!(stemconv::rewrite(&mut model).unwrap().replaced, 1);
    let model = conv_nhwc(model)
        .into_decluttered()
        .unwrap()
        .into_optimized()
        .unwrap();
    let ops: Vec<String> = model
        .nodes
        .iter()
        .map(|n| n.op().name().to_string())
        .collect();
    eprintln!("{ops:?}");
    for gone in [
        "Conv",
        "OptMatMul",
        "MoveAxis",
        "Pad",
        "OptBinChain(Max+Min)",
        "Max",
        "Min",
        "Add",
    ] {
        assert!(!ops.iter().any(|o| o == gone), "{gone} left: {ops:?}");
    }
    let stem: Vec<&StemConv> = model
        .nodes
        .iter()
        .filter_map(|n| n.op_as::<StemConv>())
        .collect();
    assert_eq!(
        (stem[0].lo, stem[0].hi, stem[0].geo.stride, stem[0].geo.cout),
        (0.0, 6.0, 2, 32)
    );
    let v = read_f32(shared().join("models/reference/chelsea_input_1x3x224x224_f32.bin"));
    let input = Tensor::from_shape(&[1, 3, 224, 224], &v).unwrap();
    let out = model
        .into_runnable()
        .unwrap()
        .run(tvec![input.into_tvalue()])
        .unwrap()
        .remove(0);
    let want = read_f32(shared().join("models/reference/chelsea_features_ort_1x1280_f32.bin"));
    let d = max_abs_diff(&values(&out), &want);
    assert!(d < 1e-4, "max |rewritten tract - ORT| = {d}");
}
