//! The TOML config file (`--config`): the same settings as the flags, which
//! override it. See examples/config.toml.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    pub camera: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub rotation: Option<u16>,
    #[serde(default)]
    pub triggers: Vec<String>,
    #[serde(default)]
    pub displays: Vec<String>,
    pub retry_ms: Option<u64>,
    pub retry_max_ms: Option<u64>,
    pub max_failures: Option<u32>,
    pub model: Option<String>,
    pub models_dir: Option<PathBuf>,
    pub cache: Option<PathBuf>,
    #[serde(default)]
    pub run: RunSection,
    #[serde(default)]
    pub capture: CaptureSection,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    pub head: Option<PathBuf>,
    pub top_k: Option<usize>,
    pub threshold: Option<f32>,
    #[serde(default)]
    pub outputs: Vec<String>,
    pub save_frames: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureSection {
    pub dataset: Option<PathBuf>,
    pub label: Option<String>,
    pub count: Option<u32>,
    pub extract: Option<bool>,
    pub retrain: Option<PathBuf>,
}

impl DeviceConfig {
    pub fn load(path: &Path) -> Result<DeviceConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read config", path.display()))?;
        let mut c: DeviceConfig =
            toml::from_str(&text).with_context(|| format!("{}: invalid config", path.display()))?;
        // relative paths in the file are relative to the file
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut Option<PathBuf>| {
            if let Some(x) = p.as_mut().filter(|x| x.is_relative()) {
                *x = base.join(&*x);
            }
        };
        fix(&mut c.models_dir);
        fix(&mut c.cache);
        fix(&mut c.run.head);
        fix(&mut c.run.save_frames);
        fix(&mut c.capture.dataset);
        fix(&mut c.capture.retrain);
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn example_config_parses() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config.toml");
        let c = super::DeviceConfig::load(&p).unwrap();
        assert!(c.camera.is_some());
        assert!(!c.triggers.is_empty());
    }

    #[test]
    fn typos_are_rejected() {
        assert!(toml::from_str::<super::DeviceConfig>("camra = \"picam\"").is_err());
    }
}
