//! `run` and `capture`: the on-device commands. Flags override the
//! `--config` file, which overrides the defaults.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser};

use super::{Cli, Command, ModelArgs};
use crate::backbone::Backbone;
use crate::cache::{Entry, EntryInfo, FeatureCache, hash_bytes};
use crate::device::backoff::BackoffPolicy;
use crate::device::capture::{CaptureOptions, FsSink, capture};
use crate::device::classify::TractClassifier;
use crate::device::config::DeviceConfig;
use crate::device::frame::CameraSettings;
use crate::device::output::Outputs;
use crate::device::runloop::{Rig, RunOptions, run};
use crate::device::{display, frame, output, trigger};
use crate::headfile::HeadFile;

/// Camera, triggers, display and retries: shared by `run` and `capture`.
#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// TOML settings file (see examples/config.toml); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Frame source: `picam` (rpicam-still, else libcamera-still), `/dev/videoN` (V4L2 webcam,
    /// MJPEG or YUYV), `cmd:COMMAND` (prints one JPEG on stdout), or `dir:FOLDER` (replays its
    /// images in name order) [default: picam].
    #[arg(long, value_name = "SPEC")]
    pub camera: Option<String>,
    /// Capture width in pixels (picam, V4L2).
    #[arg(long, value_name = "PX")]
    pub width: Option<u32>,
    /// Capture height in pixels (picam, V4L2).
    #[arg(long, value_name = "PX")]
    pub height: Option<u32>,
    /// Rotate frames clockwise: 0, 90, 180 or 270.
    #[arg(long, value_name = "DEG")]
    pub rotation: Option<u16>,
    /// dir: starts over at the end instead of stopping.
    #[arg(long = "loop")]
    pub repeat: bool,
    /// When to take a picture; repeat for several: `interval:2s`, `motion[:0.05][,cooldown=2s]
    /// [,delta=25]` (share of changed pixels on a 32×24 gray copy), `stdin` (one per line),
    /// `sigusr1`, `gpio:PIN[,pull=up|down|off][,edge=falling|rising|both][,debounce=30ms]
    /// [,label=NAME]` (feature `pi`) [default: run interval:1s, capture stdin].
    #[arg(long = "trigger", value_name = "SPEC")]
    pub triggers: Vec<String>,
    /// Where to show results; repeat for several: `png:DIR[,oled|color][,size=WxH][,scale=N]
    /// [,latest]` (PNG files), `oled[:bus=1,addr=0x3c]` (SSD1306 I²C), `st7789[:dc=25,rst=27,
    /// bl=18,spi=0,cs=0,size=240x240]`, `ili9341[:...]` (SPI; feature `pi`).
    #[arg(long = "display", value_name = "SPEC")]
    pub displays: Vec<String>,
    /// First retry delay after a camera or GPIO failure; doubles per failure.
    #[arg(long, value_name = "MS")]
    pub retry_ms: Option<u64>,
    /// Longest retry delay.
    #[arg(long, value_name = "MS")]
    pub retry_max_ms: Option<u64>,
    /// Give up after this many consecutive camera failures [default: never].
    #[arg(long, value_name = "N")]
    pub max_failures: Option<u32>,
    /// How often triggers are polled.
    #[arg(long, default_value_t = 20, value_name = "MS")]
    pub tick_ms: u64,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub dev: DeviceArgs,
    /// The trained head; reloaded when the file changes (after a retrain).
    #[arg(long, value_name = "HEAD")]
    pub head: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Labels listed per result.
    #[arg(long, short = 'k', value_name = "K")]
    pub top_k: Option<usize>,
    /// Below this probability the result is "unknown" [default: 0].
    #[arg(long, value_name = "P")]
    pub threshold: Option<f32>,
    /// A pin per label: `LABEL=gpio:PIN[,threshold=0.8][,hold=2s][,active=low]` (feature `pi`)
    /// or `LABEL=log:NAME` (prints on/off); repeat for several.
    #[arg(long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,
    /// Also save every classified frame as DIR/<time>-<label>.jpg.
    #[arg(long, value_name = "DIR")]
    pub save_frames: Option<PathBuf>,
    /// Stop after N classifications.
    #[arg(long, value_name = "N")]
    pub max_frames: Option<u64>,
}

#[derive(Args, Debug)]
pub struct CaptureArgs {
    #[command(flatten)]
    pub dev: DeviceArgs,
    /// Dataset folder: photos go to DATASET/LABEL/<time>.jpg.
    #[arg(long, value_name = "DIR")]
    pub dataset: Option<PathBuf>,
    /// Class of the photos; a trigger with its own label (`gpio:17,label=bees`, a stdin line)
    /// overrides it — one button per class.
    #[arg(long, value_name = "NAME")]
    pub label: Option<String>,
    /// Stop after N photos [default: until stopped or the triggers end].
    #[arg(long, value_name = "N")]
    pub count: Option<u32>,
    /// Extract each photo's features into the cache as it is taken.
    #[arg(long)]
    pub extract: bool,
    /// Teach: after capturing, retrain DATASET into HEAD (a running `edgetune run` reloads it).
    #[arg(long, value_name = "HEAD")]
    pub retrain: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
}

