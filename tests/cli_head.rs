//! `train`, `eval` and `predict` end to end on real photos, including the
//! awkward datasets users make.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const ANTS: &str = "fourmis ailées";
const BEES: &str = "abeilles 🐝";

/// Copies `n` images per class from hymenoptera/`split` under new label names.
fn dataset(root: &Path, split: &str, n: usize, classes: &[(&str, &str)]) -> PathBuf {
    for (src, label) in classes {
        let from = shared().join("data/hymenoptera").join(split).join(src);
        let to = root.join(label);
        std::fs::create_dir_all(&to).unwrap();
        let mut files: Vec<_> = std::fs::read_dir(&from)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "jpg"))
            .take(n)
        {
            std::fs::copy(f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
    root.to_path_buf()
}

struct Env {
    tmp: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            tmp: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }
    fn run(&self, args: &[&str]) -> Output {
        let cache = self.path("cache.redb");
        let models = shared().join("models");
        Command::new(bin())
            .args(args)
            .args([
                "--models-dir",
                models.to_str().unwrap(),
                "--cache",
                cache.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    }
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "should fail; stdout: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn train_eval_predict_with_non_ascii_labels_empty_class_and_plots() {
    let env = Env::new();
    let train = dataset(
        &env.path("train"),
        "train",
        20,
        &[("ants", ANTS), ("bees", BEES)],
    );
    std::fs::create_dir_all(train.join("empty class")).unwrap();
    let val = dataset(
        &env.path("val"),
        "val",
        15,
        &[("ants", ANTS), ("bees", BEES)],
    );
    let head = env.path("h.safetensors");
    let (h, t, v) = (
        head.to_str().unwrap(),
        train.to_str().unwrap(),
        val.to_str().unwrap(),
    );
    let svg = env.path("curves.svg");
    let o = env.run(&[
        "train",
        t,
        "-o",
        h,
        "--val",
        v,
        "--json",
        "--plot",
        svg.to_str().unwrap(),
        "--progress",
        "none",
    ]);
    let j: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("\"empty class\" has no usable images"));
    assert_eq!(
        j["labels"],
        serde_json::json!([BEES, ANTS]),
        "labels sorted by bytes, empty class left out"
    );
    assert!(j["val_accuracy"].as_f64().unwrap() >= 0.8, "{j}");
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));

    let png = env.path("confusion.png");
    let out = ok(&env.run(&[
        "eval",
        v,
        "--head",
        h,
        "--json",
        "--plot",
        png.to_str().unwrap(),
    ]));
    let e: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(e["accuracy"].as_f64().unwrap() >= 0.8, "{e}");
    assert_eq!(e["per_class"].as_array().unwrap().len(), 2);
    assert_eq!(e["confusion"].as_array().unwrap().len(), 2);
    let total: u64 = e["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 30);
    let img = image::open(&png).unwrap();
    assert!(img.width() > 300 && img.height() > 300);

    let text = ok(&env.run(&["eval", v, "--head", h]));
    assert!(
        text.contains("accuracy:") && text.contains("confusion") && text.contains(BEES),
        "{text}"
    );

    let bee = std::fs::read_dir(val.join(BEES))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let out = ok(&env.run(&[
        "predict",
        bee.to_str().unwrap(),
        "--head",
        h,
        "--json",
        "-k",
        "2",
    ]));
    let p: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let top = p["top"].as_array().unwrap();
    assert_eq!(top.len(), 2);
    let sum: f64 = top.iter().map(|t| t["probability"].as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-4);
    assert!(top[0]["probability"].as_f64() >= top[1]["probability"].as_f64());
}

