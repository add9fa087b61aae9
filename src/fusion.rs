//! The graph work shared by edgetune's conv ops ([`crate::dwconv`],
//! [`crate::pwconv`], [`crate::stemconv`]): finding the `Conv` nodes an op
//! takes over ([`replace_convs`], [`const_value`], [`conv_bias`]), and, in
//! declutter, fusing what follows one of them into it ([`next`]): a clamp
//! (`Clip(0, 6)` is `Max(x, 0)` then `Min(x, 6)` once typed) and a residual
//! `Add`. One axis op may sit between the conv and what follows (the move
//! back to NCHW when nothing cancels it): element-wise ops commute with it.

use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::math::{Add, Max, Min};

/// Applies `patch_for` to the first `Conv` (in evaluation order) it
/// matches, again and again until none matches; returns how many it
/// replaced.
pub fn replace_convs(
    model: &mut TypedModel,
    patch_for: impl Fn(&TypedModel, &TypedNode, &Conv) -> TractResult<Option<TypedModelPatch>>,
) -> TractResult<usize> {
    let mut replaced = 0;
    loop {
        let mut patch = None;
        for id in model.eval_order()? {
            let node = model.node(id);
            let Some(conv) = node.op_as::<Conv>() else {
                continue;
            };
            if let Some(p) = patch_for(model, node, conv)? {
                patch = Some(p);
                break;
            }
        }
        let Some(p) = patch else { break };
        p.apply(model)?;
        replaced += 1;
    }
    Ok(replaced)
}

/// The value of `outlet` when it is constant: a `Const`, or (before
/// declutter has folded them) a short chain of ops on constants, such as
/// the `Cast` tract-onnx puts on a conv bias.
pub fn const_value(
    model: &TypedModel,
    outlet: OutletId,
    depth: usize,
) -> TractResult<Option<Arc<Tensor>>> {
    if let Some(k) = &model.outlet_fact(outlet)?.konst {
        return Ok(Some(k.clone()));
    }
    let node = model.node(outlet.node);
    if depth == 0 || node.inputs.is_empty() || node.outputs.len() != 1 {
        return Ok(None);
    }
    let mut inputs = tvec!();
    for i in &node.inputs {
        let Some(v) = const_value(model, *i, depth - 1)? else {
            return Ok(None);
        };
        inputs.push(v.into_tvalue());
    }
    let Ok(Some(mut out)) = node.op.eval_out_of_plan(inputs) else {
        return Ok(None);
    };
    Ok(Some(out.remove(0).into_arc_tensor()))
}

/// A conv node's bias as `cout` values (zeros when it has none, a scalar
/// broadcast), or `None` when it is not a constant of a usable shape.
pub fn conv_bias(
    model: &TypedModel,
    node: &TypedNode,
    cout: usize,
) -> TractResult<Option<Vec<f32>>> {
    let Some(b) = node.inputs.get(2) else {
        return Ok(Some(vec![0.0; cout]));
    };
    let Some(b) = const_value(model, *b, 3)? else {
        return Ok(None);
    };
    let v: Vec<f32> = b
        .cast_to::<f32>()?
        .to_plain_array_view::<f32>()?
        .iter()
        .copied()
        .collect();
    Ok(match v.len() {
        1 => Some(vec![v[0]; cout]),
        n if n == cout => Some(v),
        _ => None,
    })
}

/// What the op can swallow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Follow {
    /// The op's output clamp becomes `[lo, hi]`.
    Clamp { lo: f32, hi: f32 },
    /// `Add` of this same-shaped tensor (as the graph has it).
    Residual(OutletId),
}

/// A fusion found by [`next`]: apply it with [`Fusion::patch`].
pub struct Fusion<'a> {
    between: Option<(&'a TypedNode, AxisOp)>,
    succ: &'a TypedNode,
    pub follow: Follow,
}

