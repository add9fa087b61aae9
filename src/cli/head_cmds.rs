//! `train`, `eval` and `predict`: the head's life cycle on the command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use ndarray::{Array2, Axis};

use super::{ModelArgs, load_dataset_features, open_cache};
use crate::backbone::{Backbone, ModelSpec};
use crate::head::{
    ClassWeights, HeadConfig, LrSchedule, Monitor, OptimizerKind, TrainConfig, TrainError,
    stratified_split, train,
};
use crate::headfile::{BackboneInfo, HeadFile};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Training images, laid out as DIR/<label>/<images>.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Where to write the trained head (safetensors).
    #[arg(short = 'o', long = "output", value_name = "HEAD")]
    pub output: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Validation images (same labels); default: a stratified split of DIR.
    #[arg(long, value_name = "DIR", conflicts_with = "val_split")]
    pub val: Option<PathBuf>,
    /// Fraction of DIR held out for validation (stratified); 0 = none.
    #[arg(long, default_value_t = 0.2, value_name = "F")]
    pub val_split: f32,
    /// Hidden layer widths, e.g. `256` or `512,128`; empty (`--hidden ""`) or `none` = linear softmax head.
    #[arg(long, default_value = "256", value_name = "N,..")]
    pub hidden: String,
    /// Dropout on the input of every dense layer while training.
    #[arg(long, default_value_t = 0.5, value_name = "F")]
    pub dropout: f32,
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub epochs: usize,
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub batch: usize,
    #[arg(long, default_value_t = 1e-3, value_name = "F")]
    pub lr: f32,
    /// adam or sgd.
    #[arg(long, default_value = "adam", value_name = "NAME")]
    pub optimizer: String,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9, value_name = "F")]
    pub momentum: f32,
    /// Nesterov momentum (SGD).
    #[arg(long)]
    pub nesterov: bool,
    /// Weight decay on the weights (decoupled, AdamW-style, unless --l2).
    #[arg(long, default_value_t = 1e-2, value_name = "F")]
    pub weight_decay: f32,
    /// Apply weight decay as an L2 penalty in the gradient instead.
    #[arg(long)]
    pub l2: bool,
    /// Learning-rate schedule: constant, cosine, or step:EVERY:GAMMA.
    #[arg(long, default_value = "constant", value_name = "S")]
    pub schedule: String,
    /// Clip the global gradient norm to this value.
    #[arg(long, value_name = "F")]
    pub clip: Option<f32>,
    /// Stop after N epochs without improvement (0 = train all epochs); the best weights are kept.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub patience: usize,
    /// What early stopping watches: loss or accuracy (validation).
    #[arg(long, default_value = "loss", value_name = "M")]
    pub monitor: String,
    #[arg(long, default_value_t = 0.0, value_name = "F")]
    pub label_smoothing: f32,
    /// none or balanced (n / (classes * count) per class).
    #[arg(long, default_value = "none", value_name = "MODE")]
    pub class_weights: String,
    /// Standardise features with the training mean/std (stored with the head).
    #[arg(long)]
    pub standardize: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Draw loss and accuracy per epoch to a .png or .svg file.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value = "auto", value_name = "MODE")]
    pub progress: String,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    #[arg(long, value_name = "HEAD")]
    pub head: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// One JSON object with accuracy, per_class and confusion.
    #[arg(long)]
    pub json: bool,
    /// Draw the confusion matrix to a .png or .svg file.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    #[arg(long, default_value = "auto", value_name = "MODE")]
    pub progress: String,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    #[arg(long, value_name = "HEAD")]
    pub head: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long, short = 'k', default_value_t = 3, value_name = "K")]
    pub top_k: usize,
    /// One JSON object per image and line.
    #[arg(long)]
    pub json: bool,
}

