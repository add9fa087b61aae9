// Head: gradient checks against an independent f64 implementation, training
// behaviour, reproducibility, optimisers/schedules, divergence, input errors
// and the stratified split.

use edgetune::head::{
    ClassWeights, Head, HeadConfig, LrSchedule, Monitor, OptimizerKind, TrainConfig, TrainError,
    class_weights, evaluate, loss_and_grads, stratified_split, train,
};
use ndarray::{Array1, Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

// ---------------------------------------------------------------- helpers

/// Well-separated Gaussian blobs: `n` samples, `d` dims, `c` classes.
fn blobs(n: usize, d: usize, c: usize, spread: f32, seed: u64) -> (Array2<f32>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centers = Array2::from_shape_fn((c, d), |_| rng.gen_range(-1.0f32..1.0) * 3.0);
    let noise = Normal::new(0.0f32, spread).unwrap();
    let y: Vec<usize> = (0..n).map(|i| i % c).collect();
    let x = Array2::from_shape_fn((n, d), |(i, j)| centers[[y[i], j]] + noise.sample(&mut rng));
    (x, y)
}

fn quiet() -> impl FnMut(&edgetune::head::EpochMetrics) {
    |_| {}
}

fn accuracy(head: &Head, x: &Array2<f32>, y: &[usize]) -> f32 {
    let pred = head.predict(x.view());
    pred.iter().zip(y).filter(|(p, t)| p == t).count() as f32 / y.len() as f32
}

fn assert_heads_bit_identical(a: &Head, b: &Head) {
    assert_eq!(a.layers.len(), b.layers.len());
    for (la, lb) in a.layers.iter().zip(&b.layers) {
        assert!(
            la.w.iter()
                .zip(lb.w.iter())
                .all(|(x, y)| x.to_bits() == y.to_bits())
        );
        assert!(
            la.b.iter()
                .zip(lb.b.iter())
                .all(|(x, y)| x.to_bits() == y.to_bits())
        );
    }
    let (sa, sb) = (a.standardizer.as_ref(), b.standardizer.as_ref());
    assert_eq!(sa, sb);
}

// ------------------------------------------------- gradient check (f64 FD)

/// Independent f64 forward pass + weighted, label-smoothed cross-entropy.
fn loss_f64(
    layers: &[(Array2<f64>, Array1<f64>)],
    x: &Array2<f64>,
    y: &[usize],
    w: Option<&[f32]>,
    eps: f64,
) -> f64 {
    let mut h = x.clone();
    for (l, (wm, b)) in layers.iter().enumerate() {
        h = h.dot(wm) + b;
        if l + 1 < layers.len() {
            h.mapv_inplace(|v| v.max(0.0));
        }
    }
    let c = h.ncols();
    let (mut num, mut den) = (0.0, 0.0);
    for (i, row) in h.axis_iter(Axis(0)).enumerate() {
        let max = row.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        let mut ce = 0.0;
        for (j, &z) in row.iter().enumerate() {
            let t = if j == y[i] {
                1.0 - eps + eps / c as f64
            } else {
                eps / c as f64
            };
            ce += t * (lse - z);
        }
        let wi = w.map_or(1.0, |w| w[i] as f64);
        num += wi * ce;
        den += wi;
    }
    num / den
}

fn grad_check(hidden: &[usize], eps_smooth: f32, weighted: bool, seed: u64) {
    let (n, d, c) = (9, 5, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Array2::from_shape_fn((n, d), |_| rng.gen_range(-1.5f32..1.5));
    let y: Vec<usize> = (0..n).map(|i| [0, 1, 2, 0, 0, 1, 0, 2, 0][i] % c).collect();
    let mut head = Head::new(d, c, &HeadConfig::mlp(hidden, 0.0), seed);
    for l in &mut head.layers {
        l.b.iter_mut()
            .for_each(|b| *b = rng.gen_range(-0.3f32..0.3));
    }
    let sw: Option<Vec<f32>> = weighted.then(|| {
        let cw = class_weights(&y, c, ClassWeights::Balanced);
        y.iter().map(|&t| cw[t]).collect()
    });
    let (loss, grads) = loss_and_grads(&head, x.view(), &y, sw.as_deref(), eps_smooth);

    let x64 = x.mapv(|v| v as f64);
    let mut params: Vec<(Array2<f64>, Array1<f64>)> = head
        .layers
        .iter()
        .map(|l| (l.w.mapv(|v| v as f64), l.b.mapv(|v| v as f64)))
        .collect();
    let l64 = loss_f64(&params, &x64, &y, sw.as_deref(), eps_smooth as f64);
    assert!(
        (loss as f64 - l64).abs() < 1e-5 * l64.max(1.0),
        "loss {loss} vs f64 {l64}"
    );

    let h = 1e-5;
    let mut worst = 0.0f64;
    for l in 0..params.len() {
        for idx in 0..params[l].0.len() {
            let (r, cc) = (idx / params[l].0.ncols(), idx % params[l].0.ncols());
            let orig = params[l].0[[r, cc]];
            params[l].0[[r, cc]] = orig + h;
            let lp = loss_f64(&params, &x64, &y, sw.as_deref(), eps_smooth as f64);
            params[l].0[[r, cc]] = orig - h;
            let lm = loss_f64(&params, &x64, &y, sw.as_deref(), eps_smooth as f64);
            params[l].0[[r, cc]] = orig;
            let num = (lp - lm) / (2.0 * h);
            let ana = grads[l].0[[r, cc]] as f64;
            let err = (num - ana).abs() / (1e-3 + num.abs().max(ana.abs()));
            worst = worst.max(err);
            assert!(
                (num - ana).abs() <= 1e-4 + 1e-3 * num.abs(),
                "dW{l}[{r},{cc}]: analytic {ana} vs numeric {num}"
            );
        }
        for j in 0..params[l].1.len() {
            let orig = params[l].1[j];
            params[l].1[j] = orig + h;
            let lp = loss_f64(&params, &x64, &y, sw.as_deref(), eps_smooth as f64);
            params[l].1[j] = orig - h;
            let lm = loss_f64(&params, &x64, &y, sw.as_deref(), eps_smooth as f64);
            params[l].1[j] = orig;
            let num = (lp - lm) / (2.0 * h);
            let ana = grads[l].1[j] as f64;
            assert!(
                (num - ana).abs() <= 1e-4 + 1e-3 * num.abs(),
                "db{l}[{j}]: analytic {ana} vs numeric {num}"
            );
        }
    }
    println!(
        "hidden {hidden:?} smoothing {eps_smooth} weighted {weighted}: worst relative error {worst:.2e}"
    );
}

#[test]
fn gradient_check_linear_head() {
    grad_check(&[], 0.0, false, 1);
    grad_check(&[], 0.1, true, 2);
}

#[test]
fn gradient_check_mlp_heads() {
    grad_check(&[4], 0.0, false, 3);
    grad_check(&[6], 0.1, true, 4);
    grad_check(&[7, 4], 0.2, true, 5);
    grad_check(&[3, 5, 4], 0.0, true, 6);
}

#[test]
fn loss_and_grads_matches_ndarray_forward() {
    let (x, y) = blobs(20, 8, 3, 1.0, 7);
    let head = Head::new(8, 3, &HeadConfig::mlp(&[5], 0.0), 7);
    // Head::logits against a plain ndarray forward.
    let mut h = x.clone();
    for (l, layer) in head.layers.iter().enumerate() {
        h = h.dot(&layer.w) + &layer.b;
        if l + 1 < head.layers.len() {
            h.mapv_inplace(|v| v.max(0.0));
        }
    }
    let z = head.logits(x.view());
    assert!(z.iter().zip(h.iter()).all(|(a, b)| (a - b).abs() < 1e-4));
    let p = head.predict_proba(x.view());
    for row in p.rows() {
        assert!((row.sum() - 1.0).abs() < 1e-5);
    }
    let (loss, _) = loss_and_grads(&head, x.view(), &y, None, 0.0);
    let (eval_loss, _) = evaluate(&head, x.view(), &y).unwrap();
    assert!((loss - eval_loss).abs() < 1e-6);
}

// ------------------------------------------------------------ training

fn fit_config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        patience: None,
        weight_decay: 0.0,
        lr: 1e-2,
        ..TrainConfig::default()
    }
}