/// What follows `node` (alone, maybe through one axis op) that it can
/// absorb: a `Max`/`Min` with a scalar constant, tightening its clamp
/// `[lo, hi]` (a `Max` only while no `Min` was taken: `min(max(x, a), b)`
/// is a clamp, `max(min(x, b), a)` is not in general), or, when
/// `residual_ok`, an `Add` of a tensor of the same shape.
pub fn next<'a>(
    model: &'a TypedModel,
    node: &'a TypedNode,
    (lo, hi): (f32, f32),
    residual_ok: bool,
) -> TractResult<Option<Fusion<'a>>> {
    let outputs = model.output_outlets()?;
    if outputs.contains(&OutletId::new(node.id, 0)) {
        return Ok(None);
    }
    let Some(mut succ) = model.single_succ(node.id)? else {
        return Ok(None);
    };
    let mut between = None;
    if let Some(axis) = succ.op_as::<AxisOp>() {
        if outputs.contains(&OutletId::new(succ.id, 0)) {
            return Ok(None);
        }
        let Some(next) = model.single_succ(succ.id)? else {
            return Ok(None);
        };
        between = Some((succ, axis.clone()));
        succ = next;
    }
    let prev = OutletId::new(between.as_ref().map_or(node.id, |b| b.0.id), 0);
    let Some(bin) = succ.op_as::<TypedBinOp>() else {
        return Ok(None);
    };
    if bin.1.is_some() || succ.inputs.len() != 2 {
        return Ok(None);
    }
    let Some(mine) = succ.inputs.iter().position(|i| *i == prev) else {
        return Ok(None);
    };
    let other_outlet = succ.inputs[1 - mine];
    if other_outlet == prev {
        return Ok(None);
    }
    let out = model.outlet_fact(succ.id.into())?;
    let prev_fact = model.outlet_fact(prev)?;
    if out.datum_type != f32::datum_type() || out.shape != prev_fact.shape {
        return Ok(None);
    }
    let other = model.outlet_fact(other_outlet)?;
    let follow = if let Some(k) = other.konst.as_ref() {
        if k.len() != 1 || k.datum_type() != f32::datum_type() || other.rank() > prev_fact.rank() {
            return Ok(None);
        }
        let v = k.cast_to_scalar::<f32>()?;
        if v.is_nan() {
            return Ok(None);
        }
        if bin.0.is::<Max>() && hi == f32::INFINITY {
            Follow::Clamp { lo: lo.max(v), hi }
        } else if bin.0.is::<Min>() {
            Follow::Clamp { lo, hi: hi.min(v) }
        } else {
            return Ok(None);
        }
    } else if residual_ok && bin.0.is::<Add>() {
        if other.datum_type != f32::datum_type() || other.shape != prev_fact.shape {
            return Ok(None);
        }
        Follow::Residual(other_outlet)
    } else {
        return Ok(None);
    };
    Ok(Some(Fusion {
        between,
        succ,
        follow,
    }))
}

impl Fusion<'_> {
    /// The patch putting `op` (the conv with the fusion applied) in place of
    /// `node` … `succ`; a residual becomes the op's last input, moved into
    /// the op's own axes.
    pub fn patch(
        &self,
        model: &TypedModel,
        node: &TypedNode,
        op: impl Into<Box<dyn TypedOp>>,
    ) -> TractResult<TypedModelPatch> {
        let mut patch = TypedModelPatch::new(format!("fuse {} into {}", self.succ.name, node.name));
        let mut inputs = patch.taps(model, &node.inputs)?;
        if let Follow::Residual(r) = self.follow {
            let mut r = patch.tap_model(model, r)?;
            if let Some((b, axis)) = &self.between {
                r = patch.wire_node(format!("{}.residual", b.name), axis.recip(), &[r])?[0];
            }
            inputs.push(r);
        }
        let mut y = patch.wire_node(&node.name, op, &inputs)?;
        if let Some((b, axis)) = &self.between {
            y = patch.wire_node(&b.name, axis.clone(), &y)?;
        }
        patch.shunt_outside(model, self.succ.id.into(), y[0])?;
        Ok(patch)
    }
}
