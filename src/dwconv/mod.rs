//! A channel-last (NHWC) 3x3 depthwise convolution, strides 1 and 2, with
//! the bias and a following clamp (ReLU6, ReLU) fused in, as a custom tract
//! op ([`DwConv3x3`]) and the graph rewrite that puts it in place of tract's
//! own depthwise convs ([`fuse_depthwise`]).
//!
//! Kernels, tract-linalg style: one scalar reference ([`scalar`]), one
//! module per instruction set ([`x86`]: AVX-512F and AVX2+FMA; [`aarch64`]:
//! NEON), one runtime dispatch ([`Isa::best`]); tests/dwconv.rs checks every
//! kernel against the reference.
//!
//! Where it plugs in. tract's `conv_nhwc` transform lowers a depthwise
//! `Conv` straight to its `DepthWise` op, whose module and fields are
//! private to tract-core, so a rewrite running after it could only match
//! that op by name and read its padding from a debug string. The rewrite
//! therefore runs on the typed model *before* `conv_nhwc`, on the public
//! `Conv` (NCHW, group == C_in == C_out, 3x3, stride 1 or 2, dilation 1,
//! constant kernel and bias), and wires exactly what `conv_nhwc` would:
//! a move of C to the last axis, the channel-last op, and the move back.
//! Those moves cancel against the neighbouring pointwise convs' in
//! declutter, as they do around tract's `DepthWise`. The op's own
//! `declutter` then swallows the `Max(x, 0)` / `Min(x, 6)` pair that ONNX
//! `Clip(0, 6)` becomes, once the moves are gone and it follows directly.
//!
//! `EDGETUNE_DWCONV=0` turns the rewrite off (tract's `DepthWise` runs);
//! it is also off when `EDGETUNE_TRACT_NHWC=0` keeps the model channel-first.

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
pub mod x86;

use std::sync::OnceLock;

use anyhow::{Context as _, ensure};

use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};
use tract_onnx::tract_core::ops::nn::DataFormat;

use crate::fusion::{self, Follow};

/// The shape of one image's conv: input `[h, w, c]`, output `[oh, ow, c]`,
/// 3x3 taps, `stride` on both axes, zero padding `pad_top` / `pad_left`
/// before (what is after follows from `oh`, `ow`), and the output clamp
/// `[lo, hi]` (infinite when nothing was fused).
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub oh: usize,
    pub ow: usize,
    pub stride: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub lo: f32,
    pub hi: f32,
}

impl Geometry {
    /// Output size from input size, stride and explicit padding.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        h: usize,
        w: usize,
        c: usize,
        stride: usize,
        pad: [usize; 4], // top, left, bottom, right
        lo: f32,
        hi: f32,
    ) -> TractResult<Geometry> {
        let (ph, pw) = (h + pad[0] + pad[2], w + pad[1] + pad[3]);
        ensure!(
            ph >= 3 && pw >= 3 && stride >= 1,
            "dw3x3: padded input {ph}x{pw} smaller than the kernel"
        );
        ensure!(
            pad.iter().all(|&p| p <= 2),
            "dw3x3: padding {pad:?} larger than 2"
        );
        let (oh, ow) = ((ph - 3) / stride + 1, (pw - 3) / stride + 1);
        Ok(Geometry {
            h,
            w,
            c,
            oh,
            ow,
            stride,
            pad_top: pad[0],
            pad_left: pad[1],
            lo,
            hi,
        })
    }

    fn key(&self) -> ([usize; 8], [u32; 2]) {
        let g = self;
        (
            [g.h, g.w, g.c, g.oh, g.ow, g.stride, g.pad_top, g.pad_left],
            [g.lo.to_bits(), g.hi.to_bits()],
        )
    }

    pub fn input_len(&self) -> usize {
        self.h * self.w * self.c
    }

    pub fn output_len(&self) -> usize {
        self.oh * self.ow * self.c
    }
}

/// The kernels this build has; [`Isa::available`] says which this CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Scalar,
    Avx2Fma,
    Avx512,
    Neon,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2Fma => "avx2+fma",
            Isa::Avx512 => "avx512f",
            Isa::Neon => "neon",
        }
    }

    pub fn available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Every kernel this CPU runs, the reference first.
    pub fn all_available() -> Vec<Isa> {
        [Isa::Scalar, Isa::Avx2Fma, Isa::Avx512, Isa::Neon]
            .into_iter()
            .filter(|i| i.available())
            .collect()
    }

    /// The runtime dispatch: the widest available, detected once.
    pub fn best() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| {
            [Isa::Avx512, Isa::Avx2Fma, Isa::Neon]
                .into_iter()
                .find(|i| i.available())
                .unwrap_or(Isa::Scalar)
        })
    }
}