#[test]
fn linear_head_separates_blobs() {
    let (x, y) = blobs(150, 32, 3, 0.5, 11);
    let mut epochs_seen = Vec::new();
    let out = train(
        x.view(),
        &y,
        None,
        3,
        &HeadConfig::linear(),
        &fit_config(60),
        &mut |m| epochs_seen.push(m.epoch),
    )
    .unwrap();
    assert_eq!(epochs_seen, (1..=60).collect::<Vec<_>>());
    assert_eq!(out.history.len(), 60);
    assert_eq!(accuracy(&out.head, &x, &y), 1.0);
    assert!(out.head.standardizer.is_some());
    assert!(out.history.last().unwrap().train_loss < out.history[0].train_loss);
}

#[test]
fn mlp_head_separates_xor_like_data() {
    // Not linearly separable: class = sign(x0)·sign(x1) (XOR quadrants).
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let n = 200;
    let x = Array2::from_shape_fn((n, 6), |_| rng.gen_range(-1.0f32..1.0));
    let y: Vec<usize> = x
        .rows()
        .into_iter()
        .map(|r| {
            let (a, b) = (r[0] + 0.1 * r[0].signum(), r[1] + 0.1 * r[1].signum());
            usize::from((a > 0.0) != (b > 0.0))
        })
        .collect();
    let head_cfg = HeadConfig::mlp(&[32], 0.0);
    let out = train(
        x.view(),
        &y,
        None,
        2,
        &head_cfg,
        &fit_config(300),
        &mut quiet(),
    )
    .unwrap();
    assert_eq!(
        accuracy(&out.head, &x, &y),
        1.0,
        "final train loss {}",
        out.history.last().unwrap().train_loss
    );
    // A linear head cannot do this.
    let lin = train(
        x.view(),
        &y,
        None,
        2,
        &HeadConfig::linear(),
        &fit_config(50),
        &mut quiet(),
    )
    .unwrap();
    assert!(accuracy(&lin.head, &x, &y) < 0.9);
}

