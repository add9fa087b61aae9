//! The hand-written NHWC depthwise 3x3 conv (src/dwconv): every SIMD kernel
//! against the scalar reference, the tract op against tract's own depthwise
//! conv, and the whole backbone with the rewrite against ORT's features.

mod common;

use common::convs::*;
use common::*;
use edgetune::backbone::Backbone;
use edgetune::dwconv::{self, DwConv3x3, Geometry, Isa};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec, PoolSpec};
use tract_onnx::tract_core::ops::math;
use tract_onnx::tract_core::ops::nn::DataFormat;

#[test]
fn every_kernel_matches_the_scalar_reference() {
    let isas = Isa::all_available();
    eprintln!("kernels here: {:?}, dispatch: {}", isas, Isa::best().name());
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut cases = 0;
    for &c in &[1, 3, 4, 5, 8, 15, 16, 17, 32, 33, 96, 144, 960] {
        for stride in [1, 2] {
            for &(h, w) in &[(1, 1), (2, 3), (3, 3), (5, 7), (7, 7), (9, 4), (14, 13)] {
                for pad in [[1, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0], [2, 1, 0, 2]] {
                    for (lo, hi) in [(f32::NEG_INFINITY, f32::INFINITY), (0.0, 6.0), (-0.1, 0.2)] {
                        let Ok(g) = Geometry::new(h, w, c, stride, pad, lo, hi) else {
                            continue;
                        };
                        if c >= 144 && (h > 7 || lo == -0.1) {
                            continue; // keep the big channel counts quick
                        }
                        let x = random(&mut rng, g.input_len());
                        let k = random(&mut rng, 9 * c);
                        let b = random(&mut rng, c);
                        let mut want = vec![f32::NAN; g.output_len()];
                        dwconv::dw3x3(Isa::Scalar, &g, &x, &k, &b, &mut want).unwrap();
                        assert!(want.iter().all(|v| v.is_finite()));
                        for &isa in &isas {
                            let mut got = vec![f32::NAN; g.output_len()];
                            dwconv::dw3x3(isa, &g, &x, &k, &b, &mut got).unwrap();
                            let d = max_rel(&got, &want);
                            assert!(d < 1e-5, "{} vs scalar: {d} on {g:?}", isa.name());
                        }
                        cases += 1;
                    }
                }
            }
        }
    }
    assert!(cases > 500, "{cases}");
}

#[test]
fn the_reference_is_a_plain_convolution() {
    // one channel, 3x3 input, stride 1, pad 1, all-ones kernel: box sums
    let g = Geometry::new(3, 3, 1, 1, [1, 1, 1, 1], f32::NEG_INFINITY, f32::INFINITY).unwrap();
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let mut y = vec![0.0; 9];
    dwconv::dw3x3(Isa::Scalar, &g, &x, &[1.0; 9], &[0.5], &mut y).unwrap();
    assert_eq!(y, [12.5, 21.5, 16.5, 27.5, 45.5, 33.5, 24.5, 39.5, 28.5]);
    // stride 2, same-upper on 4x4: pad 0 before, 1 after, output 2x2
    let g = Geometry::new(4, 4, 1, 2, [0, 0, 1, 1], 0.0, 40.0).unwrap();
    assert_eq!((g.oh, g.ow), (2, 2));
    let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
    let mut y = vec![0.0; 4];
    dwconv::dw3x3(Isa::best(), &g, &x, &[1.0; 9], &[0.0], &mut y).unwrap();
    assert_eq!(y, [40.0, 39.0, 40.0, 40.0]); // 45 -> 40, 39, 66 -> 40, 50 -> 40
}

#[test]
fn wrong_slice_sizes_are_errors() {
    let g = Geometry::new(5, 5, 4, 1, [1, 1, 1, 1], 0.0, 6.0).unwrap();
    let mut y = vec![0.0; g.output_len()];
    let x = vec![0.0; g.input_len() - 1];
    assert!(dwconv::dw3x3(Isa::best(), &g, &x, &[0.0; 36], &[0.0; 4], &mut y).is_err());
}

