//! A channel-last (NHWC) 1x1 convolution as one GEMM over the pixels, with
//! its weights packed once for the training kernels' micro-kernel and the
//! bias, a following clamp (ReLU6) and a residual `Add` fused into the
//! GEMM's epilogue: the custom tract op [`PwConv`] and the graph rewrite
//! that puts it in place of tract's pointwise convs ([`fuse_pointwise`]).
//!
//! Why: in MobileNetV2 the 1x1 convs are ~90 % of the multiply-adds. tract
//! runs each as a matmul that first re-packs the activations
//! (`OptMatMulPack`, ~1 ms of its ~11 ms per image here). Here the weights
//! are packed at load time and the activations are read in place (NHWC: a
//! pixel's channels are one row of `A`); each output tile gets its bias,
//! clamp and residual while it is still in L1 ([`crate::kernels::Epilogue`]).
//!
//! The kernels are the head's: one scalar reference, one micro-kernel per
//! instruction set, one runtime dispatch ([`crate::kernels`]); tests in
//! tests/pwconv.rs check every one against the reference, the op against
//! tract's conv and the backbone against ONNX Runtime's features.
//!
//! Where it plugs in (as [`crate::dwconv`]): on the typed model before
//! tract's `conv_nhwc`, a `Conv` with a 1x1 kernel, stride 1, no padding,
//! one group and constant weights becomes move-to-NHWC, [`PwConv`],
//! move-back; the moves cancel against the neighbouring convs' in
//! declutter, and the op's `declutter` swallows a following scalar
//! `Max`/`Min` (ReLU6) and then an `Add` of a same-shaped tensor (the
//! residual). On by default where it was measured faster (see
//! [`enabled`]).

use std::sync::OnceLock;

use anyhow::{Context as _, ensure};

use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};
use tract_onnx::tract_core::ops::nn::DataFormat;

use crate::fusion::{self, Follow};

use crate::kernels::{Epilogue, Isa, Kernels, Mat, MatMut, PackedB};

/// The kernel table the backbone's convs use: the process-wide choice
/// (`EDGETUNE_KERNELS` included), on one thread, since throughput comes
/// from one plan per core.
pub fn kernels() -> &'static Kernels {
    static K: OnceLock<Kernels> = OnceLock::new();
    K.get_or_init(|| crate::kernels::kernels().with_threads(1))
}

/// The op: `y = clamp(x·W + b, lo, hi) [+ r]` on the last axis of a
/// channel-last f32 tensor (`[.., cin]` → `[.., cout]`); with `residual`,
/// a second input `r` shaped like `y`.
#[derive(Debug, Clone)]
pub struct PwConv {
    pub cin: usize,
    pub cout: usize,
    pub lo: f32,
    pub hi: f32,
    pub residual: bool,
    pub bias: Arc<Vec<f32>>,
    /// `W` (`[cin, cout]`) packed for [`kernels`]: the only copy kept.
    packed: Arc<PackedB>,
}

impl PartialEq for PwConv {
    fn eq(&self, o: &Self) -> bool {
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        (self.cin, self.cout, self.residual) == (o.cin, o.cout, o.residual)
            && (self.lo.to_bits(), self.hi.to_bits()) == (o.lo.to_bits(), o.hi.to_bits())
            && bits(self.packed.data()) == bits(o.packed.data())
            && bits(&self.bias) == bits(&o.bias)
    }
}
impl Eq for PwConv {}

impl PwConv {
    /// From a kernel `[cout, cin, 1, 1]` (OIHW, as ONNX has it) and a bias
    /// `[cout]`; no clamp, no residual.
    pub fn from_oihw(
        cin: usize,
        cout: usize,
        kernel_oihw: &[f32],
        bias: &[f32],
    ) -> TractResult<PwConv> {
        ensure!(kernel_oihw.len() == cin * cout && bias.len() == cout);
        let mut w = vec![0f32; cin * cout];
        for o in 0..cout {
            for i in 0..cin {
                w[i * cout + o] = kernel_oihw[o * cin + i];
            }
        }
        Ok(PwConv::new(cin, cout, w, bias.to_vec()))
    }