#[test]
fn mlp_with_dropout_separates_blobs_on_realistic_width() {
    let (x, y) = blobs(120, 1280, 2, 2.0, 13);
    let head_cfg = HeadConfig::mlp(&[64], 0.3);
    let cfg = TrainConfig {
        epochs: 20,
        patience: None,
        ..TrainConfig::default()
    };
    let out = train(x.view(), &y, None, 2, &head_cfg, &cfg, &mut quiet()).unwrap();
    assert_eq!(accuracy(&out.head, &x, &y), 1.0);
}

#[test]
fn seeded_runs_are_bit_identical() {
    let (x, y) = blobs(90, 40, 3, 2.5, 14);
    let (tr, va) = stratified_split(&y, 3, 0.25, 3);
    let xt = x.select(Axis(0), &tr);
    let yt: Vec<usize> = tr.iter().map(|&i| y[i]).collect();
    let xv = x.select(Axis(0), &va);
    let yv: Vec<usize> = va.iter().map(|&i| y[i]).collect();
    let head_cfg = HeadConfig::mlp(&[16, 8], 0.3);
    let cfg = TrainConfig {
        epochs: 15,
        batch_size: 16,
        label_smoothing: 0.1,
        class_weights: ClassWeights::Balanced,
        clip_grad_norm: Some(1.0),
        seed: 42,
        ..TrainConfig::default()
    };
    let run = |cfg: &TrainConfig| {
        train(
            xt.view(),
            &yt,
            Some((xv.view(), &yv)),
            3,
            &head_cfg,
            cfg,
            &mut quiet(),
        )
        .unwrap()
    };
    let (a, b) = (run(&cfg), run(&cfg));
    assert_heads_bit_identical(&a.head, &b.head);
    assert_eq!(a.best_epoch, b.best_epoch);
    for (ma, mb) in a.history.iter().zip(&b.history) {
        assert_eq!(ma.train_loss.to_bits(), mb.train_loss.to_bits());
        assert_eq!(ma.val_loss.map(f32::to_bits), mb.val_loss.map(f32::to_bits));
    }
    let c = run(&TrainConfig {
        seed: 43,
        ..cfg.clone()
    });
    assert_ne!(a.head.layers[0].w, c.head.layers[0].w);
}

