//! The stem: a network's first, regular conv on the few channels of an
//! image (MobileNetV2: 3 → 32, 3x3, stride 2, then ReLU6), as im2col from
//! the channel-first input straight into the packed GEMM of
//! [`crate::kernels`], with the bias and the clamp in its epilogue and a
//! channel-last output: the custom tract op [`StemConv`] and the rewrite
//! that puts it in place ([`fuse_stem`]).
//!
//! Why: tract runs the stem as a transpose of the input to NHWC, a pad, an
//! im2col, a matmul and a separate ReLU6 pass, ~2 ms of its ~9 ms per image
//! here, for 11 M multiply-adds. Here it is one pass building the
//! `[pixels, cin·kh·kw]` patch matrix (27 values a pixel, zero padding
//! included) and one GEMM.
//!
//! Only convs with at most [`MAX_CIN`] input channels are taken: the patch
//! matrix is `kh·kw` times the input, cheap for an image, not for a deep
//! layer. On by default where [`crate::pwconv::enabled`] is (same kernels);
//! `EDGETUNE_STEMCONV=0` turns it off.

use anyhow::{Context as _, ensure};

use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};
use tract_onnx::tract_core::ops::nn::DataFormat;

use crate::fusion::{self, Follow};
use crate::kernels::{Epilogue, Mat, MatMut, PackedB};
use crate::pwconv::kernels;

/// Widest input a stem conv may have.
pub const MAX_CIN: usize = 4;

/// Shape of one image's conv: input `[cin, h, w]` (channel-first), output
/// `[oh, ow, cout]` (channel-last), `kh × kw` taps, `stride`, zero padding
/// `pad_top` / `pad_left` before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StemGeometry {
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub oh: usize,
    pub ow: usize,
    pub cout: usize,
}

impl StemGeometry {
    /// Values in one pixel's patch (a row of the patch matrix).
    pub fn patch_len(&self) -> usize {
        self.cin * self.kh * self.kw
    }

    /// Fills `patches` (`[oh·ow, cin·kh·kw]`, row-major) from one image `x`
    /// (`[cin, h, w]`): row `oy·ow + ox`, column `(c·kh + ky)·kw + kx` is the
    /// input under tap `(ky, kx)` of channel `c`, or 0 in the padding. The
    /// column order is ONNX's OIHW kernel order, so the weights need no
    /// reordering beyond a transpose.
    pub fn im2col(&self, x: &[f32], patches: &mut [f32]) {
        let g = self;
        let k = g.patch_len();
        assert!(x.len() == g.cin * g.h * g.w && patches.len() == g.oh * g.ow * k);
        for oy in 0..g.oh {
            let iy0 = (oy * g.stride) as isize - g.pad_top as isize;
            for ox in 0..g.ow {
                let ix0 = (ox * g.stride) as isize - g.pad_left as isize;
                let row = &mut patches[(oy * g.ow + ox) * k..][..k];
                let mut col = 0;
                for c in 0..g.cin {
                    let plane = &x[c * g.h * g.w..][..g.h * g.w];
                    for ky in 0..g.kh {
                        let iy = iy0 + ky as isize;
                        let inside_y = iy >= 0 && (iy as usize) < g.h;
                        for kx in 0..g.kw {
                            let ix = ix0 + kx as isize;
                            row[col] = if inside_y && ix >= 0 && (ix as usize) < g.w {
                                plane[iy as usize * g.w + ix as usize]
                            } else {
                                0.0
                            };
                            col += 1;
                        }
                    }
                }
            }
        }
    }
}

/// The op: channel-first `[n, cin, h, w]` in, channel-last
/// `[n, oh, ow, cout]` out, `y = clamp(conv(x) + b, lo, hi)`.
#[derive(Debug, Clone)]
pub struct StemConv {
    pub geo: StemGeometry,
    pub lo: f32,
    pub hi: f32,
    pub bias: Arc<Vec<f32>>,
    /// The kernel as `[cin·kh·kw, cout]`, packed for [`kernels`].
    packed: Arc<PackedB>,
}

impl PartialEq for StemConv {
    fn eq(&self, o: &Self) -> bool {
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        self.geo == o.geo
            && (self.lo.to_bits(), self.hi.to_bits()) == (o.lo.to_bits(), o.hi.to_bits())
            && bits(self.packed.data()) == bits(o.packed.data())
            && bits(&self.bias) == bits(&o.bias)
    }
}
impl Eq for StemConv {}

