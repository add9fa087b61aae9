//! Backbone manifests: everything needed to run an ONNX image backbone the
//! way it was trained (input, layout, size, preprocessing, cut point).
//!
//! A manifest is a small TOML file next to the model (see `models/*.toml`);
//! the known ones are also compiled into the binary so it runs anywhere.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Manifests shipped in `models/`, compiled in.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "mobilenet_v2_1.0_224_features",
        include_str!("../models/mobilenet_v2_1.0_224_features.toml"),
    ),
    (
        "mobilenet_v2_1.0_224_imagenet",
        include_str!("../models/mobilenet_v2_1.0_224_imagenet.toml"),
    ),
];

/// The backbone used when `--model` is not given.
pub const DEFAULT_MODEL: &str = "mobilenet_v2_1.0_224_features";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Nchw,
    Nhwc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeFilter {
    Nearest,
    Bilinear,
    Bicubic,
}

/// Pixel normalisation applied after resizing, on values in 0..=255.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Norm {
    /// `x * scale + offset` on 0..=255 pixel values.
    Affine { scale: f32, offset: f32 },
    /// `(x / 255 - mean[c]) / std[c]`, per RGB channel (torchvision style).
    MeanStd { mean: [f32; 3], std: [f32; 3] },
}

impl Norm {
    /// Per-channel `(multiplier, addend)` on 0..=255 values.
    pub fn coefficients(&self) -> [(f32, f32); 3] {
        match self {
            Norm::Affine { scale, offset } => [(*scale, *offset); 3],
            Norm::MeanStd { mean, std } => {
                std::array::from_fn(|c| (1.0 / (255.0 * std[c]), -mean[c] / std[c]))
            }
        }
    }

    /// Parses the CLI form: `SCALE,OFFSET` or `imagenet` (torchvision mean/std)
    /// or `mean=R,G,B;std=R,G,B`.
    pub fn parse(s: &str) -> Result<Norm> {
        let s = s.trim();
        if s == "imagenet" {
            return Ok(Norm::MeanStd {
                mean: [0.485, 0.456, 0.406],
                std: [0.229, 0.224, 0.225],
            });
        }
        if s == "tf" || s == "minus1to1" {
            return Ok(Norm::Affine {
                scale: 1.0 / 127.5,
                offset: -1.0,
            });
        }
        if let Some(rest) = s.strip_prefix("mean=") {
            let (mean, std) = rest
                .split_once(";std=")
                .with_context(|| format!("--norm {s:?}: expected mean=R,G,B;std=R,G,B"))?;
            return Ok(Norm::MeanStd {
                mean: parse3(mean)?,
                std: parse3(std)?,
            });
        }
        let parts: Vec<&str> = s.split(',').collect();
        if parts.len() == 2 {
            let scale = parts[0].trim().parse::<f32>();
            let offset = parts[1].trim().parse::<f32>();
            if let (Ok(scale), Ok(offset)) = (scale, offset) {
                return Ok(Norm::Affine { scale, offset });
            }
        }
        bail!("--norm {s:?}: expected SCALE,OFFSET, `tf`, `imagenet` or mean=R,G,B;std=R,G,B")
    }
}

fn parse3(s: &str) -> Result<[f32; 3]> {
    let v: Vec<f32> = s
        .split(',')
        .map(|x| x.trim().parse::<f32>())
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("{s:?} is not three numbers"))?;
    if v.len() != 3 {
        bail!("{s:?} is not three numbers");
    }
    Ok([v[0], v[1], v[2]])
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// Fraction of each side kept by the central crop (1.0 = no crop).
    pub crop_fraction: f32,
    pub resize: ResizeFilter,
    pub norm: Norm,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    /// Model file name, resolved against the models folder.
    pub file: String,
    /// Expected sha256 of the model file; empty = not checked (custom models).
    #[serde(default)]
    pub sha256: String,
    pub input: String,
    pub layout: Layout,
    pub height: usize,
    pub width: usize,
    /// Output or node name to cut the graph at.
    pub cut: String,
    pub feature_dim: usize,
    /// Optional classifier output (for ImageNet checks), and its labels file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logits: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    pub preprocess: Preprocess,
}