#[test]
fn optimisers_and_schedules_reduce_loss() {
    let (x, y) = blobs(96, 24, 4, 1.5, 15);
    let opts = [
        ("adam", OptimizerKind::adam(), 1e-2, 0.0, true),
        ("adamw", OptimizerKind::adam(), 1e-2, 1e-2, true),
        ("adam+l2", OptimizerKind::adam(), 1e-2, 1e-3, false),
        (
            "sgd",
            OptimizerKind::Sgd {
                momentum: 0.0,
                nesterov: false,
            },
            0.1,
            0.0,
            false,
        ),
        (
            "sgd momentum",
            OptimizerKind::sgd_momentum(),
            0.05,
            1e-4,
            false,
        ),
        (
            "sgd nesterov",
            OptimizerKind::Sgd {
                momentum: 0.9,
                nesterov: true,
            },
            0.05,
            1e-3,
            true,
        ),
    ];
    let schedules = [
        LrSchedule::Constant,
        LrSchedule::Step {
            every: 3,
            gamma: 0.5,
        },
        LrSchedule::Cosine,
    ];
    for (name, optimizer, lr, wd, decoupled) in opts {
        for schedule in schedules {
            for hidden in [vec![], vec![16]] {
                let cfg = TrainConfig {
                    epochs: 10,
                    batch_size: 16,
                    lr,
                    optimizer,
                    weight_decay: wd,
                    decoupled_weight_decay: decoupled,
                    schedule,
                    clip_grad_norm: Some(5.0),
                    patience: None,
                    ..TrainConfig::default()
                };
                let out = train(
                    x.view(),
                    &y,
                    None,
                    4,
                    &HeadConfig::mlp(&hidden, 0.1),
                    &cfg,
                    &mut quiet(),
                )
                .unwrap();
                let (first, last) = (
                    out.history[0].train_loss,
                    out.history.last().unwrap().train_loss,
                );
                assert!(
                    last < first,
                    "{name} {schedule:?} {hidden:?}: loss {first} -> {last}"
                );
                let lrs: Vec<f32> = out.history.iter().map(|m| m.lr).collect();
                assert_eq!(lrs[0], lr);
                match schedule {
                    LrSchedule::Constant => assert!(lrs.iter().all(|&l| l == lr)),
                    LrSchedule::Step { .. } => {
                        assert_eq!(lrs[2], lr);
                        assert!((lrs[3] - lr * 0.5).abs() < 1e-9);
                        assert!((lrs[9] - lr * 0.125).abs() < 1e-9);
                    }
                    LrSchedule::Cosine => {
                        assert!(lrs.windows(2).all(|w| w[1] < w[0]));
                        assert!(lrs[9] < 0.05 * lr);
                    }
                }
            }
        }
    }
}

#[test]
fn too_high_lr_diverges_with_clear_error() {
    let (x, y) = blobs(64, 128, 2, 1.0, 16);
    for (head_cfg, optimizer) in [
        (HeadConfig::mlp(&[64], 0.0), OptimizerKind::sgd_momentum()),
        (HeadConfig::mlp(&[32], 0.0), OptimizerKind::adam()),
        (HeadConfig::linear(), OptimizerKind::sgd_momentum()),
    ] {
        let cfg = TrainConfig {
            lr: 1e4,
            optimizer,
            epochs: 50,
            ..TrainConfig::default()
        };
        let err = train(x.view(), &y, None, 2, &head_cfg, &cfg, &mut quiet()).unwrap_err();
        let msg = err.to_string();
        match err {
            TrainError::Diverged { epoch, lr, .. } => {
                assert!(epoch >= 1 && lr == 1e4);
                assert!(
                    msg.contains(&format!("at epoch {epoch}"))
                        && msg.contains("lr 10000 is too high?"),
                    "{msg}"
                );
            }
            other => panic!("expected Diverged, got {other:?}"),
        }
    }
}

#[test]
fn nan_loss_message() {
    let e = TrainError::Diverged {
        epoch: 3,
        lr: 10.0,
        loss: f32::NAN,
        best: None,
    };
    assert_eq!(
        e.to_string(),
        "loss became NaN at epoch 3 (lr 10 is too high?)"
    );
}

#[test]
fn fewer_samples_than_batch_and_singletons() {
    let (x, y) = blobs(5, 16, 2, 0.3, 17);
    let cfg = TrainConfig {
        batch_size: 64,
        epochs: 30,
        lr: 1e-2,
        patience: None,
        ..TrainConfig::default()
    };
    let out = train(
        x.view(),
        &y,
        None,
        2,
        &HeadConfig::mlp(&[8], 0.0),
        &cfg,
        &mut quiet(),
    )
    .unwrap();
    assert_eq!(accuracy(&out.head, &x, &y), 1.0);
    // One sample in total per class, validation of one sample, batch size 1.
    let x1 = x.select(Axis(0), &[0, 1]);
    let cfg1 = TrainConfig {
        batch_size: 1,
        epochs: 3,
        ..TrainConfig::default()
    };
    let out = train(
        x1.view(),
        &y[..2],
        Some((x1.view(), &y[..2])),
        2,
        &HeadConfig::default(),
        &cfg1,
        &mut quiet(),
    );
    assert!(out.is_ok());
}