/// One image through the kernel of `isa`: `x` `[h, w, c]`, `k` `[9, c]`
/// (tap `ky * 3 + kx` major), `b` `[c]`, `y` `[oh, ow, c]`.
pub fn dw3x3(
    isa: Isa,
    g: &Geometry,
    x: &[f32],
    k: &[f32],
    b: &[f32],
    y: &mut [f32],
) -> TractResult<()> {
    ensure!(
        isa.available(),
        "dw3x3: {} is not available on this CPU",
        isa.name()
    );
    // Memory-safe for any geometry: the kernels only read taps inside the
    // image, so only the slice sizes matter.
    ensure!(g.stride >= 1, "dw3x3: stride 0");
    ensure!(
        x.len() == g.input_len()
            && k.len() == 9 * g.c
            && b.len() == g.c
            && y.len() == g.output_len(),
        "dw3x3: slice sizes do not match {g:?}"
    );
    match isa {
        Isa::Scalar => scalar::dw3x3(g, x, k, b, y),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::dw3x3_avx512(g, x, k, b, y) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { x86::dw3x3_avx2(g, x, k, b, y) },
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => unsafe { aarch64::dw3x3_neon(g, x, k, b, y) },
        #[allow(unreachable_patterns)]
        _ => unreachable!(),
    }
    Ok(())
}

/// The op: a channel-last `[n, h, w, c]` f32 input, its weights packed
/// `[9, c]` and bias `[c]`, the clamp fused in [`Geometry`]'s `lo`/`hi`.
#[derive(Debug, Clone)]
pub struct DwConv3x3 {
    pub geo: Geometry,
    pub kernel: Arc<Vec<f32>>,
    pub bias: Arc<Vec<f32>>,
}

/// Bitwise (tract wants `Eq` on ops).
impl PartialEq for Geometry {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Geometry {}

impl PartialEq for DwConv3x3 {
    fn eq(&self, o: &Self) -> bool {
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        self.geo == o.geo
            && bits(&self.kernel) == bits(&o.kernel)
            && bits(&self.bias) == bits(&o.bias)
    }
}
impl Eq for DwConv3x3 {}

impl DwConv3x3 {
    /// From a kernel `[c, 1, 3, 3]` (OIHW, as ONNX has it) and a bias `[c]`.
    pub fn from_oihw(geo: Geometry, kernel_oihw: &[f32], bias: &[f32]) -> TractResult<DwConv3x3> {
        let c = geo.c;
        ensure!(kernel_oihw.len() == 9 * c && bias.len() == c);
        let mut k = vec![0f32; 9 * c];
        for ch in 0..c {
            for t in 0..9 {
                k[t * c + ch] = kernel_oihw[ch * 9 + t];
            }
        }
        Ok(DwConv3x3 {
            geo,
            kernel: Arc::new(k),
            bias: Arc::new(bias.to_vec()),
        })
    }
}

impl Op for DwConv3x3 {
    fn name(&self) -> StaticName {
        "EdgetuneDwConv3x3".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let g = &self.geo;
        Ok(vec![format!(
            "{}x{}x{} -> {}x{} stride {} pad {},{} clamp [{}, {}] ({})",
            g.h,
            g.w,
            g.c,
            g.oh,
            g.ow,
            g.stride,
            g.pad_top,
            g.pad_left,
            g.lo,
            g.hi,
            Isa::best().name()
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for DwConv3x3 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let g = &self.geo;
        let shape = x.shape();
        ensure!(
            shape.len() == 4 && shape[1..] == [g.h, g.w, g.c],
            "{}: input {shape:?}, expected [n, {}, {}, {}]",
            self.name(),
            g.h,
            g.w,
            g.c
        );
        let n = shape[0];
        let x = x.to_plain_array_view::<f32>()?;
        let x = x.as_slice().context("dw3x3: input not contiguous")?;
        let mut y = unsafe { Tensor::uninitialized::<f32>(&[n, g.oh, g.ow, g.c])? };
        {
            let mut yv = y.to_plain_array_view_mut::<f32>()?;
            let ys = yv.as_slice_mut().context("dw3x3: output not contiguous")?;
            let isa = Isa::best();
            for (xi, yi) in x
                .chunks_exact(g.input_len())
                .zip(ys.chunks_exact_mut(g.output_len()))
            {
                dw3x3(isa, g, xi, &self.kernel, &self.bias, yi)?;
            }
        }
        Ok(tvec!(y.into_tvalue()))
    }
}

impl TypedOp for DwConv3x3 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let g = &self.geo;
        let f = inputs[0];
        ensure!(
            f.datum_type == f32::datum_type(),
            "{}: f32 only",
            self.name()
        );
        ensure!(f.rank() == 4, "{}: rank 4 NHWC input only", self.name());
        for (d, want) in f.shape.iter().skip(1).zip([g.h, g.w, g.c]) {
            ensure!(
                *d == want.to_dim(),
                "{}: input {:?} is not [n, {}, {}, {}]",
                self.name(),
                f.shape,
                g.h,
                g.w,
                g.c
            );
        }
        let n = f.shape[0].clone();
        Ok(tvec!(f32::fact(&[
            n,
            g.oh.to_dim(),
            g.ow.to_dim(),
            g.c.to_dim()
        ])))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let g = &self.geo;
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            inputs[0].shape[0].clone() * (g.output_len() * 9)
        )))
    }

    /// Swallows a following ReLU6 (or any scalar clamp): see
    /// [`fusion::next`].
    fn declutter(
        &self,
        model: &TypedModel,
        node: &TypedNode,
    ) -> TractResult<Option<TypedModelPatch>> {
        let g = self.geo;
        let Some(f) = fusion::next(model, node, (g.lo, g.hi), false)? else {
            return Ok(None);
        };
        let Follow::Clamp { lo, hi } = f.follow else {
            return Ok(None);
        };
        let op = DwConv3x3 {
            geo: Geometry { lo, hi, ..g },
            ..self.clone()
        };
        f.patch(model, node, op).map(Some)
    }

    as_op!();
}

