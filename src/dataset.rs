//! Folder-per-class datasets: `DIR/<label>/<image>`. Labels are the folder
//! names sorted by their bytes; files are sorted too, so every run sees the
//! same order.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// File extensions tried as images (case-insensitive). Anything else is
/// counted as ignored; a non-image with an image extension is decoded,
/// fails and is reported as skipped with its reason.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "gif", "webp"];

#[derive(Debug, Clone)]
pub struct Sample {
    pub path: PathBuf,
    pub label: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub root: PathBuf,
    pub labels: Vec<String>,
    pub samples: Vec<Sample>,
    /// Hidden files and files without an image extension.
    pub ignored: Vec<PathBuf>,
}

pub fn is_image_path(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
        .unwrap_or(false)
}

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.starts_with('.'))
        .unwrap_or(false)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot read folder", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("{}: cannot read folder", dir.display()))?;
    v.sort();
    Ok(v)
}

impl Dataset {
    /// Scans `root/<label>/*`. Files directly in `root` and deeper folders
    /// are ignored (pass `train/` and `val/` as separate datasets).
    pub fn scan(root: &Path) -> Result<Dataset> {
        if !root.is_dir() {
            bail!(
                "{}: not a folder (expected DIR/<label>/<images>)",
                root.display()
            );
        }
        let mut ds = Dataset {
            root: root.to_path_buf(),
            ..Default::default()
        };
        for entry in sorted_entries(root)? {
            if is_hidden(&entry) || !entry.is_dir() {
                ds.ignored.push(entry);
                continue;
            }
            let label = entry.file_name().unwrap().to_string_lossy().into_owned();
            let ix = ds.labels.len();
            ds.labels.push(label);
            for file in sorted_entries(&entry)? {
                if is_hidden(&file) || file.is_dir() || !is_image_path(&file) {
                    ds.ignored.push(file);
                } else {
                    ds.samples.push(Sample {
                        path: file,
                        label: ix,
                    });
                }
            }
        }
        if ds.labels.is_empty() {
            bail!(
                "{}: no class folders (expected DIR/<label>/<images>)",
                root.display()
            );
        }
        Ok(ds)
    }

    pub fn count_per_label(&self) -> Vec<usize> {
        let mut c = vec![0; self.labels.len()];
        for s in &self.samples {
            c[s.label] += 1;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_sorted_labels_and_ignores_hidden_and_non_images() {
        let d = tempfile::tempdir().unwrap();
        for (p, data) in [
            ("b/2.jpg", "x"),
            ("b/1.JPG", "x"),
            ("a/x.png", "x"),
            ("a/.hidden.jpg", "x"),
            ("a/notes.txt", "x"),
            ("readme.md", "x"),
        ] {
            let path = d.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, data).unwrap();
        }
        std::fs::create_dir_all(d.path().join(".git")).unwrap();
        std::fs::create_dir_all(d.path().join("empty")).unwrap();
        let ds = Dataset::scan(d.path()).unwrap();
        assert_eq!(ds.labels, vec!["a", "b", "empty"]);
        let names: Vec<_> = ds
            .samples
            .iter()
            .map(|s| s.path.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, vec!["x.png", "1.JPG", "2.jpg"]);
        assert_eq!(ds.count_per_label(), vec![1, 2, 0]);
        assert_eq!(ds.ignored.len(), 4); // .git, .hidden.jpg, notes.txt, readme.md
    }
}