fn train_config(a: &TrainArgs) -> Result<TrainConfig> {
    let optimizer = match a.optimizer.as_str() {
        "adam" | "adamw" => OptimizerKind::adam(),
        "sgd" => OptimizerKind::Sgd {
            momentum: a.momentum,
            nesterov: a.nesterov,
        },
        o => bail!("--optimizer {o:?}: expected adam or sgd"),
    };
    let schedule = match a.schedule.as_str() {
        "constant" => LrSchedule::Constant,
        "cosine" => LrSchedule::Cosine,
        s if s.starts_with("step:") => {
            let parts: Vec<&str> = s.split(':').collect();
            match (
                parts.get(1).map(|p| p.parse::<usize>()),
                parts.get(2).map(|p| p.parse::<f32>()),
            ) {
                (Some(Ok(every)), Some(Ok(gamma))) if parts.len() == 3 => {
                    LrSchedule::Step { every, gamma }
                }
                _ => bail!("--schedule {s:?}: expected step:EVERY:GAMMA, e.g. step:10:0.5"),
            }
        }
        s => bail!("--schedule {s:?}: expected constant, cosine or step:EVERY:GAMMA"),
    };
    let class_weights = match a.class_weights.as_str() {
        "none" => ClassWeights::None,
        "balanced" => ClassWeights::Balanced,
        c => bail!("--class-weights {c:?}: expected none or balanced"),
    };
    let monitor = match a.monitor.as_str() {
        "loss" => Monitor::ValLoss,
        "accuracy" | "acc" => Monitor::ValAccuracy,
        m => bail!("--monitor {m:?}: expected loss or accuracy"),
    };
    Ok(TrainConfig {
        epochs: a.epochs,
        batch_size: a.batch,
        lr: a.lr,
        optimizer,
        weight_decay: a.weight_decay,
        decoupled_weight_decay: !a.l2,
        schedule,
        clip_grad_norm: a.clip,
        patience: (a.patience > 0).then_some(a.patience),
        monitor,
        label_smoothing: a.label_smoothing,
        class_weights,
        standardize: a.standardize,
        seed: a.seed,
    })
}

/// `""`/`none` → linear head; `256` or `512,128` → hidden widths.
fn parse_hidden(s: &str) -> Result<Vec<usize>> {
    let s = s.trim();
    if s.is_empty() || s == "none" || s == "linear" {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|w| match w.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => bail!(
                "--hidden {s:?}: expected widths like 256 or 512,128, or \"\" for a linear head"
            ),
        })
        .collect()
}

/// Maps `labels` (of a folder) onto `known` by name: Some(index) or None.
fn map_labels(labels: &[String], known: &[String]) -> Vec<Option<usize>> {
    labels
        .iter()
        .map(|l| known.iter().position(|k| k == l))
        .collect()
}

fn backbone_info(b: &Backbone) -> BackboneInfo {
    BackboneInfo {
        name: b.manifest.name.clone(),
        fingerprint: b.fingerprint.clone(),
        model_sha256: b.model_sha256.clone(),
        manifest: b.manifest.clone(),
    }
}