impl StemConv {
    /// From a kernel `[cout, cin, kh, kw]` (OIHW) and a bias `[cout]`.
    pub fn from_oihw(geo: StemGeometry, kernel: &[f32], bias: &[f32]) -> TractResult<StemConv> {
        let k = geo.patch_len();
        ensure!(kernel.len() == geo.cout * k && bias.len() == geo.cout);
        let mut w = vec![0f32; k * geo.cout];
        for o in 0..geo.cout {
            for i in 0..k {
                w[i * geo.cout + o] = kernel[o * k + i];
            }
        }
        Ok(StemConv {
            geo,
            lo: f32::NEG_INFINITY,
            hi: f32::INFINITY,
            bias: Arc::new(bias.to_vec()),
            packed: Arc::new(kernels().pack_b(Mat::new(&w, k, geo.cout))),
        })
    }

    /// One image: `x` `[cin, h, w]` → `y` `[oh, ow, cout]`; `patches` is
    /// scratch of `oh·ow·cin·kh·kw` values.
    pub fn run(&self, x: &[f32], patches: &mut [f32], y: &mut [f32]) {
        let g = &self.geo;
        let m = g.oh * g.ow;
        self.geo.im2col(x, patches);
        let epi = Epilogue {
            bias: &self.bias,
            lo: self.lo,
            hi: self.hi,
            residual: None,
        };
        kernels().gemm_packed(
            Mat::new(patches, m, g.patch_len()),
            &self.packed,
            &epi,
            MatMut::new(y, m, g.cout),
        );
    }
}

impl Op for StemConv {
    fn name(&self) -> StaticName {
        "EdgetuneStemConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let g = &self.geo;
        Ok(vec![format!(
            "{}x{}x{} -> {}x{}x{} {}x{} stride {} pad {},{} clamp [{}, {}] ({})",
            g.cin,
            g.h,
            g.w,
            g.oh,
            g.ow,
            g.cout,
            g.kh,
            g.kw,
            g.stride,
            g.pad_top,
            g.pad_left,
            self.lo,
            self.hi,
            kernels().isa().name()
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for StemConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let g = &self.geo;
        let x = &inputs[0];
        let shape = x.shape();
        ensure!(
            shape.len() == 4 && shape[1..] == [g.cin, g.h, g.w],
            "{}: input {shape:?}, expected [n, {}, {}, {}]",
            self.name(),
            g.cin,
            g.h,
            g.w
        );
        let n = shape[0];
        let xv = x.to_plain_array_view::<f32>()?;
        let xs = xv.as_slice().context("stemconv: input not contiguous")?;
        let mut y = unsafe { Tensor::uninitialized::<f32>(&[n, g.oh, g.ow, g.cout])? };
        thread_local! {
            // the patch matrix, per thread (one plan per core), grow-only
            static PATCHES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let len = g.oh * g.ow * g.patch_len();
        let mut yv = y.to_plain_array_view_mut::<f32>()?;
        let ys = yv
            .as_slice_mut()
            .context("stemconv: output not contiguous")?;
        PATCHES.with_borrow_mut(|patches| {
            if patches.len() < len {
                patches.resize(len, 0.0);
            }
            for (xi, yi) in xs
                .chunks_exact(g.cin * g.h * g.w)
                .zip(ys.chunks_exact_mut(g.oh * g.ow * g.cout))
            {
                self.run(xi, &mut patches[..len], yi);
            }
        });
        drop(yv);
        Ok(tvec!(y.into_tvalue()))
    }
}

impl TypedOp for StemConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let g = &self.geo;
        let f = inputs[0];
        ensure!(
            f.datum_type == f32::datum_type(),
            "{}: f32 only",
            self.name()
        );
        ensure!(f.rank() == 4, "{}: rank 4 NCHW input only", self.name());
        for (d, want) in f.shape.iter().skip(1).zip([g.cin, g.h, g.w]) {
            ensure!(
                *d == want.to_dim(),
                "{}: input {:?} is not [n, {}, {}, {}]",
                self.name(),
                f.shape,
                g.cin,
                g.h,
                g.w
            );
        }
        let n = f.shape[0].clone();
        Ok(tvec!(f32::fact(&[
            n,
            g.oh.to_dim(),
            g.ow.to_dim(),
            g.cout.to_dim()
        ])))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let g = &self.geo;
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            inputs[0].shape[0].clone() * (g.oh * g.ow * g.cout * g.patch_len())
        )))
    }

    /// Swallows a following ReLU6 (or any scalar clamp).
    fn declutter(
        &self,
        model: &TypedModel,
        node: &TypedNode,
    ) -> TractResult<Option<TypedModelPatch>> {
        let Some(f) = fusion::next(model, node, (self.lo, self.hi), false)? else {
            return Ok(None);
        };
        let Follow::Clamp { lo, hi } = f.follow else {
            return Ok(None);
        };
        let op = StemConv {
            lo,
            hi,
            ..self.clone()
        };
        f.patch(model, node, op).map(Some)
    }

    as_op!();
}

