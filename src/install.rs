//! `edgetune models install`: copy a known model file (never committed)
//! from a local source folder into the models folder, verifying its sha256.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::atomic::write_atomic_with;
use crate::manifest::{Manifest, sha256_file};

/// `$EDGETUNE_SHARED_MODELS`, else `../shared/models` (beside a checkout).
pub fn default_source_dir() -> PathBuf {
    std::env::var_os("EDGETUNE_SHARED_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/models"))
}

#[derive(Debug)]
pub enum Installed {
    AlreadyPresent(PathBuf),
    Copied(PathBuf),
}

/// Installs `manifest`'s model (and its labels file, if any) into `dest`.
pub fn install(manifest: &Manifest, source: &Path, dest: &Path) -> Result<Installed> {
    let target = dest.join(&manifest.file);
    if target.exists() {
        let actual = sha256_file(&target)?;
        if manifest.sha256.is_empty() || actual == manifest.sha256 {
            copy_labels(manifest, source, dest)?;
            return Ok(Installed::AlreadyPresent(target));
        }
        eprintln!(
            "{}: sha256 is {actual}, expected {}; replacing it",
            target.display(),
            manifest.sha256
        );
    }
    let src = source.join(&manifest.file);
    if !src.exists() {
        bail!(
            "{} not found. Put the file {} (sha256 {}) at {} by hand, or pass --from DIR",
            src.display(),
            manifest.file,
            manifest.sha256,
            target.display()
        );
    }
    let actual = sha256_file(&src)?;
    if !manifest.sha256.is_empty() && actual != manifest.sha256 {
        bail!(
            "{}: wrong or truncated model file: sha256 is {actual}, expected {}",
            src.display(),
            manifest.sha256
        );
    }
    write_atomic_with(&target, |f| {
        let mut r = std::fs::File::open(&src)?;
        std::io::copy(&mut r, f).map(|_| ())
    })?;
    // the copy itself must match too (a full disk truncates silently on some filesystems)
    let copied = sha256_file(&target)?;
    if copied != actual {
        std::fs::remove_file(&target).ok();
        bail!(
            "{}: copy is corrupt (sha256 {copied}, expected {actual})",
            target.display()
        );
    }
    copy_labels(manifest, source, dest)?;
    Ok(Installed::Copied(target))
}

fn copy_labels(manifest: &Manifest, source: &Path, dest: &Path) -> Result<()> {
    if let Some(labels) = &manifest.labels {
        let (src, dst) = (source.join(labels), dest.join(labels));
        if !dst.exists() && src.exists() {
            let text = std::fs::read(&src).with_context(|| format!("{}", src.display()))?;
            crate::atomic::write_atomic(&dst, &text)?;
        }
    }
    Ok(())
}