    /// From `W` `[cin, cout]` row-major and a bias `[cout]`.
    pub fn new(cin: usize, cout: usize, weights: Vec<f32>, bias: Vec<f32>) -> PwConv {
        assert!(weights.len() == cin * cout && bias.len() == cout);
        let packed = kernels().pack_b(Mat::new(&weights, cin, cout));
        PwConv {
            cin,
            cout,
            lo: f32::NEG_INFINITY,
            hi: f32::INFINITY,
            residual: false,
            bias: Arc::new(bias),
            packed: Arc::new(packed),
        }
    }

    /// With the output clamped to `[lo, hi]` (before any residual add).
    pub fn with_clamp(self, lo: f32, hi: f32) -> PwConv {
        PwConv { lo, hi, ..self }
    }

    /// Runs the op on `m` pixels: `x` `[m, cin]`, `r` `[m, cout]` when the
    /// op has a residual, `y` `[m, cout]`.
    pub fn run(&self, x: &[f32], r: Option<&[f32]>, y: &mut [f32]) -> TractResult<()> {
        let m = x.len() / self.cin.max(1);
        ensure!(
            x.len() == m * self.cin && y.len() == m * self.cout,
            "pwconv: slice sizes do not match {}x{} -> {}",
            m,
            self.cin,
            self.cout
        );
        ensure!(r.is_some() == self.residual, "pwconv: residual input");
        if let Some(r) = r {
            ensure!(r.len() == y.len(), "pwconv: residual size");
        }
        let epi = Epilogue {
            bias: &self.bias,
            lo: self.lo,
            hi: self.hi,
            residual: r.map(|r| Mat::new(r, m, self.cout)),
        };
        kernels().gemm_packed(
            Mat::new(x, m, self.cin),
            &self.packed,
            &epi,
            MatMut::new(y, m, self.cout),
        );
        Ok(())
    }
}

impl Op for PwConv {
    fn name(&self) -> StaticName {
        "EdgetunePwConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} -> {} clamp [{}, {}]{} ({})",
            self.cin,
            self.cout,
            self.lo,
            self.hi,
            if self.residual { " + residual" } else { "" },
            kernels().isa().name()
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for PwConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let shape = x.shape();
        ensure!(
            shape.last() == Some(&self.cin),
            "{}: input {shape:?}, expected [.., {}]",
            self.name(),
            self.cin
        );
        let mut out_shape: TVec<usize> = shape.into();
        *out_shape.last_mut().unwrap() = self.cout;
        let xv = x.to_plain_array_view::<f32>()?;
        let xs = xv.as_slice().context("pwconv: input not contiguous")?;
        let rv = match self.residual {
            true => {
                let r = &inputs[1];
                ensure!(
                    r.shape() == &*out_shape,
                    "{}: residual {:?}, expected {out_shape:?}",
                    self.name(),
                    r.shape()
                );
                Some(r.to_plain_array_view::<f32>()?)
            }
            false => None,
        };
        let rs = match &rv {
            Some(v) => Some(v.as_slice().context("pwconv: residual not contiguous")?),
            None => None,
        };
        let mut y = unsafe { Tensor::uninitialized::<f32>(&out_shape)? };
        {
            let mut yv = y.to_plain_array_view_mut::<f32>()?;
            let ys = yv.as_slice_mut().context("pwconv: output not contiguous")?;
            self.run(xs, rs, ys)?;
        }
        Ok(tvec!(y.into_tvalue()))
    }
}

impl TypedOp for PwConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let f = inputs[0];
        ensure!(
            f.datum_type == f32::datum_type(),
            "{}: f32 only",
            self.name()
        );
        ensure!(f.rank() >= 1, "{}: scalar input", self.name());
        ensure!(
            f.shape[f.rank() - 1] == self.cin.to_dim(),
            "{}: input {:?} does not end in {} channels",
            self.name(),
            f.shape,
            self.cin
        );
        let mut shape: TVec<TDim> = f.shape.iter().cloned().collect();
        *shape.last_mut().unwrap() = self.cout.to_dim();
        ensure!(
            inputs.len() == 1 + self.residual as usize,
            "{}: inputs",
            self.name()
        );
        if self.residual {
            ensure!(
                inputs[1].shape.iter().cloned().collect::<TVec<_>>() == shape,
                "{}: residual {:?}, output {shape:?}",
                self.name(),
                inputs[1].shape
            );
        }
        Ok(tvec!(f32::fact(&*shape)))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let pixels: TDim = inputs[0].shape.iter().rev().skip(1).product();
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            pixels * (self.cin * self.cout)
        )))
    }

    /// Swallows what follows (one step at a time, an axis op in between
    /// allowed, as element-wise ops commute with it): a `Max(x, a)` /
    /// `Min(x, b)` with a scalar constant into the clamp, while no residual
    /// is fused (the clamp comes before the add); then an `Add` of a tensor
    /// of the output's shape, as the residual.
    fn declutter(
        &self,
        model: &TypedModel,
        node: &TypedNode,
    ) -> TractResult<Option<TypedModelPatch>> {
        if self.residual {
            return Ok(None);
        }
        let Some(f) = fusion::next(model, node, (self.lo, self.hi), true)? else {
            return Ok(None);
        };
        let op = match f.follow {
            Follow::Clamp { lo, hi } => PwConv {
                lo,
                hi,
                ..self.clone()
            },
            Follow::Residual(_) => PwConv {
                residual: true,
                ..self.clone()
            },
        };
        f.patch(model, node, op).map(Some)
    }

    as_op!();
}

