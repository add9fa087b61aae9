//! The frozen backbone: an ONNX model run by tract, cut at the manifest's
//! feature output, with a fixed batch-1 input (the fastest plan in tract;
//! throughput comes from one plan state per core, see `extract`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use image::DynamicImage;
use ndarray::{Array2, Array4, ArrayView4};
use tract_onnx::prelude::*;

use crate::manifest::{Manifest, default_models_dir, sha256_file};
use crate::preprocess;

/// A manifest together with the model file it describes.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub manifest: Manifest,
    pub path: PathBuf,
}

impl ModelSpec {
    /// Resolves `--model`: a built-in name, a manifest `.toml`, or an `.onnx`
    /// file with a sibling `.toml` of the same stem.
    pub fn resolve(model: &str, models_dir: Option<&Path>) -> Result<ModelSpec> {
        let dir = models_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(default_models_dir);
        let as_path = Path::new(model);
        let (manifest, base) = if model.ends_with(".toml") {
            let m = Manifest::from_path(as_path)?;
            (
                m,
                as_path.parent().map(Path::to_path_buf).unwrap_or_default(),
            )
        } else if model.ends_with(".onnx") {
            let toml = as_path.with_extension("toml");
            if !toml.exists() {
                bail!(
                    "{model}: no manifest {} beside it; write one (see models/*.toml) or pass \
                     --input, --cut, --size and --norm",
                    toml.display()
                );
            }
            let mut m = Manifest::from_path(&toml)?;
            m.file = as_path.file_name().unwrap().to_string_lossy().into_owned();
            (
                m,
                as_path.parent().map(Path::to_path_buf).unwrap_or_default(),
            )
        } else if let Some(m) = Manifest::builtin(model) {
            // a manifest in the models folder overrides the built-in one
            let local = dir.join(format!("{model}.toml"));
            let m = if local.exists() {
                Manifest::from_path(&local)?
            } else {
                m
            };
            (m, dir)
        } else {
            let local = dir.join(format!("{model}.toml"));
            if !local.exists() {
                bail!(
                    "unknown model {model:?}: not built in ({}) and no {} found",
                    crate::manifest::BUILTIN
                        .iter()
                        .map(|b| b.0)
                        .collect::<Vec<_>>()
                        .join(", "),
                    local.display()
                );
            }
            (Manifest::from_path(&local)?, dir)
        };
        let path = if Path::new(&manifest.file).is_absolute() {
            PathBuf::from(&manifest.file)
        } else {
            base.join(&manifest.file)
        };
        Ok(ModelSpec { manifest, path })
    }

    /// Checks the model file exists and has the expected sha256; returns
    /// the actual sha256 (computed for custom models that give none).
    pub fn verify(&self) -> Result<String> {
        if !self.path.exists() {
            bail!(
                "{}: model file not found; run `edgetune models install` (copies it from \
                 ../shared/models) or put {} there",
                self.path.display(),
                self.manifest.file
            );
        }
        let actual = sha256_file(&self.path)?;
        if !self.manifest.sha256.is_empty() && actual != self.manifest.sha256 {
            bail!(
                "{}: wrong or truncated model file: sha256 is {actual}, expected {}",
                self.path.display(),
                self.manifest.sha256
            );
        }
        Ok(actual)
    }
}

pub type Plan = Arc<TypedSimplePlan>;

/// A backbone: the verified model file, its fingerprint, and the optimised
/// tract plan, built on first use ([`Backbone::load_lazy`]) or at once
/// ([`Backbone::load`]). Retraining from a warm cache never builds the plan,
/// which saves its load time and memory. Cheap to share between threads;
/// each thread runs it through its own [`Session`].
pub struct Backbone {
    pub manifest: Manifest,
    pub model_path: PathBuf,
    pub model_sha256: String,
    pub fingerprint: String,
    with_logits: bool,
    /// The plan and how long building it took; an error as its message.
    plan: OnceLock<std::result::Result<(Plan, Duration), String>>,
}

impl Backbone {
    /// Loads the feature extractor (outputs: the cut point only).
    pub fn load(spec: &ModelSpec) -> Result<Backbone> {
        let b = Self::load_lazy(spec)?;
        b.plan()?;
        Ok(b)
    }