pub fn train_cmd(a: TrainArgs) -> Result<ExitCode> {
    let cfg = train_config(&a)?;
    if !(0.0..1.0).contains(&a.val_split) {
        bail!("--val-split {}: expected a fraction in [0, 1)", a.val_split);
    }
    let head_cfg = HeadConfig {
        hidden: parse_hidden(&a.hidden)?,
        dropout: a.dropout,
    };
    let backbone = a.model.load_lazy()?;
    let cache = open_cache(&a.model, &backbone)?;
    let feats = load_dataset_features(&a.dir, &backbone, &cache, &a.progress)?;

    // classes without a single usable image cannot be learned: say so, leave them out
    let counts = {
        let mut c = vec![0usize; feats.labels.len()];
        feats.y.iter().for_each(|&y| c[y] += 1);
        c
    };
    let kept: Vec<usize> = (0..counts.len()).filter(|&c| counts[c] > 0).collect();
    for (c, n) in counts.iter().enumerate() {
        if *n == 0 {
            eprintln!(
                "warning: class {:?} has no usable images; it is left out",
                feats.labels[c]
            );
        }
    }
    if kept.len() < 2 {
        bail!(
            "{}: need at least 2 classes with images to train, found {} ({})",
            a.dir.display(),
            kept.len(),
            kept.iter()
                .map(|&c| feats.labels[c].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let labels: Vec<String> = kept.iter().map(|&c| feats.labels[c].clone()).collect();
    let remap: Vec<Option<usize>> = (0..counts.len())
        .map(|c| kept.iter().position(|&k| k == c))
        .collect();
    let y_all: Vec<usize> = feats.y.iter().map(|&y| remap[y].unwrap()).collect();
    let n_classes = labels.len();

    let (x_train, y_train, x_val, y_val) = if let Some(val_dir) = &a.val {
        let vf = load_dataset_features(val_dir, &backbone, &cache, &a.progress)?;
        let map = map_labels(&vf.labels, &labels);
        for (i, m) in map.iter().enumerate() {
            if m.is_none() {
                eprintln!(
                    "warning: {}: class {:?} is not among the training classes; its images are left out",
                    val_dir.display(),
                    vf.labels[i]
                );
            }
        }
        let rows: Vec<usize> = (0..vf.y.len())
            .filter(|&i| map[vf.y[i]].is_some())
            .collect();
        let yv: Vec<usize> = rows.iter().map(|&i| map[vf.y[i]].unwrap()).collect();
        (
            feats.x.clone(),
            y_all.clone(),
            Some(vf.x.select(Axis(0), &rows)),
            yv,
        )
    } else if a.val_split > 0.0 {
        let (tr, va) = stratified_split(&y_all, n_classes, a.val_split, a.seed);
        let pick = |idx: &[usize]| -> (Array2<f32>, Vec<usize>) {
            (
                feats.x.select(Axis(0), idx),
                idx.iter().map(|&i| y_all[i]).collect(),
            )
        };
        let (xt, yt) = pick(&tr);
        let (xv, yv) = pick(&va);
        if yv.is_empty() {
            (xt, yt, None, yv)
        } else {
            (xt, yt, Some(xv), yv)
        }
    } else {
        (feats.x.clone(), y_all.clone(), None, Vec::new())
    };

    eprintln!(
        "training a {} head on {} images ({} classes), validating on {}",
        if head_cfg.hidden.is_empty() {
            "linear".to_string()
        } else {
            format!(
                "{}-hidden MLP",
                head_cfg
                    .hidden
                    .iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>()
                    .join("-")
            )
        },
        y_train.len(),
        n_classes,
        if x_val.is_some() {
            format!("{} images", y_val.len())
        } else {
            "nothing".into()
        }
    );
    let bar = super::progress::epoch_bar(&a.progress, cfg.epochs);
    let t0 = Instant::now();
    let val = x_val.as_ref().map(|x| (x.view(), y_val.as_slice()));
    let result = train(
        x_train.view(),
        &y_train,
        val,
        n_classes,
        &head_cfg,
        &cfg,
        &mut |m| bar.epoch(m),
    );
    bar.finish();
    let outcome = match result {
        Ok(o) => o,
        Err(TrainError::Diverged {
            epoch, lr, loss, ..
        }) => {
            let kept = if a.output.exists() {
                format!("{} was left unchanged", a.output.display())
            } else {
                "no head was written".to_string()
            };
            bail!(
                "training diverged: loss {} at epoch {epoch} (lr {lr} is too high? try --lr {}); {kept}",
                if loss.is_nan() {
                    "became NaN".to_string()
                } else {
                    format!("reached {loss:e}")
                },
                lr / 10.0
            );
        }
        Err(e) => bail!("{}: {e}", a.dir.display()),
    };
    let seconds = t0.elapsed().as_secs_f64();
    let best = &outcome.history[outcome.best_epoch - 1];
    let val_acc = best.val_acc;
    let training = serde_json::json!({
        "dataset": a.dir, "val_dataset": a.val, "val_split": a.val_split,
        "train_samples": y_train.len(), "val_samples": y_val.len(),
        "config": cfg, "best_epoch": outcome.best_epoch, "stopped_early": outcome.stopped_early,
        "val_accuracy": val_acc, "val_loss": best.val_loss, "train_accuracy": best.train_acc,
        "seconds": seconds, "history": outcome.history,
    });
    let mut file = HeadFile::new(
        outcome.head,
        labels.clone(),
        backbone_info(&backbone),
        training,
    );
    file.save(&a.output)?;
    if let Some(p) = &a.plot {
        crate::plot::training_curves(&outcome.history, p)?;
    }
    let epochs_run = outcome.history.len();
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "head": a.output, "labels": labels, "epochs": epochs_run, "best_epoch": outcome.best_epoch,
                "val_accuracy": val_acc, "val_loss": best.val_loss, "train_accuracy": best.train_acc,
                "seconds": seconds, "seconds_per_epoch": seconds / epochs_run as f64,
            })
        );
    } else {
        eprintln!(
            "{} epochs in {seconds:.3} s ({:.2} ms/epoch); kept epoch {}: train acc {:.4}{}",
            epochs_run,
            1e3 * seconds / epochs_run as f64,
            outcome.best_epoch,
            best.train_acc,
            match (best.val_loss, best.val_acc) {
                (Some(l), Some(acc)) => format!(", val loss {l:.4}, val acc {acc:.4}"),
                _ => String::new(),
            }
        );
        eprintln!("wrote {}", a.output.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads a head and the backbone it was trained on (`--model` overrides).
fn load_head_and_backbone(head: &Path, model: &ModelArgs) -> Result<(HeadFile, Backbone)> {
    let file = HeadFile::load(head)?;
    let mut model = model.clone();
    if model.model.is_none() {
        model.model = Some(file.meta.backbone.name.clone());
    }
    let spec: ModelSpec = model.spec()?;
    let backbone = Backbone::load_lazy(&spec)?;
    file.check_backbone(head, &backbone.fingerprint, &backbone.manifest.name)?;
    Ok((file, backbone))
}

pub fn eval_cmd(a: EvalArgs) -> Result<ExitCode> {
    let (file, backbone) = load_head_and_backbone(&a.head, &a.model)?;
    let cache = open_cache(&a.model, &backbone)?;
    let feats = load_dataset_features(&a.dir, &backbone, &cache, &a.progress)?;
    let labels = &file.meta.labels;
    let map = map_labels(&feats.labels, labels);
    let mut unknown = Vec::new();
    for (i, m) in map.iter().enumerate() {
        if m.is_none() {
            let n = feats.y.iter().filter(|&&y| y == i).count();
            unknown.push((feats.labels[i].clone(), n));
            eprintln!(
                "warning: class {:?} of {} is not a label of this head ({n} images left out); head labels: {}",
                feats.labels[i],
                a.dir.display(),
                labels.join(", ")
            );
        }
    }
    let rows: Vec<usize> = (0..feats.y.len())
        .filter(|&i| map[feats.y[i]].is_some())
        .collect();
    if rows.is_empty() {
        bail!(
            "{}: none of its classes ({}) is a label of {} ({})",
            a.dir.display(),
            feats.labels.join(", "),
            a.head.display(),
            labels.join(", ")
        );
    }
    let truth: Vec<usize> = rows.iter().map(|&i| map[feats.y[i]].unwrap()).collect();
    let x = feats.x.select(Axis(0), &rows);
    let predicted = file.head.predict(x.view());
    let ev = crate::metrics::evaluate(labels, &truth, &predicted);
    if let Some(p) = &a.plot {
        crate::plot::confusion_matrix(&ev, p)?;
    }
    if a.json {
        let mut j = serde_json::to_value(&ev)?;
        j["unknown_classes"] = serde_json::json!(
            unknown
                .iter()
                .map(|(l, n)| serde_json::json!({"label": l, "images": n}))
                .collect::<Vec<_>>()
        );
        j["head"] = serde_json::json!(a.head);
        println!("{j}");
    } else {
        print!("{}", ev.to_text());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn predict_cmd(a: PredictArgs) -> Result<ExitCode> {
    let (file, backbone) = load_head_and_backbone(&a.head, &a.model)?;
    let mut session = backbone.session()?;
    let k = a.top_k.max(1).min(file.meta.n_classes);
    let mut failed = 0;
    for path in &a.images {
        let t0 = Instant::now();
        let img = match crate::preprocess::decode_file(path) {
            Ok(img) => img,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                failed += 1;
                continue;
            }
        };
        let features = session
            .run_image(&img)
            .with_context(|| format!("{}", path.display()))?
            .features;
        let x = Array2::from_shape_vec((1, features.len()), features)?;
        let probs = file.head.predict_proba(x.view());
        let top = crate::metrics::top_k(probs.row(0).as_slice().unwrap(), k);
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        if a.json {
            let top_json: Vec<_> = top
                .iter()
                .map(|&(i, p)| serde_json::json!({"label": file.meta.labels[i], "probability": p}))
                .collect();
            println!(
                "{}",
                serde_json::json!({"image": path, "top": top_json, "ms": ms})
            );
        } else {
            let s: Vec<String> = top
                .iter()
                .map(|&(i, p)| format!("{} {:.3}", file.meta.labels[i], p))
                .collect();
            println!("{}\t{}", path.display(), s.join("\t"));
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
