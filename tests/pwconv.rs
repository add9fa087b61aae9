//! The hand-written NHWC 1x1 conv (src/pwconv): the pre-packed GEMM with
//! fused epilogue of every kernel table against the scalar reference, the
//! tract op against tract's own conv (with ReLU6 and a residual add), and
//! the whole backbone with the rewrite against ORT's features.

mod common;

use common::convs::*;
use common::*;
use edgetune::kernels::{Epilogue, Isa, Kernels, Mat, MatMut};
use edgetune::pwconv::{self, PwConv};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec, PoolSpec};
use tract_onnx::tract_core::ops::math;
use tract_onnx::tract_core::ops::nn::DataFormat;

fn tables() -> Vec<Kernels> {
    Isa::ALL.into_iter().filter_map(Kernels::for_isa).collect()
}

#[test]
fn every_packed_gemm_matches_the_scalar_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let scalar = Kernels::scalar();
    let mut cases = 0;
    for &m in &[1, 3, 7, 12, 13, 50, 121, 250] {
        for &k in &[1, 3, 16, 17, 255, 256, 257, 520] {
            for &n in &[1, 5, 16, 17, 33, 96, 100] {
                if m * k * n > 1_000_000 {
                    continue;
                }
                let a = random(&mut rng, m * k);
                let b = random(&mut rng, k * n);
                let bias = random(&mut rng, n);
                let r = random(&mut rng, m * n);
                for (lo, hi, res) in [
                    (f32::NEG_INFINITY, f32::INFINITY, false),
                    (0.0, 6.0, false),
                    (-0.3, 0.4, true),
                    (f32::NEG_INFINITY, f32::INFINITY, true),
                ] {
                    let epi = Epilogue {
                        bias: &bias,
                        lo,
                        hi,
                        residual: res.then(|| Mat::new(&r, m, n)),
                    };
                    let mut want = vec![f32::NAN; m * n];
                    scalar.gemm_packed(
                        Mat::new(&a, m, k),
                        &scalar.pack_b(Mat::new(&b, k, n)),
                        &epi,
                        MatMut::new(&mut want, m, n),
                    );
                    assert!(want.iter().all(|v| v.is_finite()));
                    // A as is (read in place where the kernel can) and
                    // transposed in memory (always packed)
                    let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
                    for t in tables() {
                        let packed = t.pack_b(Mat::new(&b, k, n));
                        for (layout, am) in [
                            ("row-major", Mat::new(&a, m, k)),
                            ("transposed", Mat::new(&at, k, m).t()),
                        ] {
                            let mut got = vec![f32::NAN; m * n];
                            t.gemm_packed(am, &packed, &epi, MatMut::new(&mut got, m, n));
                            let d = max_rel(&got, &want);
                            assert!(
                                d < 1e-5 * (k as f32).sqrt().max(1.0),
                                "{} vs scalar ({layout} A): {d} on m{m} k{k} n{n} clamp [{lo}, {hi}] residual {res}",
                                t.isa()
                            );
                        }
                    }
                    cases += 1;
                }
            }
        }
    }
    assert!(cases > 500, "{cases}");
}

#[test]
fn the_reference_is_a_plain_product() {
    // 2x2 · 2x3, bias, clamp, residual, by hand
    let a = [1.0, 2.0, 3.0, 4.0];
    let b = [1.0, 0.0, -1.0, 0.5, 2.0, 1.0];
    let bias = [0.0, 1.0, -10.0];
    let r = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0];
    let s = Kernels::scalar();
    let mut c = [0.0; 6];
    let epi = Epilogue {
        bias: &bias,
        lo: -5.0,
        hi: 6.0,
        residual: Some(Mat::new(&r, 2, 3)),
    };
    s.gemm_packed(
        Mat::new(&a, 2, 2),
        &s.pack_b(Mat::new(&b, 2, 3)),
        &epi,
        MatMut::new(&mut c, 2, 3),
    );
    // A·B = [[2, 4, 1], [5, 8, 1]]; + bias = [[2, 5, -9], [5, 9, -9]]; clamp; + r
    assert_eq!(c, [3.0, 6.0, -4.0, 5.0, 6.0, -5.0]);
}

