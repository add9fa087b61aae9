//! The command line: argument definitions and one function per subcommand.
//! The binary (`src/main.rs`) only parses and dispatches.

mod device_cmds;
mod doctor_cmd;
mod head_cmds;
mod progress;

pub use head_cmds::{EvalArgs, PredictArgs, TrainArgs};

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::backbone::{Backbone, ModelSpec};
use crate::cache::{FeatureCache, default_cache_path};
use crate::dataset::Dataset;
use crate::extract::{ExtractOptions, ExtractReport, dataset_features, extract};
use crate::manifest::{DEFAULT_MODEL, Manifest, Norm, default_models_dir};

#[derive(Parser, Debug)]
#[command(
    name = "edgetune",
    version,
    about = "Transfer learning on the edge: a frozen ONNX \
backbone, cached features, and a small head trained on the device."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Install or list backbone models (copied from a local folder, sha256-checked).
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Extract backbone features of every image in DIR/<label>/ into the cache.
    Extract(ExtractArgs),
    /// Print one image's feature vector.
    Embed(EmbedArgs),
    /// Show the backbone, its fingerprint, the cache and the SIMD level.
    Info(InfoArgs),
    /// Train a head on DIR/<label>/ images (features from the cache, extracting what is missing).
    Train(Box<TrainArgs>),
    /// Accuracy, per-class precision/recall/F1 and the confusion matrix of a head on DIR.
    Eval(EvalArgs),
    /// Top-k labels for images.
    Predict(PredictArgs),
    /// On the device: trigger → camera → backbone → head → JSON line, display, pins.
    Run(device_cmds::RunArgs),
    /// On the device: take labelled training photos into DATASET/LABEL/ (optionally retrain).
    Capture(device_cmds::CaptureArgs),
    /// On the device: check camera, I²C display, GPIO pins, model, head and disk for the config.
    Doctor(doctor_cmd::DoctorArgs),
}

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// Copy model files into the models folder and verify their sha256.
    Install {
        /// Models to install (default: the default backbone).
        names: Vec<String>,
        /// Folder holding the .onnx files.
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
        /// Destination folder [default: $EDGETUNE_MODELS, ./models, or ~/.local/share/edgetune/models].
        #[arg(long, value_name = "DIR")]
        models_dir: Option<PathBuf>,
    },
    /// List the known manifests and whether their model file is installed.
    List {
        #[arg(long, value_name = "DIR")]
        models_dir: Option<PathBuf>,
    },
}

/// Which backbone, how to run it, and where its features are cached.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Backbone: a built-in name, a manifest .toml, or an .onnx file
    /// [default: mobilenet_v2_1.0_224_features, or the head's own backbone].
    #[arg(long, short = 'm', value_name = "M")]
    pub model: Option<String>,
    /// Folder with model files [default: $EDGETUNE_MODELS, ./models, or ~/.local/share/edgetune/models].
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Feature cache file [default: $EDGETUNE_CACHE or ~/.cache/edgetune/features.redb].
    #[arg(long, value_name = "C")]
    pub cache: Option<PathBuf>,
    /// Override the manifest: model input name.
    #[arg(long, value_name = "NAME")]
    pub input: Option<String>,
    /// Override the manifest: output or node to cut the graph at.
    #[arg(long, value_name = "NAME")]
    pub cut: Option<String>,
    /// Override the manifest: input size, `224` or `HxW`.
    #[arg(long, value_name = "SIZE")]
    pub size: Option<String>,
    /// Override the manifest: `SCALE,OFFSET`, `tf` (x/127.5-1), `imagenet`, or `mean=R,G,B;std=R,G,B`.
    #[arg(long, value_name = "NORM")]
    pub norm: Option<String>,
    /// Override the manifest: feature dimension at the cut.
    #[arg(long, value_name = "N")]
    pub feature_dim: Option<usize>,
}

impl ModelArgs {
    pub fn spec(&self) -> Result<ModelSpec> {
        let has_overrides = self.input.is_some()
            || self.cut.is_some()
            || self.size.is_some()
            || self.norm.is_some()
            || self.feature_dim.is_some();
        let model = self.model.as_deref().unwrap_or(DEFAULT_MODEL);
        let mut spec = match ModelSpec::resolve(model, self.models_dir.as_deref()) {
            Ok(s) => s,
            // a bare .onnx without manifest is fine when the flags describe it
            Err(_) if model.ends_with(".onnx") && has_overrides => {
                let p = PathBuf::from(model);
                let mut m = Manifest::builtin(DEFAULT_MODEL).unwrap();
                m.name = p
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                m.file = p
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                m.sha256.clear();
                m.logits = None;
                m.labels = None;
                ModelSpec {
                    manifest: m,
                    path: p,
                }
            }
            Err(e) => return Err(e),
        };
        let m = &mut spec.manifest;
        if let Some(i) = &self.input {
            m.input = i.clone();
        }
        if let Some(c) = &self.cut {
            m.cut = c.clone();
        }
        if let Some(s) = &self.size {
            let (h, w) = match s.split_once(['x', 'X']) {
                Some((h, w)) => (h.parse::<usize>(), w.parse::<usize>()),
                None => (s.parse::<usize>(), s.parse::<usize>()),
            };
            match (h, w) {
                (Ok(h), Ok(w)) if h > 0 && w > 0 => (m.height, m.width) = (h, w),
                _ => bail!("--size {s:?}: expected N or HxW"),
            }
        }
        if let Some(n) = &self.norm {
            m.preprocess.norm = Norm::parse(n)?;
        }
        if let Some(d) = self.feature_dim {
            m.feature_dim = d;
        }
        Ok(spec)
    }