#[test]
fn single_class_and_tiny_datasets() {
    let env = Env::new();
    let one = dataset(&env.path("one"), "train", 5, &[("ants", "ants")]);
    let e = err(&env.run(&[
        "train",
        one.to_str().unwrap(),
        "-o",
        env.path("h").to_str().unwrap(),
    ]));
    assert!(e.contains("at least 2 classes"), "{e}");
    assert!(!env.path("h").exists());

    // fewer images than the batch, and a validation split that leaves one per class
    let tiny = dataset(
        &env.path("tiny"),
        "train",
        3,
        &[("ants", "ants"), ("bees", "bees")],
    );
    let h = env.path("tiny.safetensors");
    let o = env.run(&[
        "train",
        tiny.to_str().unwrap(),
        "-o",
        h.to_str().unwrap(),
        "--batch",
        "32",
        "--json",
        "--progress",
        "none",
    ]);
    let j: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    assert!(j["epochs"].as_u64().unwrap() >= 1);
    assert!(h.exists());
}

#[test]
fn divergence_keeps_the_previous_head() {
    let env = Env::new();
    let data = dataset(
        &env.path("d"),
        "train",
        8,
        &[("ants", "ants"), ("bees", "bees")],
    );
    let h = env.path("h.safetensors");
    let (d, hs) = (data.to_str().unwrap(), h.to_str().unwrap());
    ok(&env.run(&["train", d, "-o", hs, "--epochs", "5", "--progress", "none"]));
    let before = std::fs::read(&h).unwrap();
    let e = err(&env.run(&[
        "train",
        d,
        "-o",
        hs,
        "--lr",
        "1e30",
        "--optimizer",
        "sgd",
        "--weight-decay",
        "0",
        "--progress",
        "none",
    ]));
    assert!(
        e.contains("diverged") && e.contains("left unchanged"),
        "{e}"
    );
    assert_eq!(std::fs::read(&h).unwrap(), before);
}

#[test]
fn eval_reports_label_mismatch_without_crashing() {
    let env = Env::new();
    let train = dataset(
        &env.path("t"),
        "train",
        8,
        &[("ants", "ants"), ("bees", "bees")],
    );
    let h = env.path("h.safetensors");
    ok(&env.run(&[
        "train",
        train.to_str().unwrap(),
        "-o",
        h.to_str().unwrap(),
        "--epochs",
        "5",
        "--progress",
        "none",
    ]));
    // "wasps" is unknown to the head: reported and left out, the rest evaluated
    let other = dataset(
        &env.path("o"),
        "val",
        4,
        &[("ants", "ants"), ("bees", "wasps")],
    );
    let o = env.run(&[
        "eval",
        other.to_str().unwrap(),
        "--head",
        h.to_str().unwrap(),
        "--json",
    ]);
    let j: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(j["samples"], 4);
    assert_eq!(j["unknown_classes"][0]["label"], "wasps");
    assert!(String::from_utf8_lossy(&o.stderr).contains("\"wasps\""));
    // nothing in common: a clear error, not a crash
    let none = dataset(
        &env.path("n"),
        "val",
        2,
        &[("ants", "termites"), ("bees", "wasps")],
    );
    let e = err(&env.run(&[
        "eval",
        none.to_str().unwrap(),
        "--head",
        h.to_str().unwrap(),
    ]));
    assert!(
        e.contains("none of its classes") && e.contains("termites"),
        "{e}"
    );
}

#[test]
fn seeded_training_is_reproducible_and_seeds_matter() {
    let env = Env::new();
    let data = dataset(
        &env.path("d"),
        "train",
        10,
        &[("ants", "ants"), ("bees", "bees")],
    );
    let d = data.to_str().unwrap();
    let mut heads = Vec::new();
    for (name, seed) in [("a", "3"), ("b", "3"), ("c", "4")] {
        let h = env.path(name);
        ok(&env.run(&[
            "train",
            d,
            "-o",
            h.to_str().unwrap(),
            "--seed",
            seed,
            "--epochs",
            "8",
            "--progress",
            "none",
        ]));
        heads.push(edgetune::headfile::HeadFile::load(&h).unwrap().head);
    }
    assert_eq!(heads[0].layers, heads[1].layers);
    assert_ne!(heads[0].layers, heads[2].layers);
}
