//! The training loop.

use std::time::Instant;

use ndarray::ArrayView2;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::backprop::Workspace;
use super::model::{Dense, Head, HeadConfig, Standardizer};
use super::optim::{Decay, LrSchedule, OptState, OptimizerKind};
use crate::kernels::{self, Kernels};

/// Per-class loss weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClassWeights {
    /// Every sample counts the same.
    #[default]
    None,
    /// `n_samples / (n_classes · count_c)` from the training labels (classes
    /// absent from the training set get weight 0).
    Balanced,
}

/// Quantity watched for early stopping and best-weight restoration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Monitor {
    /// Lowest validation loss (training loss when there is no validation set).
    #[default]
    ValLoss,
    /// Highest validation accuracy, ties broken by the lower validation loss
    /// (training accuracy / loss when there is no validation set).
    ValAccuracy,
}

/// Training hyper-parameters. [`Default`] is tuned for a few hundred
/// MobileNetV2 feature vectors (1280-d) and a handful of classes: AdamW
/// (lr 1e-3, weight decay 1e-2), batch 32, up to 100 epochs with patience 10
/// on the validation loss, standardised features.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Maximum number of epochs.
    pub epochs: usize,
    pub batch_size: usize,
    /// Base learning rate (see `schedule`).
    pub lr: f32,
    pub optimizer: OptimizerKind,
    /// Weight decay coefficient (applied to weights, not biases).
    pub weight_decay: f32,
    /// `true`: decoupled decay `p -= lr·wd·p` (AdamW); `false`: L2 penalty
    /// `wd·p` added to the gradient.
    pub decoupled_weight_decay: bool,
    pub schedule: LrSchedule,
    /// Clip the global gradient norm to this value.
    pub clip_grad_norm: Option<f32>,
    /// Stop after this many epochs without improvement of `monitor`; `None`
    /// trains all epochs. The best weights are restored in either case.
    pub patience: Option<usize>,
    pub monitor: Monitor,
    /// Label smoothing `ε ∈ [0, 1)`.
    pub label_smoothing: f32,
    pub class_weights: ClassWeights,
    /// Standardise features with the training mean/std (stored in the head).
    pub standardize: bool,
    /// Seeds initialisation, shuffling and dropout.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 100,
            batch_size: 32,
            lr: 1e-3,
            optimizer: OptimizerKind::adam(),
            weight_decay: 1e-2,
            decoupled_weight_decay: true,
            schedule: LrSchedule::Constant,
            clip_grad_norm: None,
            patience: Some(10),
            monitor: Monitor::ValLoss,
            label_smoothing: 0.0,
            class_weights: ClassWeights::None,
            standardize: true,
            seed: 0,
        }
    }
}

/// Metrics of one epoch, passed to the progress callback.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Configured maximum number of epochs.
    pub epochs: usize,
    /// Mean training objective over the epoch's mini-batches (with dropout,
    /// label smoothing and class weights; without the weight-decay term).
    pub train_loss: f32,
    /// Accuracy of the training forward passes (with dropout).
    pub train_acc: f32,
    /// Plain mean cross-entropy on the validation set (no smoothing, no
    /// class weights, no dropout).
    pub val_loss: Option<f32>,
    pub val_acc: Option<f32>,
    /// Learning rate used in this epoch.
    pub lr: f32,
    /// Wall-clock seconds spent in this epoch (including validation).
    pub seconds: f64,
    /// Whether this epoch is the best so far according to the monitor.
    pub improved: bool,
}

/// Result of [`train`].
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    /// The head with the best weights (by the monitor), standardiser included.
    pub head: Head,
    pub history: Vec<EpochMetrics>,
    /// 1-based epoch whose weights were kept.
    pub best_epoch: usize,
    /// Whether training stopped before `epochs` because of `patience`.
    pub stopped_early: bool,
}

