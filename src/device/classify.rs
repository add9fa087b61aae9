//! Backbone + head behind a trait, so the loops can be soak-tested with a
//! fake, and the head file is reloaded when a retrain replaces it.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use anyhow::Result;
use image::DynamicImage;
use ndarray::Array2;

use crate::backbone::{Backbone, Session};
use crate::headfile::HeadFile;

pub struct Classification {
    /// One probability per label.
    pub probs: Vec<f32>,
    pub backbone_ms: f64,
    pub head_ms: f64,
}

pub trait Classifier {
    fn labels(&self) -> &[String];
    fn classify(&mut self, img: &DynamicImage) -> Result<Classification>;
    /// Pick up a new head if its file changed (called before each frame).
    fn refresh(&mut self) {}
}

/// Cheap change detection for a file: (mtime, size).
pub struct FileWatch {
    pub path: PathBuf,
    stamp: Option<(SystemTime, u64)>,
}

impl FileWatch {
    pub fn new(path: &Path) -> Self {
        let mut w = FileWatch {
            path: path.to_path_buf(),
            stamp: None,
        };
        w.stamp = w.current();
        w
    }
    fn current(&self) -> Option<(SystemTime, u64)> {
        let m = std::fs::metadata(&self.path).ok()?;
        Some((m.modified().ok()?, m.len()))
    }
    /// Changed since the last call (or since creation)?
    pub fn changed(&mut self) -> bool {
        let now = self.current();
        if now.is_some() && now != self.stamp {
            self.stamp = now;
            true
        } else {
            false
        }
    }
}

/// The real thing: a tract session on the backbone and the head file.
pub struct TractClassifier<'b> {
    backbone: &'b Backbone,
    session: Session<'b>,
    pub head: HeadFile,
    watch: FileWatch,
    pub reloads: u32,
}

impl<'b> TractClassifier<'b> {
    pub fn new(backbone: &'b Backbone, head: HeadFile, head_path: &Path) -> Result<Self> {
        Ok(TractClassifier {
            backbone,
            session: backbone.session()?,
            head,
            watch: FileWatch::new(head_path),
            reloads: 0,
        })
    }
}

impl Classifier for TractClassifier<'_> {
    fn labels(&self) -> &[String] {
        &self.head.meta.labels
    }

    fn classify(&mut self, img: &DynamicImage) -> Result<Classification> {
        let t0 = Instant::now();
        let features = self.session.run_image(img)?.features;
        let t1 = Instant::now();
        let x = Array2::from_shape_vec((1, features.len()), features)?;
        let probs = self.head.head.predict_proba(x.view()).row(0).to_vec();
        let t2 = Instant::now();
        Ok(Classification {
            probs,
            backbone_ms: (t1 - t0).as_secs_f64() * 1e3,
            head_ms: (t2 - t1).as_secs_f64() * 1e3,
        })
    }

    fn refresh(&mut self) {
        if !self.watch.changed() {
            return;
        }
        let path = self.watch.path.clone();
        let b = self.backbone;
        match HeadFile::load(&path).and_then(|f| {
            f.check_backbone(&path, &b.fingerprint, &b.manifest.name)?;
            Ok(f)
        }) {
            Ok(f) => {
                eprintln!(
                    "edgetune: reloaded {} (labels: {})",
                    path.display(),
                    f.meta.labels.join(", ")
                );
                self.head = f;
                self.reloads += 1;
            }
            Err(e) => eprintln!("edgetune: {e:#}; keeping the previous head"),
        }
    }
}

/// A classifier that answers from the frame's mean colour: for tests and
/// the soak test (no model needed).
pub struct FakeClassifier {
    pub labels: Vec<String>,
}

impl Classifier for FakeClassifier {
    fn labels(&self) -> &[String] {
        &self.labels
    }
    fn classify(&mut self, img: &DynamicImage) -> Result<Classification> {
        let rgb = img.to_rgb8();
        let n = (rgb.width() * rgb.height()).max(1) as f32;
        let mean = rgb.pixels().map(|p| p.0[0] as f32).sum::<f32>() / n / 255.0;
        let k = self.labels.len().max(1);
        let mut probs = vec![(1.0 - mean) / (k - 1).max(1) as f32; k];
        probs[0] = mean;
        Ok(Classification {
            probs,
            backbone_ms: 0.0,
            head_ms: 0.0,
        })
    }
}