/// What [`fuse_depthwise`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Depthwise `Conv` nodes replaced by [`DwConv3x3`].
    pub replaced: usize,
}

/// Whether the rewrite is on: `EDGETUNE_DWCONV=0` turns it off, and so does
/// `EDGETUNE_TRACT_NHWC=0` (the op is channel-last: in a channel-first
/// model, its moves would be real transposes).
pub fn enabled() -> bool {
    let off = |v: &str| std::env::var(v).is_ok_and(|v| v == "0");
    !off("EDGETUNE_DWCONV") && !off("EDGETUNE_TRACT_NHWC")
}

/// The plan-building step (see the module doc): runs [`rewrite`] on a typed
/// model before tract's `conv_nhwc`, unless [`enabled`] says no.
pub fn fuse_depthwise(mut model: TypedModel) -> TractResult<TypedModel> {
    if enabled() {
        rewrite(&mut model)?;
    }
    Ok(model)
}

/// Replaces every matching depthwise `Conv` by move-to-NHWC, [`DwConv3x3`],
/// move-back. The clamp is fused later, by the op's declutter.
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
    rule_if!(*ps.kernel_shape == [3, 3]);
    let c = op.group;
    rule_if!(c >= 1 && ps.input_channels == c && ps.output_channels == c);
    rule_if!(ps.dilations().iter().all(|&d| d == 1));
    let strides = ps.strides();
    rule_if!(strides[0] == strides[1] && (strides[0] == 1 || strides[0] == 2));
    rule_if!(node.inputs.len() == 2 || node.inputs.len() == 3);
    let x = model.outlet_fact(node.inputs[0])?;
    rule_if!(x.datum_type == f32::datum_type() && x.rank() == 4);
    rule_if_some!(shape = x.shape.as_concrete());
    rule_if!(shape[1] == c);
    let (h, w) = (shape[2], shape[3]);
    rule_if_some!(kernel = model.outlet_fact(node.inputs[1])?.konst.clone());
    rule_if!(kernel.shape() == [c, 1, 3, 3] && kernel.datum_type() == f32::datum_type());
    rule_if_some!(bias = fusion::conv_bias(model, node, c)?);
    let pads = ps.computed_padding(&[h, w]);
    let pad = [
        pads[0].pad_before,
        pads[1].pad_before,
        pads[0].pad_after,
        pads[1].pad_after,
    ];
    rule_if!(pad.iter().all(|&p| p <= 2));
    let Ok(geo) = Geometry::new(h, w, c, strides[0], pad, f32::NEG_INFINITY, f32::INFINITY) else {
        return Ok(None);
    };
    // the op must produce exactly the shape tract's conv does
    rule_if!(pads[0].convoluted == geo.oh && pads[1].convoluted == geo.ow);
    let k: Vec<f32> = kernel
        .to_plain_array_view::<f32>()?
        .iter()
        .copied()
        .collect();
    let dw = DwConv3x3::from_oihw(geo, &k, &bias)?;

    let name = &node.name;
    let mut patch = TypedModelPatch::new(format!("dwconv3x3 {name}"));
    let input = patch.tap_model(model, node.inputs[0])?;
    let nhwc = patch.wire_node(format!("{name}.nhwc_in"), AxisOp::Move(1, 3), &[input])?;
    let y = patch.wire_node(name, dw, &nhwc)?;
    let y = patch.wire_node(format!("{name}.nhwc_out"), AxisOp::Move(3, 1), &y)?;
    patch.shunt_outside(model, node.id.into(), y[0])?;
    patch.obliterate(node.id)?;
    Ok(Some(patch))
}