fn load_config(dev: &DeviceArgs) -> Result<DeviceConfig> {
    match &dev.config {
        Some(p) => DeviceConfig::load(p),
        None => Ok(DeviceConfig::default()),
    }
}

fn merge_model(model: &mut ModelArgs, cfg: &DeviceConfig) {
    model.model = model.model.take().or(cfg.model.clone());
    model.models_dir = model.models_dir.take().or(cfg.models_dir.clone());
    model.cache = model.cache.take().or(cfg.cache.clone());
}

fn backoff(dev: &DeviceArgs, cfg: &DeviceConfig) -> BackoffPolicy {
    let d = BackoffPolicy::default();
    BackoffPolicy {
        initial: dev
            .retry_ms
            .or(cfg.retry_ms)
            .map_or(d.initial, Duration::from_millis),
        max: dev
            .retry_max_ms
            .or(cfg.retry_max_ms)
            .map_or(d.max, Duration::from_millis),
        max_failures: dev.max_failures.or(cfg.max_failures),
    }
}

/// Opens camera, triggers and displays; flags win over the config file.
fn rig(dev: &DeviceArgs, cfg: &DeviceConfig, default_trigger: &str) -> Result<Rig> {
    let camera = dev
        .camera
        .clone()
        .or(cfg.camera.clone())
        .unwrap_or_else(|| "picam".into());
    let settings = CameraSettings {
        width: dev.width.or(cfg.width),
        height: dev.height.or(cfg.height),
        rotation: dev.rotation.or(cfg.rotation).unwrap_or(0),
        repeat: dev.repeat,
    };
    let source = frame::open(&camera, &settings)?;
    let pick = |flags: &Vec<String>, file: &Vec<String>| {
        if flags.is_empty() {
            file.clone()
        } else {
            flags.clone()
        }
    };
    let mut trigger_specs = pick(&dev.triggers, &cfg.triggers);
    if trigger_specs.is_empty() {
        trigger_specs.push(default_trigger.into());
    }
    let triggers = trigger_specs
        .iter()
        .map(|s| trigger::open(s))
        .collect::<Result<Vec<_>>>()?;
    let displays = pick(&dev.displays, &cfg.displays)
        .iter()
        .map(|s| display::open(s))
        .collect::<Result<Vec<_>>>()?;
    eprintln!(
        "edgetune: camera {}, trigger {}, display {}",
        source.name(),
        trigger_specs.join(" + "),
        if displays.is_empty() {
            "none".into()
        } else {
            displays
                .iter()
                .map(|d| d.name())
                .collect::<Vec<_>>()
                .join(" + ")
        }
    );
    Ok(Rig {
        source,
        triggers,
        displays,
        outputs: Outputs::default(),
    })
}

/// SIGINT and SIGTERM set the flag; the loops finish the current frame.
fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(stop)
}

fn run_options(dev: &DeviceArgs, cfg: &DeviceConfig) -> RunOptions {
    RunOptions {
        backoff: backoff(dev, cfg),
        tick: Duration::from_millis(dev.tick_ms.max(1)),
        ..Default::default()
    }
}