    pub fn cache_path(&self) -> PathBuf {
        self.cache.clone().unwrap_or_else(default_cache_path)
    }

    pub fn load(&self) -> Result<Backbone> {
        Backbone::load(&self.spec()?)
    }

    /// Verifies the model now, builds tract's plan only if an image needs it.
    pub fn load_lazy(&self) -> Result<Backbone> {
        Backbone::load_lazy(&self.spec()?)
    }
}

#[derive(Args, Debug)]
pub struct ExtractArgs {
    /// Dataset folders, each laid out as DIR/<label>/<images>.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Images per batch; each batch is committed to the cache in one transaction.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub batch: usize,
    /// Worker threads, one backbone session each [default: all cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Progress display: auto (bar on a terminal), bar, plain (a line per batch), none.
    #[arg(long, default_value = "auto", value_name = "MODE")]
    pub progress: String,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct EmbedArgs {
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print a JSON object instead of one number per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Models(cmd) => models(cmd),
        Command::Extract(a) => extract_cmd(a),
        Command::Embed(a) => embed(a),
        Command::Info(a) => info(a),
        Command::Train(a) => head_cmds::train_cmd(*a),
        Command::Eval(a) => head_cmds::eval_cmd(a),
        Command::Predict(a) => head_cmds::predict_cmd(a),
        Command::Run(a) => device_cmds::run_cmd(a),
        Command::Capture(a) => device_cmds::capture_cmd(a),
        Command::Doctor(a) => doctor_cmd::doctor_cmd(a),
    }
}

