//! Optimisers and learning-rate schedules.

use serde::{Deserialize, Serialize};

use super::model::Head;
use crate::kernels::{AdamStep, Kernels, SgdStep};

/// Optimiser choice.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// Adam with bias correction (AdamW when the decay is decoupled).
    Adam { beta1: f32, beta2: f32, eps: f32 },
    /// SGD with (optionally Nesterov) momentum; `momentum = 0` is plain SGD.
    Sgd { momentum: f32, nesterov: bool },
}

impl OptimizerKind {
    /// Adam with the usual defaults (0.9, 0.999, 1e-8).
    pub fn adam() -> Self {
        OptimizerKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
    /// SGD with momentum 0.9.
    pub fn sgd_momentum() -> Self {
        OptimizerKind::Sgd {
            momentum: 0.9,
            nesterov: false,
        }
    }
}

impl Default for OptimizerKind {
    fn default() -> Self {
        Self::adam()
    }
}

/// Learning-rate schedule, evaluated once per epoch (epochs counted from 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum LrSchedule {
    /// `lr` throughout.
    #[default]
    Constant,
    /// `lr · gamma^(epoch / every)`.
    Step { every: usize, gamma: f32 },
    /// `lr · ½(1 + cos(π·epoch/epochs))`: from `lr` towards 0 over the
    /// configured number of epochs.
    Cosine,
}

impl LrSchedule {
    /// Learning rate of epoch `epoch` (0-based) out of `epochs`.
    pub fn lr_at(&self, base: f32, epoch: usize, epochs: usize) -> f32 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Step { every, gamma } => base * gamma.powi((epoch / every.max(1)) as i32),
            LrSchedule::Cosine => {
                let t = epoch as f64 / epochs.max(1) as f64;
                (base as f64 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())) as f32
            }
        }
    }
}

/// How weight decay is applied (weights only, never biases).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Decay {
    pub coef: f32,
    pub decoupled: bool,
}

/// Optimiser state (moments / velocities) for every parameter tensor.
pub(crate) struct OptState {
    kind: OptimizerKind,
    /// Per layer: first-moment / velocity buffers for (W, b).
    m: Vec<(Vec<f32>, Vec<f32>)>,
    /// Per layer: second-moment buffers for (W, b) (Adam only).
    v: Vec<(Vec<f32>, Vec<f32>)>,
    t: u64,
}

impl OptState {
    pub fn new(kind: OptimizerKind, head: &Head) -> OptState {
        let zeros = || {
            head.layers
                .iter()
                .map(|l| (vec![0.0; l.w.len()], vec![0.0; l.b.len()]))
                .collect()
        };
        let v = match kind {
            OptimizerKind::Adam { .. } => zeros(),
            OptimizerKind::Sgd { .. } => Vec::new(),
        };
        OptState {
            kind,
            m: zeros(),
            v,
            t: 0,
        }
    }

    /// Apply one update with learning rate `lr`, multiplying raw gradients by
    /// `grad_scale` (gradient clipping).
    pub fn step(
        &mut self,
        k: &Kernels,
        head: &mut Head,
        grads: &[(Vec<f32>, Vec<f32>)],
        lr: f32,
        grad_scale: f32,
        decay: Decay,
    ) {
        self.t += 1;
        let (l2, dwd) = if decay.decoupled {
            (0.0, decay.coef)
        } else {
            (decay.coef, 0.0)
        };
        for (l, layer) in head.layers.iter_mut().enumerate() {
            let w = layer.w.as_slice_mut().expect("standard layout");
            let b = layer.b.as_slice_mut().expect("contiguous");
            let (gw, gb) = &grads[l];
            let (mw, mb) = &mut self.m[l];
            match self.kind {
                OptimizerKind::Adam { beta1, beta2, eps } => {
                    let (vw, vb) = &mut self.v[l];
                    let mut s = AdamStep::new(lr, beta1, beta2, eps, self.t);
                    s.grad_scale = grad_scale;
                    k.adam(b, gb, mb, vb, &s);
                    s.l2 = l2;
                    s.decoupled_wd = dwd;
                    k.adam(w, gw, mw, vw, &s);
                }
                OptimizerKind::Sgd { momentum, nesterov } => {
                    let mut s = SgdStep::new(lr, momentum, nesterov);
                    s.grad_scale = grad_scale;
                    k.sgd(b, gb, mb, &s);
                    s.l2 = l2;
                    s.decoupled_wd = dwd;
                    k.sgd(w, gw, mw, &s);
                }
            }
        }
    }
}