#[test]
#[should_panic(expected = "packed for")]
fn b_packed_for_another_isa_is_refused() {
    let s = Kernels::scalar();
    let p = Kernels::portable();
    let b = [1.0f32; 4];
    let a = [1.0f32; 2];
    let mut c = [0.0f32; 2];
    let bias = [0.0f32; 2];
    let epi = Epilogue {
        bias: &bias,
        lo: f32::NEG_INFINITY,
        hi: f32::INFINITY,
        residual: None,
    };
    p.gemm_packed(
        Mat::new(&a, 1, 2),
        &s.pack_b(Mat::new(&b, 2, 2)),
        &epi,
        MatMut::new(&mut c, 1, 2),
    );
}

fn conv1x1(
    model: &mut TypedModel,
    name: &str,
    x: OutletId,
    cin: usize,
    cout: usize,
    rng: &mut ChaCha8Rng,
) -> OutletId {
    let k = Tensor::from_shape(&[cout, cin, 1, 1], &random(rng, cin * cout)).unwrap();
    let b = Tensor::from_shape(
        &[cout],
        &random(rng, cout)
            .iter()
            .map(|v| v * 2.0)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let k = model.add_const(format!("{name}.k"), k).unwrap();
    let b = model.add_const(format!("{name}.b"), b).unwrap();
    let conv = Conv {
        pool_spec: PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec!(1, 1),
            padding: PaddingSpec::Valid,
            dilations: None,
            strides: None,
            input_channels: cin,
            output_channels: cout,
        },
        kernel_fmt: KernelFormat::OIHW,
        group: 1,
        q_params: None,
    };
    model.wire_node(name, conv, &[x, k, b]).unwrap()[0]
}

fn relu6(model: &mut TypedModel, name: &str, y: OutletId) -> OutletId {
    let zero = model
        .add_const(format!("{name}.zero"), tensor4(&[[[[0f32]]]]))
        .unwrap();
    let six = model
        .add_const(format!("{name}.six"), tensor4(&[[[[6f32]]]]))
        .unwrap();
    let y = model
        .wire_node(format!("{name}.max"), math::max(), &[y, zero])
        .unwrap()[0];
    model
        .wire_node(format!("{name}.min"), math::min(), &[y, six])
        .unwrap()[0]
}

/// An inverted-residual-like block: expand 1x1 + ReLU6, project 1x1, add the input.
fn block_model(seed: u64, n: usize, c: usize, h: usize, w: usize, expand: usize) -> TypedModel {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact([n, c, h, w])).unwrap();
    let e = conv1x1(&mut model, "expand", x, c, c * expand, &mut rng);
    let e = relu6(&mut model, "expand.relu6", e);
    let p = conv1x1(&mut model, "project", e, c * expand, c, &mut rng);
    let y = model.wire_node("add", math::add(), &[p, x]).unwrap()[0];
    model.select_output_outlets(&[y]).unwrap();
    model
}