fn models(cmd: ModelsCommand) -> Result<ExitCode> {
    match cmd {
        ModelsCommand::Install {
            names,
            from,
            models_dir,
        } => {
            let dest = models_dir.unwrap_or_else(default_models_dir);
            let from = from.unwrap_or_else(crate::install::default_source_dir);
            let names = if names.is_empty() {
                vec![DEFAULT_MODEL.to_string()]
            } else {
                names
            };
            for name in names {
                let spec = ModelSpec::resolve(&name, Some(&dest))?;
                match crate::install::install(&spec.manifest, &from, &dest)? {
                    crate::install::Installed::AlreadyPresent(p) => {
                        println!("{name}: already installed at {} (sha256 ok)", p.display())
                    }
                    crate::install::Installed::Copied(p) => {
                        println!("{name}: installed {} (sha256 ok)", p.display())
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::List { models_dir } => {
            let dir = models_dir.unwrap_or_else(default_models_dir);
            for (name, _) in crate::manifest::BUILTIN {
                let spec = ModelSpec::resolve(name, Some(&dir))?;
                let state = if spec.path.exists() {
                    "installed"
                } else {
                    "not installed"
                };
                println!("{name}\t{state}\t{}", spec.path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn open_cache(model: &ModelArgs, backbone: &Backbone) -> Result<FeatureCache> {
    FeatureCache::open(&model.cache_path(), &backbone.fingerprint)
}

pub fn extract_options(threads: Option<usize>, batch: usize) -> ExtractOptions {
    let mut o = ExtractOptions::default();
    if let Some(t) = threads {
        o.threads = t.max(1);
    }
    o.commit_every = batch.max(1);
    o
}

fn print_skipped(report: &ExtractReport) {
    for (path, reason) in &report.skipped {
        eprintln!("skipped {}: {reason}", path.display());
    }
}

fn extract_cmd(a: ExtractArgs) -> Result<ExitCode> {
    let backbone = a.model.load_lazy()?;
    let cache = open_cache(&a.model, &backbone)?;
    let mut opts = extract_options(a.threads, a.batch);
    opts.keep_features = false;
    let mut total = ExtractReport::default();
    let mut ignored = 0usize;
    for dir in &a.dirs {
        let ds = Dataset::scan(dir)?;
        ignored += ds.ignored.len();
        let files: Vec<PathBuf> = ds.samples.iter().map(|s| s.path.clone()).collect();
        let bar = progress::for_mode(&a.progress, &format!("{}", dir.display()))?;
        let (report, _) = extract(&backbone, &cache, &files, &opts, bar.as_ref())?;
        bar.finish();
        if !a.json {
            eprintln!("{}: {}", dir.display(), report.summary());
        }
        total.total += report.total;
        total.extracted += report.extracted;
        total.cached += report.cached;
        total.seconds += report.seconds;
        total.skipped.extend(report.skipped);
    }
    print_skipped(&total);
    let stats = cache.stats()?;
    if a.json {
        let j = serde_json::json!({
            "total": total.total, "extracted": total.extracted, "cached": total.cached,
            "skipped": total.skipped.iter().map(|(p, r)| serde_json::json!({"file": p, "reason": r})).collect::<Vec<_>>(),
            "ignored": ignored, "seconds": total.seconds,
            "images_per_second": if total.seconds > 0.0 { total.extracted as f64 / total.seconds } else { 0.0 },
            "cache": {"path": cache.path(), "entries": stats.entries_this_backbone, "bytes": stats.bytes},
        });
        println!("{j}");
    } else {
        eprintln!("total: {}", total.summary());
        if ignored > 0 {
            eprintln!("ignored {ignored} hidden or non-image files");
        }
        eprintln!(
            "cache: {} ({} vectors for this backbone, {:.1} MB)",
            cache.path().display(),
            stats.entries_this_backbone,
            stats.bytes as f64 / 1e6
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn embed(a: EmbedArgs) -> Result<ExitCode> {
    let backbone = a.model.load()?;
    let img = crate::preprocess::decode_file(&a.image)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.image.display()))?;
    let out = backbone.session()?.run_image(&img)?;
    if a.json {
        let j = serde_json::json!({
            "image": a.image, "model": backbone.manifest.name,
            "fingerprint": backbone.fingerprint, "features": out.features,
        });
        println!("{j}");
    } else {
        let mut s = String::with_capacity(out.features.len() * 12);
        for f in &out.features {
            s.push_str(&format!("{f}\n"));
        }
        print!("{s}");
    }
    Ok(ExitCode::SUCCESS)
}

fn info(a: InfoArgs) -> Result<ExitCode> {
    let spec = a.model.spec()?;
    let model_state = match spec.verify() {
        Ok(sha) => Ok(sha),
        Err(e) => Err(format!("{e:#}")),
    };
    let fingerprint = model_state
        .as_ref()
        .ok()
        .map(|sha| spec.manifest.fingerprint(sha));
    let cache_path = a.model.cache_path();
    let cache = match &fingerprint {
        Some(fp) if cache_path.exists() => FeatureCache::open(&cache_path, fp)
            .and_then(|c| c.stats())
            .map_err(|e| format!("{e:#}")),
        _ => Err("not created yet".to_string()),
    };
    let simd = crate::simd_level_name();
    let kernel_threads = crate::kernels::kernels().threads();
    if a.json {
        let j = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "manifest": spec.manifest,
            "model_path": spec.path,
            "model_sha256": model_state.as_ref().ok(),
            "model_error": model_state.as_ref().err(),
            "fingerprint": fingerprint,
            "cache_path": cache_path,
            "cache": cache.as_ref().ok(),
            "simd": simd,
            "kernel_threads": kernel_threads,
        });
        println!("{}", serde_json::to_string_pretty(&j)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("edgetune {}", env!("CARGO_PKG_VERSION"));
    println!(
        "model:       {} ({})",
        spec.manifest.name,
        spec.path.display()
    );
    match &model_state {
        Ok(sha) => println!("sha256:      {sha} (ok)"),
        Err(e) => println!("sha256:      {e}"),
    }
    if let Some(fp) = &fingerprint {
        println!("fingerprint: {fp}");
    }
    println!("manifest:\n{}", indent(&spec.manifest.to_toml()));
    print!("cache:       {}", cache_path.display());
    match &cache {
        Ok(s) => println!(
            " ({} vectors for this backbone, {} in all, {} failures, {:.1} MB)",
            s.entries_this_backbone,
            s.entries_all,
            s.failures,
            s.bytes as f64 / 1e6
        ),
        Err(e) => println!(" ({e})"),
    }
    println!(
        "kernels:     {simd}, {kernel_threads} thread(s) (EDGETUNE_KERNELS, EDGETUNE_KERNEL_THREADS)"
    );
    Ok(ExitCode::SUCCESS)
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("  {l}\n"))
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// Reads a dataset's features (extracting what is missing) for training and eval.
pub fn load_dataset_features(
    dir: &Path,
    backbone: &Backbone,
    cache: &FeatureCache,
    progress_mode: &str,
) -> Result<crate::extract::LabelledFeatures> {
    let ds = Dataset::scan(dir)?;
    let bar = progress::for_mode(progress_mode, &format!("{}", dir.display()))?;
    let (report, feats) = dataset_features(
        backbone,
        cache,
        &ds,
        &extract_options(None, 16),
        bar.as_ref(),
    )
    .with_context(|| format!("{}: feature extraction failed", dir.display()))?;
    bar.finish();
    if report.extracted > 0 || !report.skipped.is_empty() {
        eprintln!("{}: {}", dir.display(), report.summary());
    }
    print_skipped(&report);
    Ok(feats)
}