#[test]
fn early_stopping_restores_best_weights() {
    // Noisy, overlapping classes with a small validation set: the MLP overfits.
    let (x, y) = blobs(160, 64, 2, 6.0, 18);
    let (tr, va) = stratified_split(&y, 2, 0.3, 1);
    let xt = x.select(Axis(0), &tr);
    let yt: Vec<usize> = tr.iter().map(|&i| y[i]).collect();
    let xv = x.select(Axis(0), &va);
    let yv: Vec<usize> = va.iter().map(|&i| y[i]).collect();
    for monitor in [Monitor::ValLoss, Monitor::ValAccuracy] {
        let cfg = TrainConfig {
            epochs: 200,
            patience: Some(5),
            lr: 3e-3,
            monitor,
            ..TrainConfig::default()
        };
        let out = train(
            xt.view(),
            &yt,
            Some((xv.view(), &yv)),
            2,
            &HeadConfig::mlp(&[128], 0.0),
            &cfg,
            &mut quiet(),
        )
        .unwrap();
        assert!(
            out.stopped_early,
            "{monitor:?}: ran all {} epochs",
            out.history.len()
        );
        assert_eq!(out.history.len(), out.best_epoch + 5);
        let best = &out.history[out.best_epoch - 1];
        assert!(best.improved);
        let vl: Vec<f32> = out.history.iter().map(|m| m.val_loss.unwrap()).collect();
        let va_: Vec<f32> = out.history.iter().map(|m| m.val_acc.unwrap()).collect();
        match monitor {
            Monitor::ValLoss => assert_eq!(
                best.val_loss.unwrap(),
                vl.iter().copied().fold(f32::INFINITY, f32::min)
            ),
            Monitor::ValAccuracy => assert_eq!(
                best.val_acc.unwrap(),
                va_.iter().copied().fold(0.0, f32::max)
            ),
        }
        // The returned head has the best epoch's weights.
        let (l, a) = evaluate(&out.head, xv.view(), &yv).unwrap();
        assert!(
            (l - best.val_loss.unwrap()).abs() < 1e-5,
            "restored val loss {l} vs best {:?}",
            best.val_loss
        );
        assert_eq!(a, best.val_acc.unwrap());
    }
}

#[test]
fn bad_inputs_give_clear_errors() {
    let (x, y) = blobs(10, 4, 2, 1.0, 19);
    let hc = HeadConfig::default();
    let cfg = TrainConfig::default();
    let mut cb = quiet();

    let empty = Array2::<f32>::zeros((0, 4));
    let e = train(empty.view(), &[], None, 2, &hc, &cfg, &mut cb).unwrap_err();
    assert!(matches!(e, TrainError::EmptyDataset), "{e}");

    let e = train(x.view(), &y, None, 1, &hc, &cfg, &mut cb).unwrap_err();
    assert_eq!(e.to_string(), "need at least 2 classes, got 1");

    let mut bad = y.clone();
    bad[3] = 5;
    let e = train(x.view(), &bad, None, 2, &hc, &cfg, &mut cb).unwrap_err();
    assert_eq!(
        e.to_string(),
        "training set: label 5 at index 3 is out of range for 2 classes"
    );

    let e = train(x.view(), &y[..9], None, 2, &hc, &cfg, &mut cb).unwrap_err();
    assert!(
        matches!(
            e,
            TrainError::LengthMismatch {
                rows: 10,
                labels: 9,
                ..
            }
        ),
        "{e}"
    );

    let xv = Array2::<f32>::zeros((3, 5));
    let e = train(
        x.view(),
        &y,
        Some((xv.view(), &[0, 1, 0])),
        2,
        &hc,
        &cfg,
        &mut cb,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "validation set: features have 5 columns, expected 4"
    );

    let mut xn = x.clone();
    xn[[7, 2]] = f32::NAN;
    let e = train(xn.view(), &y, None, 2, &hc, &cfg, &mut cb).unwrap_err();
    assert!(
        matches!(e, TrainError::NonFiniteInput { row: 7, .. }),
        "{e}"
    );

    for (hc2, cfg2) in [
        (HeadConfig::mlp(&[], 1.0), cfg.clone()),
        (HeadConfig::mlp(&[0], 0.0), cfg.clone()),
        (
            hc.clone(),
            TrainConfig {
                batch_size: 0,
                ..cfg.clone()
            },
        ),
        (
            hc.clone(),
            TrainConfig {
                lr: -1.0,
                ..cfg.clone()
            },
        ),
        (
            hc.clone(),
            TrainConfig {
                label_smoothing: 1.0,
                ..cfg.clone()
            },
        ),
        (
            hc.clone(),
            TrainConfig {
                epochs: 0,
                ..cfg.clone()
            },
        ),
    ] {
        let e = train(x.view(), &y, None, 2, &hc2, &cfg2, &mut cb).unwrap_err();
        assert!(matches!(e, TrainError::InvalidConfig(_)), "{e}");
        assert!(
            e.to_string()
                .starts_with("invalid training configuration: ")
        );
    }
}