    /// Checks the model file and computes the fingerprint; tract parses and
    /// optimises the model only when a session is first asked for.
    pub fn load_lazy(spec: &ModelSpec) -> Result<Backbone> {
        Self::open(spec, false)
    }

    /// Loads features and the manifest's `logits` output (ImageNet checks).
    pub fn load_classifier(spec: &ModelSpec) -> Result<Backbone> {
        if spec.manifest.logits.is_none() {
            bail!(
                "model {}: its manifest names no `logits` output",
                spec.manifest.name
            );
        }
        let b = Self::open(spec, true)?;
        b.plan()?;
        Ok(b)
    }

    fn open(spec: &ModelSpec, with_logits: bool) -> Result<Backbone> {
        let model_sha256 = spec.verify()?;
        let fingerprint = spec.manifest.fingerprint(&model_sha256);
        Ok(Backbone {
            manifest: spec.manifest.clone(),
            model_path: spec.path.clone(),
            model_sha256,
            fingerprint,
            with_logits,
            plan: OnceLock::new(),
        })
    }

    fn plan(&self) -> Result<&Plan> {
        let built = self.plan.get_or_init(|| {
            let t0 = Instant::now();
            build_plan(&self.manifest, &self.model_path, self.with_logits)
                .map(|p| (p, t0.elapsed()))
                .map_err(|e| format!("{e:#}"))
        });
        match built {
            Ok((plan, _)) => Ok(plan),
            Err(e) => Err(anyhow::anyhow!("{e}")),
        }
    }

    /// Time tract took to parse and optimise the model, once it has.
    pub fn load_time(&self) -> Option<Duration> {
        self.plan.get().and_then(|p| p.as_ref().ok()).map(|p| p.1)
    }

    pub fn session(&self) -> Result<Session<'_>> {
        Ok(Session {
            backbone: self,
            state: self.plan()?.spawn()?,
        })
    }

    pub fn feature_dim(&self) -> usize {
        self.manifest.feature_dim
    }
}

fn build_plan(m: &Manifest, path: &Path, with_logits: bool) -> Result<Plan> {
    let shape = preprocess::input_shape(m, 1);
    let file = path.display();
    let mut outputs = vec![m.cut.clone()];
    if with_logits {
        outputs.extend(m.logits.clone());
    }
    let mut model = tract_onnx::onnx()
        .model_for_path(path)
        .with_context(|| format!("{file}: not a loadable ONNX model"))?;
    let input_names: Vec<String> = model
        .input_outlets()?
        .iter()
        .map(|o| model.node(o.node).name.clone())
        .collect();
    let input_ix = input_names
        .iter()
        .position(|n| *n == m.input)
        .with_context(|| {
            format!(
                "{file}: no input named {:?} (inputs: {})",
                m.input,
                input_names.join(", ")
            )
        })?;
    model = model
        .with_input_fact(input_ix, f32::fact(shape).into())
        .with_context(|| format!("{file}: cannot set input {:?} to {shape:?}", m.input))?;
    model = model.with_outputs_by_name(&outputs).with_context(|| {
        format!("{file}: output or node {outputs:?} not found (check `cut` in the manifest)")
    })?;
    model
        .into_typed()
        // hand-written NHWC depthwise 3x3 + bias + ReLU6 (EDGETUNE_DWCONV=0: off)
        .and_then(crate::dwconv::fuse_depthwise)
        // hand-written NHWC 1x1 conv + bias + ReLU6 + residual (EDGETUNE_PWCONV=0: off)
        .and_then(crate::pwconv::fuse_pointwise)
        // hand-written stem conv: im2col + GEMM + bias + ReLU6 (EDGETUNE_STEMCONV=0: off)
        .and_then(crate::stemconv::fuse_stem)
        .and_then(channel_last_convs)
        .and_then(|m| m.into_decluttered())
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .with_context(|| format!("{file}: tract cannot optimise this model"))
}

/// tract's own rewrite of the convs to channel-last (NHWC), applied before
/// declutter so the transposes between consecutive convs cancel; its
/// depthwise kernels are much faster channel-last. `EDGETUNE_TRACT_NHWC=0`
/// turns it off (to measure it, or should a model misbehave).
fn channel_last_convs(mut model: TypedModel) -> TractResult<TypedModel> {
    if std::env::var("EDGETUNE_TRACT_NHWC").is_ok_and(|v| v == "0") {
        return Ok(model);
    }
    if let Some(t) = tract_onnx::tract_core::transform::get_transform("conv_nhwc")? {
        model.transform(&*t)?;
    }
    Ok(model)
}