pub fn run_cmd(mut a: RunArgs) -> Result<ExitCode> {
    let cfg = load_config(&a.dev)?;
    merge_model(&mut a.model, &cfg);
    let Some(head_path) = a.head.clone().or(cfg.run.head.clone()) else {
        bail!(
            "no head: pass --head HEAD (or `head` under [run] in the config); train one with `edgetune train`"
        );
    };
    let head = HeadFile::load(&head_path)?;
    let mut model = a.model.clone();
    if model.model.is_none() {
        model.model = Some(head.meta.backbone.name.clone());
    }
    let backbone = Backbone::load(&model.spec()?)?;
    head.check_backbone(&head_path, &backbone.fingerprint, &backbone.manifest.name)?;
    let mut opts = run_options(&a.dev, &cfg);
    opts.top_k = a.top_k.or(cfg.run.top_k).unwrap_or(3);
    opts.threshold = a.threshold.or(cfg.run.threshold).unwrap_or(0.0);
    if !(0.0..=1.0).contains(&opts.threshold) {
        bail!(
            "--threshold {}: expected a probability in [0, 1]",
            opts.threshold
        );
    }
    opts.save_frames = a.save_frames.clone().or(cfg.run.save_frames.clone());
    opts.max_frames = a.max_frames;
    let mut rig = rig(&a.dev, &cfg, "interval:1s")?;
    let outs = if a.outputs.is_empty() {
        &cfg.run.outputs
    } else {
        &a.outputs
    };
    rig.outputs = Outputs(
        outs.iter()
            .map(|s| output::parse(s))
            .collect::<Result<_>>()?,
    );
    for o in &rig.outputs.0 {
        if !head.meta.labels.contains(&o.label) {
            eprintln!(
                "warning: --output {}: not a label of this head ({})",
                o.label,
                head.meta.labels.join(", ")
            );
        }
    }
    eprintln!(
        "edgetune: head {} ({})",
        head_path.display(),
        head.meta.labels.join(", ")
    );
    let mut clf = TractClassifier::new(&backbone, head, &head_path)?;
    let stop = stop_flag()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let summary = run(&mut rig, &mut clf, &opts, &mut out, &stop)?;
    if summary.classified > 0 {
        eprintln!(
            "edgetune: {} frames classified, {:.1} ms per frame on average",
            summary.classified,
            summary.total_ms / summary.classified as f64
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn capture_cmd(mut a: CaptureArgs) -> Result<ExitCode> {
    let cfg = load_config(&a.dev)?;
    merge_model(&mut a.model, &cfg);
    let Some(dataset) = a.dataset.clone().or(cfg.capture.dataset.clone()) else {
        bail!("no dataset folder: pass --dataset DIR (or `dataset` under [capture] in the config)");
    };
    let label = a.label.clone().or(cfg.capture.label.clone());
    let extract = a.extract || cfg.capture.extract.unwrap_or(false);
    let retrain = a.retrain.clone().or(cfg.capture.retrain.clone());
    let opts = CaptureOptions {
        dataset: dataset.clone(),
        label,
        count: a.count.or(cfg.capture.count),
        run: run_options(&a.dev, &cfg),
    };
    if let Some(l) = &opts.label {
        crate::device::capture::check_label(l)?;
    }
    let mut rig = rig(&a.dev, &cfg, "stdin")?;
    // in a block: the cache must be closed before the retrain opens it
    {
        // features are computed as photos arrive, so the retrain finds them cached
        let backbone = if extract { Some(a.model.load()?) } else { None };
        let cache = match &backbone {
            Some(b) => Some(FeatureCache::open(&a.model.cache_path(), &b.fingerprint)?),
            None => None,
        };
        let mut session = match &backbone {
            Some(b) => Some(b.session()?),
            None => None,
        };
        let mut extract_fn = |path: &Path, bytes: &[u8]| -> Result<()> {
            let (Some(s), Some(c)) = (session.as_mut(), cache.as_ref()) else {
                return Ok(());
            };
            let img = crate::preprocess::decode(bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
            let features = s.run_image(&img)?.features;
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let info = EntryInfo {
                width: img.width(),
                height: img.height(),
                name,
            };
            c.put(&hash_bytes(bytes), &Entry { features, info })
        };
        let stop = stop_flag()?;
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let on_saved: Option<&mut crate::device::capture::OnSaved> =
            if extract { Some(&mut extract_fn) } else { None };
        let summary = capture(&mut rig, &mut FsSink, on_saved, &opts, &mut out, &stop)?;
        eprintln!(
            "edgetune: saved {} photos under {}{}",
            summary.saved.len(),
            dataset.display(),
            if extract {
                format!(", {} extracted into the cache", summary.extracted)
            } else {
                String::new()
            }
        );
    }
    if let Some(head) = retrain {
        return retrain_head(&dataset, &head, &a.model);
    }
    Ok(ExitCode::SUCCESS)
}

/// The teach flow's second half: `edgetune train DATASET -o HEAD` with the
/// same model settings.
fn retrain_head(dataset: &Path, head: &Path, model: &ModelArgs) -> Result<ExitCode> {
    let mut argv: Vec<String> = vec!["edgetune".into(), "train".into()];
    argv.push(dataset.display().to_string());
    argv.extend([
        "-o".into(),
        head.display().to_string(),
        "--progress".into(),
        "none".into(),
    ]);
    if let Some(m) = &model.model {
        argv.extend(["--model".into(), m.clone()]);
    }
    if let Some(d) = &model.models_dir {
        argv.extend(["--models-dir".into(), d.display().to_string()]);
    }
    if let Some(c) = &model.cache {
        argv.extend(["--cache".into(), c.display().to_string()]);
    }
    eprintln!("edgetune: retraining: {}", argv[1..].join(" "));
    let cli = Cli::try_parse_from(&argv).context("building the train command")?;
    match cli.command {
        Command::Train(t) => super::head_cmds::train_cmd(*t),
        _ => unreachable!(),
    }
}