/// Why training failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("training set is empty")]
    EmptyDataset,
    #[error("need at least 2 classes, got {0}")]
    TooFewClasses(usize),
    #[error("{set}: label {label} at index {index} is out of range for {n_classes} classes")]
    LabelOutOfRange {
        set: &'static str,
        index: usize,
        label: usize,
        n_classes: usize,
    },
    #[error("{set}: {rows} feature rows but {labels} labels")]
    LengthMismatch {
        set: &'static str,
        rows: usize,
        labels: usize,
    },
    #[error("{set}: features have {got} columns, expected {expected}")]
    DimensionMismatch {
        set: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{set}: feature row {row} contains NaN or infinity")]
    NonFiniteInput { set: &'static str, row: usize },
    #[error("invalid training configuration: {0}")]
    InvalidConfig(String),
    /// The loss became NaN/infinite (or exploded). `best` holds the best
    /// head seen before that, if any epoch completed.
    #[error("loss {} at epoch {epoch} (lr {lr} is too high?)", describe_loss(*.loss))]
    Diverged {
        epoch: usize,
        lr: f32,
        loss: f32,
        best: Option<Box<Head>>,
    },
}

fn describe_loss(loss: f32) -> String {
    if loss.is_nan() {
        "became NaN".into()
    } else if loss.is_infinite() {
        "became infinite".into()
    } else {
        format!("exploded to {loss:.3e}")
    }
}

/// A batch loss above `max(EXPLODED_LOSS, 100 × first batch loss)` is treated
/// as divergence even when finite: a mean cross-entropy of 10⁴ nats means
/// the logits are off by 10⁴.
const EXPLODED_LOSS: f64 = 1e4;

/// Per-class weights for `labels` (see [`ClassWeights`]).
pub fn class_weights(labels: &[usize], n_classes: usize, mode: ClassWeights) -> Vec<f32> {
    match mode {
        ClassWeights::None => vec![1.0; n_classes],
        ClassWeights::Balanced => {
            let mut counts = vec![0usize; n_classes];
            for &y in labels {
                if y < n_classes {
                    counts[y] += 1;
                }
            }
            let n = labels.len() as f64;
            counts
                .iter()
                .map(|&c| {
                    if c == 0 {
                        0.0
                    } else {
                        (n / (n_classes as f64 * c as f64)) as f32
                    }
                })
                .collect()
        }
    }
}

/// Split sample indices into `(train, val)`, class by class: each class's
/// indices are shuffled (seeded `ChaCha8Rng`) and `round(count·val_fraction)`
/// of them go to validation, but a class with at least 2 samples always keeps
/// at least one in training, and a class with a single sample stays in
/// training. Both lists are sorted ascending.
///
/// # Panics
/// If a label is `>= n_classes`.
pub fn stratified_split(
    labels: &[usize],
    n_classes: usize,
    val_fraction: f32,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let frac = if val_fraction.is_finite() {
        val_fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let mut by_class = vec![Vec::new(); n_classes];
    for (i, &y) in labels.iter().enumerate() {
        assert!(
            y < n_classes,
            "label {y} at index {i} is out of range for {n_classes} classes"
        );
        by_class[y].push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for mut idx in by_class {
        idx.shuffle(&mut rng);
        let n = idx.len();
        let n_val = if n < 2 {
            0
        } else {
            ((n as f64 * frac as f64).round() as usize).min(n - 1)
        };
        val.extend_from_slice(&idx[..n_val]);
        train.extend_from_slice(&idx[n_val..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

fn validate_set(
    set: &'static str,
    x: &ArrayView2<f32>,
    y: &[usize],
    dim: usize,
    n_classes: usize,
) -> Result<(), TrainError> {
    if x.nrows() != y.len() {
        return Err(TrainError::LengthMismatch {
            set,
            rows: x.nrows(),
            labels: y.len(),
        });
    }
    if x.ncols() != dim {
        return Err(TrainError::DimensionMismatch {
            set,
            expected: dim,
            got: x.ncols(),
        });
    }
    if let Some((index, &label)) = y.iter().enumerate().find(|(_, l)| **l >= n_classes) {
        return Err(TrainError::LabelOutOfRange {
            set,
            index,
            label,
            n_classes,
        });
    }
    if let Some(row) = x
        .rows()
        .into_iter()
        .position(|r| r.iter().any(|v| !v.is_finite()))
    {
        return Err(TrainError::NonFiniteInput { set, row });
    }
    Ok(())
}

fn validate_config(head_cfg: &HeadConfig, cfg: &TrainConfig) -> Result<(), TrainError> {
    let bad = |msg: String| Err(TrainError::InvalidConfig(msg));
    if cfg.epochs == 0 {
        return bad("epochs must be at least 1".into());
    }
    if cfg.batch_size == 0 {
        return bad("batch_size must be at least 1".into());
    }
    if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
        return bad(format!("lr must be a positive number, got {}", cfg.lr));
    }
    if !(cfg.weight_decay.is_finite() && cfg.weight_decay >= 0.0) {
        return bad(format!(
            "weight_decay must be >= 0, got {}",
            cfg.weight_decay
        ));
    }
    if !(0.0..1.0).contains(&cfg.label_smoothing) {
        return bad(format!(
            "label_smoothing must be in [0, 1), got {}",
            cfg.label_smoothing
        ));
    }
    if !(0.0..1.0).contains(&head_cfg.dropout) {
        return bad(format!(
            "dropout must be in [0, 1), got {}",
            head_cfg.dropout
        ));
    }
    if head_cfg.hidden.contains(&0) {
        return bad("hidden layer widths must be positive".into());
    }
    if let Some(c) = cfg.clip_grad_norm
        && !(c.is_finite() && c > 0.0)
    {
        return bad(format!("clip_grad_norm must be positive, got {c}"));
    }
    if let LrSchedule::Step { every, gamma } = cfg.schedule
        && (every == 0 || !(gamma.is_finite() && gamma > 0.0))
    {
        return bad("step schedule needs every >= 1 and gamma > 0".into());
    }
    match cfg.optimizer {
        OptimizerKind::Adam { beta1, beta2, eps } => {
            if !((0.0..1.0).contains(&beta1) && (0.0..1.0).contains(&beta2) && eps > 0.0) {
                return bad("Adam needs beta1, beta2 in [0, 1) and eps > 0".into());
            }
        }
        OptimizerKind::Sgd { momentum, .. } => {
            if !(0.0..1.0).contains(&momentum) {
                return bad(format!("SGD momentum must be in [0, 1), got {momentum}"));
            }
        }
    }
    Ok(())
}

/// Copy `rows` of `x` (optionally standardised) into a contiguous buffer.
fn prepare(x: &ArrayView2<f32>, std: Option<&Standardizer>) -> Vec<f32> {
    let d = x.ncols();
    let mut out = vec![0.0f32; x.len()];
    for (src, dst) in x.rows().into_iter().zip(out.chunks_exact_mut(d.max(1))) {
        match std {
            Some(s) => s.apply_row(src.iter().copied(), dst),
            None => dst.iter_mut().zip(src).for_each(|(o, &v)| *o = v),
        }
    }
    out
}

/// Plain mean cross-entropy and accuracy of `head` on a prepared
/// (standardised, contiguous) set, in chunks of the workspace capacity.
fn eval_prepared(
    k: &Kernels,
    head: &Head,
    ws: &mut Workspace,
    x: &[f32],
    y: &[usize],
) -> (f64, f64) {
    let d = head.input_dim;
    let (mut lsum, mut correct) = (0.0f64, 0usize);
    let mut start = 0;
    while start < y.len() {
        let rows = ws.cap.min(y.len() - start);
        ws.acts[0][..rows * d].copy_from_slice(&x[start * d..(start + rows) * d]);
        ws.targets[..rows].copy_from_slice(&y[start..start + rows]);
        ws.forward(k, head, rows, None);
        lsum += ws.loss(k, rows, 0.0, false).0;
        correct += ws.correct(rows);
        start += rows;
    }
    let n = y.len().max(1) as f64;
    (lsum / n, correct as f64 / n)
}

/// Plain mean cross-entropy and accuracy of a head on `(x, y)` (inference
/// mode, standardiser applied).
pub fn evaluate(head: &Head, x: ArrayView2<f32>, y: &[usize]) -> Result<(f32, f32), TrainError> {
    head.check().map_err(TrainError::InvalidConfig)?;
    validate_set("evaluation set", &x, y, head.input_dim, head.n_classes)?;
    if y.is_empty() {
        return Err(TrainError::EmptyDataset);
    }
    let k = kernels::kernels();
    let xs = prepare(&x, head.standardizer.as_ref());
    let mut ws = Workspace::new(&head.dims(), y.len().min(256), false);
    let (l, a) = eval_prepared(k, head, &mut ws, &xs, y);
    Ok((l as f32, a as f32))
}

/// Is `(acc, loss)` better than the best so far under `monitor`?
fn better(monitor: Monitor, cand: (f64, f64), best: Option<(f64, f64)>) -> bool {
    let Some((best_loss, best_acc)) = best else {
        return true;
    };
    let (loss, acc) = cand;
    match monitor {
        Monitor::ValLoss => loss < best_loss,
        Monitor::ValAccuracy => acc > best_acc || (acc == best_acc && loss < best_loss),
    }
}

fn copy_layers(dst: &mut [Dense], src: &[Dense]) {
    for (d, s) in dst.iter_mut().zip(src) {
        d.w.assign(&s.w);
        d.b.assign(&s.b);
    }
}

/// Train a head on features `x` (`n × d`) with labels `y` (`0..n_classes`).
///
/// * Mini-batches of `cfg.batch_size` (the last one may be smaller; a
///   dataset smaller than a batch is one batch) in an order reshuffled every
///   epoch by a `ChaCha8Rng` seeded from `cfg.seed`.
/// * After each epoch `on_epoch` receives the [`EpochMetrics`]; the monitor
///   (`cfg.monitor`, on the validation set if given, else on the training
///   metrics) decides the best epoch, whose weights are restored at the end;
///   with `cfg.patience = Some(p)` training stops after `p` epochs without
///   improvement.
/// * Everything is single-threaded and seeded: the same inputs and config
///   give bit-identical heads on the same machine and kernel ISA.
/// * No allocation happens per batch: all buffers are created up front.
///
/// Errors: invalid inputs/config (with a message saying what is wrong) and
/// [`TrainError::Diverged`] when the loss becomes NaN/infinite or explodes.
pub fn train(
    x: ArrayView2<f32>,
    y: &[usize],
    val: Option<(ArrayView2<f32>, &[usize])>,
    n_classes: usize,
    head_cfg: &HeadConfig,
    cfg: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochMetrics),
) -> Result<TrainOutcome, TrainError> {
    if n_classes < 2 {
        return Err(TrainError::TooFewClasses(n_classes));
    }
    if x.nrows() == 0 || y.is_empty() {
        return Err(TrainError::EmptyDataset);
    }
    let dim = x.ncols();
    if dim == 0 {
        return Err(TrainError::InvalidConfig("features have 0 columns".into()));
    }
    validate_config(head_cfg, cfg)?;
    validate_set("training set", &x, y, dim, n_classes)?;
    if let Some((vx, vy)) = &val {
        validate_set("validation set", vx, vy, dim, n_classes)?;
    }
    let val = val.filter(|(_, vy)| !vy.is_empty());

    let k = kernels::kernels();
    let n = y.len();
    let standardizer = cfg.standardize.then(|| Standardizer::fit(x));
    let xs = prepare(&x, standardizer.as_ref());
    let val_data = val.map(|(vx, vy)| (prepare(&vx, standardizer.as_ref()), vy));
    let cw = class_weights(y, n_classes, cfg.class_weights);
    let weighted = cfg.class_weights != ClassWeights::None;

    let mut head = Head::new(dim, n_classes, head_cfg, cfg.seed);
    head.standardizer = standardizer;
    let dims = head.dims();
    let bs = cfg.batch_size.min(n);
    let dropout = head_cfg.dropout > 0.0;
    let mut ws = Workspace::new(&dims, bs, dropout);
    let mut opt = OptState::new(cfg.optimizer, &head);
    let decay = Decay {
        coef: cfg.weight_decay,
        decoupled: cfg.decoupled_weight_decay,
    };

    let mut shuffle_rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    shuffle_rng.set_stream(1);
    let mut dropout_rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    dropout_rng.set_stream(2);
    let mut order: Vec<usize> = (0..n).collect();

    let mut best_layers = head.layers.clone();
    let mut best: Option<(f64, f64)> = None;
    let mut best_epoch = 0usize;
    let mut since_best = 0usize;
    let mut history = Vec::with_capacity(cfg.epochs);
    let mut stopped_early = false;
    let mut explode_at: Option<f64> = None;

    let diverged =
        |epoch: usize, lr: f32, loss: f64, best_layers: &[Dense], head: &Head, have_best: bool| {
            let best = have_best.then(|| {
                let mut h = head.clone();
                copy_layers(&mut h.layers, best_layers);
                Box::new(h)
            });
            TrainError::Diverged {
                epoch,
                lr,
                loss: loss as f32,
                best,
            }
        };

    for epoch in 0..cfg.epochs {
        let t0 = Instant::now();
        let lr = cfg.schedule.lr_at(cfg.lr, epoch, cfg.epochs);
        order.shuffle(&mut shuffle_rng);
        let (mut lsum, mut wsum, mut correct) = (0.0f64, 0.0f64, 0usize);
        for batch in order.chunks(bs) {
            let rows = batch.len();
            for (r, &i) in batch.iter().enumerate() {
                ws.acts[0][r * dim..(r + 1) * dim].copy_from_slice(&xs[i * dim..(i + 1) * dim]);
                ws.targets[r] = y[i];
                ws.weights[r] = cw[y[i]];
            }
            let drop = dropout.then_some((head_cfg.dropout, &mut dropout_rng));
            ws.forward(k, &head, rows, drop);
            let (bl, bw) = ws.loss(k, rows, cfg.label_smoothing, weighted);
            let batch_loss = bl / bw.max(f64::MIN_POSITIVE);
            let limit = *explode_at.get_or_insert(EXPLODED_LOSS.max(100.0 * batch_loss));
            if !batch_loss.is_finite() || batch_loss > limit {
                return Err(diverged(
                    epoch + 1,
                    lr,
                    batch_loss,
                    &best_layers,
                    &head,
                    best.is_some(),
                ));
            }
            lsum += bl;
            wsum += bw;
            correct += ws.correct(rows);
            ws.backward(k, &head, rows, dropout);
            let grad_scale = match cfg.clip_grad_norm {
                Some(max) => {
                    let norm = ws.grad_sq_norm(k).sqrt();
                    if norm > max as f64 {
                        (max as f64 / (norm + 1e-6)) as f32
                    } else {
                        1.0
                    }
                }
                None => 1.0,
            };
            opt.step(k, &mut head, &ws.grads, lr, grad_scale, decay);
        }
        let params_finite = head.layers.iter().all(|l| {
            k.sum_sq(l.w.as_slice().expect("layout")).is_finite()
                && k.sum_sq(l.b.as_slice().expect("layout")).is_finite()
        });
        if !params_finite {
            return Err(diverged(
                epoch + 1,
                lr,
                f64::NAN,
                &best_layers,
                &head,
                best.is_some(),
            ));
        }
        let train_loss = lsum / wsum.max(f64::MIN_POSITIVE);
        let train_acc = correct as f64 / n as f64;
        let (val_loss, val_acc) = match &val_data {
            Some((vx, vy)) => {
                let (l, a) = eval_prepared(k, &head, &mut ws, vx, vy);
                if !l.is_finite() {
                    return Err(diverged(
                        epoch + 1,
                        lr,
                        l,
                        &best_layers,
                        &head,
                        best.is_some(),
                    ));
                }
                (Some(l), Some(a))
            }
            None => (None, None),
        };
        let cand = (val_loss.unwrap_or(train_loss), val_acc.unwrap_or(train_acc));
        let improved = better(cfg.monitor, cand, best);
        if improved {
            best = Some(cand);
            best_epoch = epoch + 1;
            since_best = 0;
            copy_layers(&mut best_layers, &head.layers);
        } else {
            since_best += 1;
        }
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            epochs: cfg.epochs,
            train_loss: train_loss as f32,
            train_acc: train_acc as f32,
            val_loss: val_loss.map(|v| v as f32),
            val_acc: val_acc.map(|v| v as f32),
            lr,
            seconds: t0.elapsed().as_secs_f64(),
            improved,
        };
        on_epoch(&metrics);
        history.push(metrics);
        if let Some(p) = cfg.patience
            && since_best >= p.max(1)
            && epoch + 1 < cfg.epochs
        {
            stopped_early = true;
            break;
        }
    }
    copy_layers(&mut head.layers, &best_layers);
    Ok(TrainOutcome {
        head,
        history,
        best_epoch,
        stopped_early,
    })
}