/// A model with one NCHW depthwise conv, optionally followed by Clip(0, 6)
/// in the form tract-onnx gives it (Max with 0, then Min with 6).
#[allow(clippy::too_many_arguments)]
fn dw_model(
    rng: &mut ChaCha8Rng,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    stride: usize,
    padding: PaddingSpec,
    clip: bool,
) -> TypedModel {
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact([n, c, h, w])).unwrap();
    let k = Tensor::from_shape(&[c, 1, 3, 3], &random(rng, 9 * c)).unwrap();
    let b = Tensor::from_shape(
        &[c],
        &random(rng, c).iter().map(|v| v * 3.0).collect::<Vec<_>>(),
    )
    .unwrap();
    let k = model.add_const("k", k).unwrap();
    let b = model.add_const("b", b).unwrap();
    let pool_spec = PoolSpec {
        data_format: DataFormat::NCHW,
        kernel_shape: tvec!(3, 3),
        padding,
        dilations: None,
        strides: Some(tvec!(stride, stride)),
        input_channels: c,
        output_channels: c,
    };
    let conv = Conv {
        pool_spec,
        kernel_fmt: KernelFormat::OIHW,
        group: c,
        q_params: None,
    };
    let mut y = model.wire_node("dw", conv, &[x, k, b]).unwrap()[0];
    if clip {
        let zero = model.add_const("zero", tensor4(&[[[[0f32]]]])).unwrap();
        let six = model.add_const("six", tensor4(&[[[[6f32]]]])).unwrap();
        y = model
            .wire_node("clip.min", math::max(), &[y, zero])
            .unwrap()[0];
        y = model.wire_node("clip.max", math::min(), &[y, six]).unwrap()[0];
    }
    model.select_output_outlets(&[y]).unwrap();
    model
}

#[test]
fn the_op_matches_tracts_depthwise_conv() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let paddings = [
        PaddingSpec::SameUpper,
        PaddingSpec::Valid,
        PaddingSpec::Explicit(tvec!(1, 1), tvec!(1, 1)),
        PaddingSpec::Explicit(tvec!(0, 0), tvec!(1, 1)),
    ];
    let mut cases = 0;
    for &(n, c, h, w) in &[
        (1, 1, 5, 5),
        (1, 3, 7, 9),
        (2, 17, 11, 6),
        (1, 32, 15, 15),
        (1, 96, 8, 8),
        (1, 144, 9, 7),
    ] {
        for stride in [1, 2] {
            for padding in &paddings {
                for clip in [false, true] {
                    let seed = rng.r#gen::<u64>();
                    let model = || {
                        dw_model(
                            &mut ChaCha8Rng::seed_from_u64(seed),
                            n,
                            c,
                            h,
                            w,
                            stride,
                            padding.clone(),
                            clip,
                        )
                    };
                    let input = Tensor::from_shape(&[n, c, h, w], &random(&mut rng, n * c * h * w))
                        .unwrap();
                    // tract alone, the way the backbone runs it without the rewrite
                    let tract = conv_nhwc(model())
                        .into_optimized()
                        .unwrap()
                        .into_runnable()
                        .unwrap();
                    let want = tract
                        .run(tvec![input.clone().into_tvalue()])
                        .unwrap()
                        .remove(0);
                    // the rewrite first, then the same chain
                    let mut m = model();
                    let report = dwconv::rewrite(&mut m).unwrap();
                    assert_eq!(report.replaced, 1, "{padding:?}");
                    let m = conv_nhwc(m).into_decluttered().unwrap();
                    let ops = ops_of(&m);
                    assert!(ops.iter().any(|o| o == "EdgetuneDwConv3x3"), "{ops:?}");
                    assert!(
                        !ops.iter().any(|o| o == "DepthWiseConv" || o == "Conv"),
                        "{ops:?}"
                    );
                    let dw: Vec<&DwConv3x3> = m
                        .nodes
                        .iter()
                        .filter_map(|n| n.op_as::<DwConv3x3>())
                        .collect();
                    if clip {
                        assert!(
                            !ops.iter().any(|o| o == "Max" || o == "Min"),
                            "clip not fused: {ops:?}"
                        );
                        assert_eq!((dw[0].geo.lo, dw[0].geo.hi), (0.0, 6.0));
                    } else {
                        assert_eq!(
                            (dw[0].geo.lo, dw[0].geo.hi),
                            (f32::NEG_INFINITY, f32::INFINITY)
                        );
                    }
                    let m = m.into_optimized().unwrap();
                    assert!(
                        ops_of(&m).iter().any(|o| o == "EdgetuneDwConv3x3"),
                        "{:?}",
                        ops_of(&m)
                    );
                    let got = m
                        .into_runnable()
                        .unwrap()
                        .run(tvec![input.into_tvalue()])
                        .unwrap()
                        .remove(0);
                    assert_eq!(got.shape(), want.shape());
                    let got: Vec<f32> = got
                        .to_plain_array_view::<f32>()
                        .unwrap()
                        .iter()
                        .copied()
                        .collect();
                    let want: Vec<f32> = want
                        .to_plain_array_view::<f32>()
                        .unwrap()
                        .iter()
                        .copied()
                        .collect();
                    let d = max_rel(&got, &want);
                    assert!(
                        d < 1e-5,
                        "n{n} c{c} {h}x{w} s{stride} {padding:?} clip {clip}: {d}"
                    );
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 6 * 2 * 4 * 2);
}

#[test]
fn convs_it_does_not_handle_are_left_to_tract() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // stride 3
    let mut m = dw_model(&mut rng, 1, 8, 9, 9, 3, PaddingSpec::Valid, false);
    assert_eq!(dwconv::rewrite(&mut m).unwrap().replaced, 0);
    // a regular (group 1) conv
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact([1, 4, 6, 6])).unwrap();
    let k = model
        .add_const(
            "k",
            Tensor::from_shape(&[4, 4, 3, 3], &random(&mut rng, 144)).unwrap(),
        )
        .unwrap();
    let b = model
        .add_const("b", Tensor::from_shape(&[4], &[0f32; 4]).unwrap())
        .unwrap();
    let pool_spec = PoolSpec {
        data_format: DataFormat::NCHW,
        kernel_shape: tvec!(3, 3),
        padding: PaddingSpec::SameUpper,
        dilations: None,
        strides: None,
        input_channels: 4,
        output_channels: 4,
    };
    let conv = Conv {
        pool_spec,
        kernel_fmt: KernelFormat::OIHW,
        group: 1,
        q_params: None,
    };
    let y = model.wire_node("conv", conv, &[x, k, b]).unwrap();
    model.select_output_outlets(&y).unwrap();
    assert_eq!(dwconv::rewrite(&mut model).unwrap().replaced, 0);
}