/// What [`fuse_stem`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// `Conv` nodes replaced by [`StemConv`].
    pub replaced: usize,
}

/// Whether the rewrite is on: where [`crate::pwconv::enabled`] is, unless
/// `EDGETUNE_STEMCONV=0`.
pub fn enabled() -> bool {
    crate::pwconv::enabled() && !std::env::var("EDGETUNE_STEMCONV").is_ok_and(|v| v == "0")
}

/// The plan-building step: runs [`rewrite`] before tract's `conv_nhwc`,
/// unless [`enabled`] says no.
pub fn fuse_stem(mut model: TypedModel) -> TractResult<TypedModel> {
    if enabled() {
        rewrite(&mut model)?;
    }
    Ok(model)
}

/// Replaces every matching conv by [`StemConv`] and a move back to NCHW
/// (which cancels against the next conv's move to NHWC in declutter).
pub fn rewrite(model: &mut TypedModel) -> TractResult<Report> {
    let replaced = fusion::replace_convs(model, patch_for)?;
    Ok(Report { replaced })
}

fn patch_for(
    model: &TypedModel,
    node: &TypedNode,
    op: &Conv,
) -> TractResult<Option<TypedModelPatch>> {
    let ps = &op.pool_spec;
    rule_if!(op.q_params.is_none());
    rule_if!(ps.data_format == DataFormat::NCHW);
    rule_if!(op.kernel_fmt == KernelFormat::OIHW);
    rule_if!(op.group == 1);
    rule_if!(ps.kernel_shape.len() == 2);
    let (kh, kw) = (ps.kernel_shape[0], ps.kernel_shape[1]);
    rule_if!(kh * kw > 1); // 1x1: pwconv's
    let (cin, cout) = (ps.input_channels, ps.output_channels);
    rule_if!((1..=MAX_CIN).contains(&cin) && cout >= 1);
    rule_if!(ps.dilations().iter().all(|&d| d == 1));
    let strides = ps.strides();
    rule_if!(strides[0] == strides[1] && strides[0] >= 1);
    rule_if!(node.inputs.len() == 2 || node.inputs.len() == 3);
    let x = model.outlet_fact(node.inputs[0])?;
    rule_if!(x.datum_type == f32::datum_type() && x.rank() == 4);
    rule_if_some!(shape = x.shape.as_concrete());
    rule_if!(shape[1] == cin);
    let (h, w) = (shape[2], shape[3]);
    rule_if_some!(kernel = model.outlet_fact(node.inputs[1])?.konst.clone());
    rule_if!(kernel.shape() == [cout, cin, kh, kw] && kernel.datum_type() == f32::datum_type());
    rule_if_some!(bias = fusion::conv_bias(model, node, cout)?);
    let pads = ps.computed_padding(&[h, w]);
    rule_if!(pads[0].pad_before < kh && pads[1].pad_before < kw);
    let geo = StemGeometry {
        cin,
        h,
        w,
        kh,
        kw,
        stride: strides[0],
        pad_top: pads[0].pad_before,
        pad_left: pads[1].pad_before,
        oh: pads[0].convoluted,
        ow: pads[1].convoluted,
        cout,
    };
    rule_if!(geo.oh >= 1 && geo.ow >= 1);
    let k: Vec<f32> = kernel
        .to_plain_array_view::<f32>()?
        .iter()
        .copied()
        .collect();
    let stem = StemConv::from_oihw(geo, &k, &bias)?;

    let name = &node.name;
    let mut patch = TypedModelPatch::new(format!("stemconv {name}"));
    let input = patch.tap_model(model, node.inputs[0])?;
    let y = patch.wire_node(name, stem, &[input])?;
    let y = patch.wire_node(format!("{name}.nhwc_out"), AxisOp::Move(3, 1), &y)?;
    patch.shunt_outside(model, node.id.into(), y[0])?;
    patch.obliterate(node.id)?;
    Ok(Some(patch))
}