/// What [`fuse_pointwise`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Pointwise `Conv` nodes replaced by [`PwConv`].
    pub replaced: usize,
}

/// Whether the rewrite is on. By default where it was measured faster
/// than tract's own kernels: x86_64 with AVX2 or AVX-512 (BENCHMARKS.md).
/// On aarch64 the NEON kernel is tested (under qemu) but not yet timed on
/// a board against tract's assembly, so it is opt-in there, as on armv7
/// (portable kernels). `EDGETUNE_PWCONV=1` forces it on, `=0` off;
/// `EDGETUNE_TRACT_NHWC=0` turns it off too (the op is channel-last).
pub fn enabled() -> bool {
    let var = |v: &str| std::env::var(v).ok();
    if var("EDGETUNE_TRACT_NHWC").is_some_and(|v| v == "0") {
        return false;
    }
    match var("EDGETUNE_PWCONV").as_deref() {
        Some("0") => false,
        Some("1") => true,
        _ => matches!(kernels().isa(), Isa::Avx2Fma | Isa::Avx512),
    }
}

/// The plan-building step: runs [`rewrite`] before tract's `conv_nhwc`,
/// unless [`enabled`] says no.
pub fn fuse_pointwise(mut model: TypedModel) -> TractResult<TypedModel> {
    if enabled() {
        rewrite(&mut model)?;
    }
    Ok(model)
}

/// Replaces every matching pointwise `Conv` by move-to-NHWC, [`PwConv`],
/// move-back. Clamps and residual adds are fused later, by the op's
/// declutter.
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
    rule_if!(*ps.kernel_shape == [1, 1]);
    rule_if!(op.group == 1);
    rule_if!(ps.strides().iter().all(|&s| s == 1));
    rule_if!(ps.dilations().iter().all(|&d| d == 1));
    rule_if!(node.inputs.len() == 2 || node.inputs.len() == 3);
    let x = model.outlet_fact(node.inputs[0])?;
    rule_if!(x.datum_type == f32::datum_type() && x.rank() == 4);
    rule_if_some!(shape = x.shape.as_concrete());
    let (cin, cout) = (ps.input_channels, ps.output_channels);
    rule_if!(shape[1] == cin && cin >= 1 && cout >= 1);
    let pads = ps.computed_padding(&shape[2..]);
    rule_if!(pads.iter().all(|p| p.pad_before == 0 && p.pad_after == 0));
    rule_if_some!(kernel = model.outlet_fact(node.inputs[1])?.konst.clone());
    rule_if!(kernel.shape() == [cout, cin, 1, 1] && kernel.datum_type() == f32::datum_type());
    rule_if_some!(bias = fusion::conv_bias(model, node, cout)?);
    let k: Vec<f32> = kernel
        .to_plain_array_view::<f32>()?
        .iter()
        .copied()
        .collect();
    let pw = PwConv::from_oihw(cin, cout, &k, &bias)?;

    let name = &node.name;
    let mut patch = TypedModelPatch::new(format!("pwconv {name}"));
    let input = patch.tap_model(model, node.inputs[0])?;
    let nhwc = patch.wire_node(format!("{name}.nhwc_in"), AxisOp::Move(1, 3), &[input])?;
    let y = patch.wire_node(name, pw, &nhwc)?;
    let y = patch.wire_node(format!("{name}.nhwc_out"), AxisOp::Move(3, 1), &y)?;
    patch.shunt_outside(model, node.id.into(), y[0])?;
    patch.obliterate(node.id)?;
    Ok(Some(patch))
}