/// Per-thread runner: keeps tract's plan state (buffers) between images.
pub struct Session<'a> {
    backbone: &'a Backbone,
    state: TypedSimpleState,
}

/// One image's backbone outputs.
pub struct Outputs {
    pub features: Vec<f32>,
    pub logits: Option<Vec<f32>>,
}

impl Session<'_> {
    /// Runs one preprocessed batch-1 input.
    pub fn run_input(&mut self, input: ArrayView4<f32>) -> Result<Outputs> {
        self.run_owned(input.to_owned())
    }

    fn run_owned(&mut self, input: Array4<f32>) -> Result<Outputs> {
        let m = &self.backbone.manifest;
        let expected = preprocess::input_shape(m, 1);
        if input.shape() != expected {
            bail!(
                "input shape {:?}, model expects {expected:?}",
                input.shape()
            );
        }
        let t: Tensor = input.into_dyn().into();
        let out = self.state.run(tvec!(t.into()))?;
        let features: Vec<f32> = out[0]
            .to_plain_array_view::<f32>()?
            .iter()
            .copied()
            .collect();
        if features.len() != m.feature_dim {
            bail!(
                "{}: cut {:?} yields {} values, manifest says feature_dim = {}",
                self.backbone.model_path.display(),
                m.cut,
                features.len(),
                m.feature_dim
            );
        }
        let logits = match self.backbone.with_logits {
            true => Some(
                out[1]
                    .to_plain_array_view::<f32>()?
                    .iter()
                    .copied()
                    .collect(),
            ),
            false => None,
        };
        Ok(Outputs { features, logits })
    }

    pub fn run_image(&mut self, img: &DynamicImage) -> Result<Outputs> {
        self.run_owned(preprocess::to_input(img, &self.backbone.manifest))
    }

    /// Features for a batch of inputs ([N, …]), one image at a time.
    pub fn run_batch(&mut self, batch: &Array4<f32>) -> Result<Array2<f32>> {
        let n = batch.shape()[0];
        let mut out = Array2::zeros((n, self.backbone.feature_dim()));
        for i in 0..n {
            let one = batch.slice(ndarray::s![i..i + 1, .., .., ..]);
            let f = self.run_input(one)?.features;
            out.row_mut(i).assign(&ndarray::ArrayView1::from(&f));
        }
        Ok(out)
    }
}

/// Time spent in one node of the optimised plan, summed over profiled runs.
#[derive(Debug, Clone)]
pub struct NodeTime {
    pub name: String,
    /// The op's name (e.g. `OptMatMul`, `DwConv3x3`, `Add`).
    pub op: String,
    pub total: Duration,
}

impl Session<'_> {
    /// Runs `input` `runs` times and times every node of tract's plan (what
    /// `tract --profile` shows): where a backbone's time goes.
    pub fn profile(&mut self, input: ArrayView4<f32>, runs: usize) -> Result<Vec<NodeTime>> {
        let nodes: Vec<(String, String)> = (self.state.model().nodes().iter())
            .map(|n| (n.name.clone(), n.op().name().to_string()))
            .collect();
        let mut times: Vec<Duration> = vec![Duration::ZERO; nodes.len()];
        for _ in 0..runs {
            let t: Tensor = input.to_owned().into_dyn().into();
            self.state
                .run_plan_with_eval(tvec!(t.into()), |ctx, state, node, inputs| {
                    let t0 = Instant::now();
                    let r = tract_onnx::tract_core::plan::eval(ctx, state, node, inputs);
                    times[node.id] += t0.elapsed();
                    r
                })?;
        }
        Ok(nodes
            .into_iter()
            .zip(times)
            .filter(|(_, t)| !t.is_zero())
            .map(|((name, op), total)| NodeTime { name, op, total })
            .collect())
    }
}

/// Index and probability of the `k` largest softmax probabilities of `logits`.
pub fn top_k(logits: &[f32], k: usize) -> Vec<(usize, f32)> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    let probs: Vec<f32> = exps.iter().map(|e| e / sum).collect();
    crate::metrics::top_k(&probs, k)
}