#[test]
fn class_weights_balanced() {
    let y = [0usize, 0, 0, 1, 2, 2];
    assert_eq!(class_weights(&y, 4, ClassWeights::None), vec![1.0; 4]);
    let w = class_weights(&y, 4, ClassWeights::Balanced);
    // n / (C·count): 6/(4·3), 6/(4·1), 6/(4·2), absent -> 0
    assert_eq!(w, vec![0.5, 1.5, 0.75, 0.0]);
}

#[test]
fn stratified_split_properties() {
    let mut rng = ChaCha8Rng::seed_from_u64(20);
    let mut labels: Vec<usize> = (0..200).map(|_| rng.gen_range(0..4)).collect();
    labels.extend([4, 5, 5]); // a singleton class and a class of two
    let (tr, va) = stratified_split(&labels, 7, 0.2, 9);
    // A partition of all indices, sorted.
    let mut all: Vec<usize> = tr.iter().chain(&va).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..labels.len()).collect::<Vec<_>>());
    assert!(tr.windows(2).all(|w| w[0] < w[1]) && va.windows(2).all(|w| w[0] < w[1]));
    for c in 0..6 {
        let total = labels.iter().filter(|&&l| l == c).count();
        let n_tr = tr.iter().filter(|&&i| labels[i] == c).count();
        let n_va = va.iter().filter(|&&i| labels[i] == c).count();
        assert!(n_tr >= 1, "class {c} has no training sample");
        if total >= 10 {
            let frac = n_va as f32 / total as f32;
            assert!((frac - 0.2).abs() < 0.05, "class {c}: val fraction {frac}");
        }
    }
    // Deterministic per seed, different across seeds.
    assert_eq!(
        stratified_split(&labels, 7, 0.2, 9),
        (tr.clone(), va.clone())
    );
    assert_ne!(stratified_split(&labels, 7, 0.2, 10).1, va);
    // Extremes.
    let (tr0, va0) = stratified_split(&labels, 7, 0.0, 1);
    assert!(va0.is_empty() && tr0.len() == labels.len());
    let (tr1, _) = stratified_split(&labels, 7, 1.0, 1);
    assert_eq!(tr1.len(), 6, "one training sample per present class");
}

#[test]
fn head_new_is_seeded_and_shaped() {
    let hc = HeadConfig::mlp(&[32, 16], 0.5);
    let a = Head::new(100, 3, &hc, 5);
    let b = Head::new(100, 3, &hc, 5);
    let c = Head::new(100, 3, &hc, 6);
    assert_eq!(a, b);
    assert_ne!(a.layers[0].w, c.layers[0].w);
    assert_eq!(a.dims(), vec![100, 32, 16, 3]);
    assert_eq!(a.n_params(), 100 * 32 + 32 + 32 * 16 + 16 + 16 * 3 + 3);
    assert!(a.check().is_ok());
    // He init std ≈ sqrt(2/100) for the first layer.
    let w = &a.layers[0].w;
    let std = (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt();
    assert!((std - (2.0f32 / 100.0).sqrt()).abs() < 0.02, "{std}");
    // Glorot bound for the output layer.
    let bound = (6.0f32 / (16.0 + 3.0)).sqrt();
    assert!(a.layers[2].w.iter().all(|v| v.abs() <= bound));
}