impl Manifest {
    pub fn from_toml(text: &str, origin: &str) -> Result<Manifest> {
        let m: Manifest =
            toml::from_str(text).with_context(|| format!("{origin}: invalid backbone manifest"))?;
        m.validate()
            .with_context(|| format!("{origin}: invalid backbone manifest"))?;
        Ok(m)
    }

    pub fn from_path(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read manifest", path.display()))?;
        Manifest::from_toml(&text, &path.display().to_string())
    }

    pub fn builtin(name: &str) -> Option<Manifest> {
        BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, text)| Manifest::from_toml(text, n).expect("builtin manifest is valid"))
    }

    fn validate(&self) -> Result<()> {
        if self.height == 0 || self.width == 0 {
            bail!("input size {}x{} is empty", self.height, self.width);
        }
        if self.feature_dim == 0 {
            bail!("feature_dim is 0");
        }
        let c = self.preprocess.crop_fraction;
        if !(c > 0.0 && c <= 1.0) {
            bail!("crop_fraction {c} is not in (0, 1]");
        }
        if !self.sha256.is_empty()
            && (self.sha256.len() != 64 || !self.sha256.chars().all(|c| c.is_ascii_hexdigit()))
        {
            bail!("sha256 {:?} is not 64 hex digits", self.sha256);
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("manifest serialises")
    }

    /// Identifies "this model file run this way": model bytes, input, cut and
    /// preprocessing. Cached features and trained heads are keyed by it, so a
    /// change to any of these can never serve stale features.
    pub fn fingerprint(&self, model_sha256: &str) -> String {
        let mut h = Sha256::new();
        // v2: crop + resize by fast_image_resize (pixels may differ by one
        // level from v1's `image` resize, so v1 features are not reused)
        h.update(b"edgetune-backbone-v2\0");
        h.update(model_sha256.as_bytes());
        let canonical = serde_json::json!({
            "input": self.input,
            "layout": self.layout,
            "height": self.height,
            "width": self.width,
            "cut": self.cut,
            "feature_dim": self.feature_dim,
            "preprocess": self.preprocess,
        });
        h.update(canonical.to_string().as_bytes());
        hex(&h.finalize()[..16])
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("{}: read error", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Where model files live: `$EDGETUNE_MODELS`, else `./models` when it
/// exists (a checkout), else the user's data folder.
pub fn default_models_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("EDGETUNE_MODELS") {
        return PathBuf::from(d);
    }
    let local = PathBuf::from("models");
    if local.is_dir() {
        return local;
    }
    dirs::data_local_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("edgetune")
        .join("models")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_fingerprints_differ_by_preprocessing() {
        let m = Manifest::builtin(DEFAULT_MODEL).unwrap();
        assert_eq!(m.feature_dim, 1280);
        let f1 = m.fingerprint(&m.sha256);
        let mut m2 = m.clone();
        m2.preprocess.crop_fraction = 1.0;
        assert_ne!(f1, m2.fingerprint(&m.sha256));
        assert_ne!(f1, m.fingerprint("00"));
        assert_eq!(f1, m.clone().fingerprint(&m.sha256));
    }

    #[test]
    fn norm_parsing() {
        assert_eq!(
            Norm::parse("tf").unwrap().coefficients()[0],
            (1.0 / 127.5, -1.0)
        );
        let n = Norm::parse("mean=0.5,0.5,0.5;std=0.25,0.25,0.25").unwrap();
        let (a, b) = n.coefficients()[1];
        assert!((255.0 * a + b - 2.0).abs() < 1e-6);
        assert!(Norm::parse("nonsense").is_err());
    }

    #[test]
    fn bad_manifest_is_rejected_with_origin() {
        let err = Manifest::from_toml("name = 1", "x.toml").unwrap_err();
        assert!(format!("{err:#}").contains("x.toml"));
    }
}