/// The backbone's own chain, by hand, to see what the rewrite did to it.
#[test]
fn backbone_rewrite_replaces_every_depthwise_conv_and_its_relu6() {
    let path = features_spec().path;
    let model = tract_onnx::onnx().model_for_path(&path).unwrap();
    let model = model
        .with_input_fact(0, f32::fact([1, 3, 224, 224]).into())
        .unwrap();
    let mut model = model.into_typed().unwrap();
    let report = dwconv::rewrite(&mut model).unwrap();
    let model = conv_nhwc(model)
        .into_decluttered()
        .unwrap()
        .into_optimized()
        .unwrap();
    let dws: Vec<&DwConv3x3> = model
        .nodes
        .iter()
        .filter_map(|n| n.op_as::<DwConv3x3>())
        .collect();
    let ops = ops_of(&model);
    eprintln!(
        "replaced {} depthwise convs ({} stride 2), {} with ReLU6 fused; DepthWiseConv left: {}, moves: {}",
        report.replaced,
        dws.iter().filter(|d| d.geo.stride == 2).count(),
        dws.iter()
            .filter(|d| (d.geo.lo, d.geo.hi) == (0.0, 6.0))
            .count(),
        ops.iter().filter(|o| *o == "DepthWiseConv").count(),
        model
            .nodes
            .iter()
            .filter(|n| matches!(n.op_as::<AxisOp>(), Some(AxisOp::Move(..))))
            .count(),
    );
    assert_eq!(report.replaced, 17);
    assert_eq!(dws.len(), 17);
    assert_eq!(dws.iter().filter(|d| d.geo.stride == 2).count(), 4);
    assert!(dws.iter().all(|d| (d.geo.lo, d.geo.hi) == (0.0, 6.0)));
    assert!(!ops.iter().any(|o| o == "DepthWiseConv"));

    let v = read_f32(shared().join("models/reference/chelsea_input_1x3x224x224_f32.bin"));
    let input = Tensor::from_shape(&[1, 3, 224, 224], &v).unwrap();
    let out = model
        .into_runnable()
        .unwrap()
        .run(tvec![input.into_tvalue()])
        .unwrap()
        .remove(0);
    let got: Vec<f32> = out
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect();
    let want = read_f32(shared().join("models/reference/chelsea_features_ort_1x1280_f32.bin"));
    let d = max_abs_diff(&got, &want);
    assert!(d < 1e-4, "max |rewritten tract - ORT| = {d}");
}

/// Through the public Backbone (the rewrite is on unless EDGETUNE_DWCONV=0).
#[test]
fn backbone_with_the_rewrite_gives_reference_features() {
    assert!(dwconv::enabled() || std::env::var("EDGETUNE_DWCONV").is_ok());
    let b = Backbone::load(&features_spec()).unwrap();
    let v = read_f32(shared().join("models/reference/chelsea_input_1x3x224x224_f32.bin"));
    let input = ndarray::Array4::from_shape_vec((1, 3, 224, 224), v).unwrap();
    let out = b.session().unwrap().run_input(input.view()).unwrap();
    let want = read_f32(shared().join("models/reference/chelsea_features_ort_1x1280_f32.bin"));
    let d = max_abs_diff(&out.features, &want);
    assert!(d < 1e-4, "max |tract - ORT| = {d}");
}