#[test]
fn the_op_matches_tracts_conv_with_relu6_and_residual() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    for &(n, c, h, w, e) in &[
        (1, 1, 1, 1, 1),
        (1, 3, 5, 7, 6),
        (2, 16, 7, 7, 6),
        (1, 24, 14, 13, 6),
        (1, 17, 3, 4, 2),
    ] {
        let seed = rng.r#gen::<u64>();
        let input = Tensor::from_shape(&[n, c, h, w], &random(&mut rng, n * c * h * w)).unwrap();
        let want = conv_nhwc(block_model(seed, n, c, h, w, e))
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap()
            .run(tvec![input.clone().into_tvalue()])
            .unwrap()
            .remove(0);
        let mut m = block_model(seed, n, c, h, w, e);
        assert_eq!(pwconv::rewrite(&mut m).unwrap().replaced, 2);
        let m = conv_nhwc(m).into_decluttered().unwrap();
        let ops = ops_of(&m);
        let pws: Vec<&PwConv> = m.nodes.iter().filter_map(|n| n.op_as::<PwConv>()).collect();
        assert_eq!(pws.len(), 2, "{ops:?}");
        assert!(
            !ops.iter()
                .any(|o| o == "Conv" || o == "Max" || o == "Min" || o == "Add"),
            "not all fused: {ops:?}"
        );
        let expand = pws.iter().find(|p| p.cout == c * e && p.cin == c).unwrap();
        let project = pws
            .iter()
            .find(|p| p.cin == c * e && p.cout == c && *p != expand)
            .unwrap();
        assert_eq!((expand.lo, expand.hi, expand.residual), (0.0, 6.0, false));
        assert_eq!(
            (project.lo, project.hi, project.residual),
            (f32::NEG_INFINITY, f32::INFINITY, true)
        );
        let got = m
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap()
            .run(tvec![input.into_tvalue()])
            .unwrap()
            .remove(0);
        assert_eq!(got.shape(), want.shape());
        let d = max_rel(&values(&got), &values(&want));
        assert!(d < 1e-5, "n{n} c{c} {h}x{w} x{e}: {d}");
    }
}

#[test]
fn convs_it_does_not_handle_are_left_to_tract() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact([1, 4, 6, 6])).unwrap();
    let k = model
        .add_const(
            "k",
            Tensor::from_shape(&[4, 4, 1, 1], &random(&mut rng, 16)).unwrap(),
        )
        .unwrap();
    // stride 2
    let conv = Conv {
        pool_spec: PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec!(1, 1),
            padding: PaddingSpec::Valid,
            dilations: None,
            strides: Some(tvec!(2, 2)),
            input_channels: 4,
            output_channels: 4,
        },
        kernel_fmt: KernelFormat::OIHW,
        group: 1,
        q_params: None,
    };
    let b = model
        .add_const("b", Tensor::from_shape(&[4], &[0f32; 4]).unwrap())
        .unwrap();
    let y = model.wire_node("conv", conv, &[x, k, b]).unwrap();
    model.select_output_outlets(&y).unwrap();
    assert_eq!(pwconv::rewrite(&mut model).unwrap().replaced, 0);
}

/// MobileNetV2 as the backbone builds it: every 1x1 conv replaced, every
/// ReLU6 after one and every residual add fused, features as ORT's.
#[test]
fn backbone_rewrite_replaces_every_pointwise_conv() {
    let path = features_spec().path;
    let model = tract_onnx::onnx().model_for_path(&path).unwrap();
    let model = model
        .with_input_fact(0, f32::fact([1, 3, 224, 224]).into())
        .unwrap();
    let mut model = model.into_typed().unwrap();
    edgetune::dwconv::rewrite(&mut model).unwrap();
    let report = pwconv::rewrite(&mut model).unwrap();
    let model = conv_nhwc(model)
        .into_decluttered()
        .unwrap()
        .into_optimized()
        .unwrap();
    let pws: Vec<&PwConv> = model
        .nodes
        .iter()
        .filter_map(|n| n.op_as::<PwConv>())
        .collect();
    let ops = ops_of(&model);
    eprintln!("ops after the rewrites: {ops:?}");
    // 16 expand (the first block has none) + 17 project + the last 320 -> 1280
    assert_eq!(report.replaced, 34);
    assert_eq!(pws.len(), 34);
    assert_eq!(
        pws.iter().filter(|p| (p.lo, p.hi) == (0.0, 6.0)).count(),
        17
    );
    assert_eq!(pws.iter().filter(|p| p.residual).count(), 10);
    assert!(!ops.iter().any(|o| o == "Add"), "{ops:?}");

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
