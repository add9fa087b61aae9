//! The trained head on disk: one safetensors file holding the weights (f32,
//! little-endian, as safetensors specifies) and, in its `__metadata__`, a
//! JSON document with everything needed to use it safely: labels, head
//! config, backbone fingerprint and manifest, training metrics, versions and
//! a checksum of the weights. Written atomically.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use ndarray::{Array1, Array2};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::head::{Dense, Head, HeadConfig, Standardizer};
use crate::manifest::{Manifest, hex};

pub const FORMAT: &str = "edgetune-head";
pub const FORMAT_VERSION: u32 = 1;
const META_KEY: &str = "edgetune";

/// The backbone a head was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackboneInfo {
    pub name: String,
    pub fingerprint: String,
    pub model_sha256: String,
    pub manifest: Manifest,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeadMeta {
    pub format: String,
    pub format_version: u32,
    pub edgetune_version: String,
    pub labels: Vec<String>,
    pub input_dim: usize,
    pub n_classes: usize,
    pub config: HeadConfig,
    pub standardized: bool,
    pub backbone: BackboneInfo,
    /// Free-form training record: settings, per-epoch history, final metrics.
    #[serde(default)]
    pub training: serde_json::Value,
    /// sha256 over the tensors' names, shapes and bytes, in file order.
    pub weights_sha256: String,
}

pub struct HeadFile {
    pub head: Head,
    pub meta: HeadMeta,
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// (name, shape, bytes) for each tensor, in a fixed order.
fn tensors_of(head: &Head) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let mut t = Vec::new();
    for (i, l) in head.layers.iter().enumerate() {
        let w = l.w.as_standard_layout();
        t.push((
            format!("layers.{i}.weight"),
            l.w.shape().to_vec(),
            f32_bytes(w.as_slice().unwrap()),
        ));
        t.push((
            format!("layers.{i}.bias"),
            vec![l.b.len()],
            f32_bytes(&l.b.to_vec()),
        ));
    }
    if let Some(s) = &head.standardizer {
        t.push((
            "standardizer.mean".into(),
            vec![s.mean.len()],
            f32_bytes(&s.mean.to_vec()),
        ));
        t.push((
            "standardizer.std".into(),
            vec![s.std.len()],
            f32_bytes(&s.std.to_vec()),
        ));
    }
    t
}

fn checksum(tensors: &[(String, Vec<usize>, Vec<u8>)]) -> String {
    let mut h = Sha256::new();
    for (name, shape, bytes) in tensors {
        h.update(name.as_bytes());
        h.update(format!("{shape:?}").as_bytes());
        h.update(bytes);
    }
    hex(&h.finalize())
}

impl HeadFile {
    pub fn new(
        head: Head,
        labels: Vec<String>,
        backbone: BackboneInfo,
        training: serde_json::Value,
    ) -> Self {
        let meta = HeadMeta {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            edgetune_version: env!("CARGO_PKG_VERSION").into(),
            labels,
            input_dim: head.input_dim,
            n_classes: head.n_classes,
            config: head.config.clone(),
            standardized: head.standardizer.is_some(),
            backbone,
            training,
            weights_sha256: String::new(),
        };
        HeadFile { head, meta }
    }

    /// Serialises and writes atomically: a crash leaves the previous file.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        let tensors = tensors_of(&self.head);
        self.meta.weights_sha256 = checksum(&tensors);
        let views: Vec<(String, TensorView)> = tensors
            .iter()
            .map(|(n, s, b)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), b)?)))
            .collect::<std::result::Result<_, safetensors::SafeTensorError>>()?;
        let meta: HashMap<String, String> =
            [(META_KEY.to_string(), serde_json::to_string(&self.meta)?)].into();
        let bytes = safetensors::serialize(views, &Some(meta))?;
        crate::atomic::write_atomic(path, &bytes)
    }

    /// Loads and checks format, version, shapes, checksum and values. Every
    /// error names the file and is one line.
    pub fn load(path: &Path) -> Result<HeadFile> {
        let file = path.display().to_string();
        let bytes =
            std::fs::read(path).with_context(|| format!("{file}: cannot read head file"))?;
        Self::from_bytes(&bytes).map_err(|e| anyhow!("{file}: {e:#}"))
    }

    fn from_bytes(bytes: &[u8]) -> Result<HeadFile> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| {
            anyhow!("not a valid head file (truncated or corrupt safetensors: {e})")
        })?;
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| anyhow!("corrupt safetensors header: {e}"))?;
        let json = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(META_KEY))
            .ok_or_else(|| anyhow!("not an edgetune head (no `{META_KEY}` metadata)"))?;
        let probe: serde_json::Value =
            serde_json::from_str(json).context("corrupt head metadata")?;
        if probe.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            bail!("not an edgetune head (format is not {FORMAT:?})");
        }
        let version = probe
            .get("format_version")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        if version as u32 != FORMAT_VERSION {
            bail!(
                "head format version {version}, this edgetune {} reads version {FORMAT_VERSION}",
                env!("CARGO_PKG_VERSION")
            );
        }
        let meta: HeadMeta = serde_json::from_value(probe).context("corrupt head metadata")?;
        if meta.labels.len() != meta.n_classes {
            bail!(
                "{} labels for {} classes",
                meta.labels.len(),
                meta.n_classes
            );
        }

        let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let t = st
                .tensor(name)
                .map_err(|_| anyhow!("missing tensor {name}"))?;
            if t.dtype() != Dtype::F32 {
                bail!("tensor {name} is {:?}, expected F32", t.dtype());
            }
            if t.shape() != shape {
                bail!(
                    "tensor {name} has shape {:?}, expected {shape:?}",
                    t.shape()
                );
            }
            Ok(t.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect())
        };
        let mut dims = vec![meta.input_dim];
        dims.extend(&meta.config.hidden);
        dims.push(meta.n_classes);
        let mut layers = Vec::new();
        for i in 0..dims.len() - 1 {
            let (din, dout) = (dims[i], dims[i + 1]);
            let w = get(&format!("layers.{i}.weight"), &[din, dout])?;
            let b = get(&format!("layers.{i}.bias"), &[dout])?;
            layers.push(Dense {
                w: Array2::from_shape_vec((din, dout), w)?,
                b: Array1::from(b),
            });
        }
        let standardizer = if meta.standardized {
            let mean = get("standardizer.mean", &[meta.input_dim])?;
            let std = get("standardizer.std", &[meta.input_dim])?;
            Some(Standardizer {
                mean: Array1::from(mean),
                std: Array1::from(std),
            })
        } else {
            None
        };
        let head = Head {
            input_dim: meta.input_dim,
            n_classes: meta.n_classes,
            config: meta.config.clone(),
            layers,
            standardizer,
        };
        let sum = checksum(&tensors_of(&head));
        if sum != meta.weights_sha256 {
            bail!(
                "weights are corrupt (checksum {sum}, expected {})",
                meta.weights_sha256
            );
        }
        head.check()
            .map_err(|e| anyhow!("inconsistent head: {e}"))?;
        Ok(HeadFile { head, meta })
    }

    /// Refuses a head trained on another backbone (or preprocessing).
    pub fn check_backbone(&self, path: &Path, fingerprint: &str, model_name: &str) -> Result<()> {
        if self.meta.backbone.fingerprint != fingerprint {
            bail!(
                "{}: head was trained on backbone {} (fingerprint {}), not on {model_name} \
                 (fingerprint {fingerprint}); retrain it or pass the matching --model",
                path.display(),
                self.meta.backbone.name,
                self.meta.backbone.fingerprint
            );
        }
        Ok(())
    }
}
