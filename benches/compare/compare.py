#!/usr/bin/env python3
"""edgetune side by side with what users would pick instead, on the same
images, the same ONNX file and the same machine, in one run:

* feature extraction (decode + crop/resize + MobileNetV2 + cache write for
  edgetune; decode + crop/resize + MobileNetV2 for ONNX Runtime), one thread
  and all threads;
* head training on the same MobileNetV2 features: edgetune's linear head vs
  scikit-learn's LogisticRegression, and edgetune's 256-hidden head vs
  MLPClassifier (same sizes, Adam, same epochs and batch): time per epoch and
  accuracy on hymenoptera/val.

Run through `benches/compare/run.sh`, which makes the virtual environment.
Prints a Markdown table of times and ratios.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier


def list_dataset(root: Path):
    labels = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = []
    for i, label in enumerate(labels):
        for f in sorted((root / label).iterdir()):
            if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"):
                files.append((f, i))
    return labels, files


def preprocess(path: Path) -> np.ndarray:
    """The manifest's preprocessing: central crop 87.5 %, bilinear 224, x/127.5-1, NCHW."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    ox, oy = int((w - w * 0.875) / 2), int((h - h * 0.875) / 2)
    img = img.crop((ox, oy, w - ox, h - oy)).resize((224, 224), Image.BILINEAR)
    x = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
    return x.transpose(2, 0, 1)[None]


def ort_session(model: Path, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])


def ort_extract(model: Path, files, threads: int):
    """Images/s of decode + preprocess + ORT, and the features (in order)."""
    sess = ort_session(model, threads)
    name = sess.get_inputs()[0].name
    sess.run(None, {name: preprocess(files[0][0])})  # warm-up
    t0 = time.perf_counter()
    feats = [sess.run(["features"], {name: preprocess(f)})[0].reshape(-1) for f, _ in files]
    return len(files) / (time.perf_counter() - t0), np.stack(feats)


def ort_model_only(model: Path, threads: int, n: int = 50) -> float:
    sess = ort_session(model, threads)
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)
    for _ in range(5):
        sess.run(None, {name: x})
    t0 = time.perf_counter()
    for _ in range(n):
        sess.run(None, {name: x})
    return (time.perf_counter() - t0) / n * 1e3


def edgetune(binary: Path, args, env_extra=None) -> dict:
    env = dict(os.environ, **(env_extra or {}))
    out = subprocess.run([str(binary), *args], check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--edgetune", required=True, type=Path)
    ap.add_argument("--edgetune-bench", required=True, type=Path, help="the bench_backbone example")
    ap.add_argument("--shared", required=True, type=Path)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()

    model = a.shared / "models/mobilenet_v2_1.0_224_features.onnx"
    data = a.shared / "data/hymenoptera"
    labels, train_files = list_dataset(data / "train")
    _, val_files = list_dataset(data / "val")
    # ORT/PIL cannot take the GIF in train/ants the same way; compare on the JPEGs both read
    train_files = [t for t in train_files if t[0].suffix.lower() != ".gif"]
    all_files = train_files + val_files
    cores = os.cpu_count() or 1
    rows = []

    # --- feature extraction ------------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        img_dir = Path(tmp) / "imgs"
        for f, y in all_files:
            d = img_dir / labels[y]
            d.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, d / f.name)
        for threads in (1, cores):
            cache = Path(tmp) / f"cache{threads}.redb"
            r = edgetune(a.edgetune, ["extract", str(img_dir), "--models-dir", str(a.shared / "models"),
                                      "--cache", str(cache), "--threads", str(threads), "--json",
                                      "--progress", "none"])
            et = r["images_per_second"]
            ot, _ = ort_extract(model, all_files, threads)
            rows.append((f"extract {len(all_files)} photos, {threads} thread(s) [images/s, higher is better]",
                         f"{et:.1f}", f"{ot:.1f}", "ONNX Runtime", ot / et))
    # model only, edgetune and ORT alternating (the machine's speed drifts):
    # medians of 5 rounds
    rounds = []
    for _ in range(5):
        out = subprocess.run([str(a.edgetune_bench), "100"], check=True, capture_output=True, text=True,
                             env=dict(os.environ, EDGETUNE_SHARED=str(a.shared)))
        e = json.loads(out.stdout.strip().splitlines()[-1])
        rounds.append((e["ms_per_image_1_thread"], e["ms_per_image_all_cores"],
                       ort_model_only(model, 1, 100), ort_model_only(model, cores, 100)))
    med = [float(np.median([r[i] for r in rounds])) for i in range(4)]
    et1, etn, ort1, ortn = med
    rows.append(("MobileNetV2 alone, 1 thread [ms/image, lower is better]", f"{et1:.2f}", f"{ort1:.2f}",
                 "ONNX Runtime", et1 / ort1))
    rows.append((f"MobileNetV2 alone, all {cores} cores [images/s, higher is better]", f"{1e3 / etn:.0f}",
                 f"{1e3 / ortn:.0f}", "ONNX Runtime (intra-op threads)", etn / ortn))

    # --- head training on identical features (computed once with ORT) -----
    _, xtr = ort_extract(model, train_files, cores)
    _, xva = ort_extract(model, val_files, cores)
    ytr = np.array([y for _, y in train_files])
    yva = np.array([y for _, y in val_files])

    t0 = time.perf_counter()
    lr = LogisticRegression(max_iter=1000).fit(xtr, ytr)
    lr_time = time.perf_counter() - t0
    lr_acc = lr.score(xva, yva)

    mlp = MLPClassifier(hidden_layer_sizes=(256,), solver="adam", batch_size=a.batch, learning_rate_init=1e-3,
                        max_iter=a.epochs, n_iter_no_change=a.epochs + 1, tol=0.0, alpha=1e-4,
                        random_state=0, shuffle=True)
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        mlp.fit(xtr, ytr)
        mlp_time = time.perf_counter() - t0
    mlp_acc = mlp.score(xva, yva)

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "c.redb"
        common = ["--models-dir", str(a.shared / "models"), "--cache", str(cache), "--progress", "none"]
        train_dir, val_dir = str(data / "train"), str(data / "val")
        edgetune(a.edgetune, ["extract", train_dir, val_dir, "--json", *common])
        res = {}
        # the defaults (dropout 0.5 on each layer's input), and without
        # dropout as MLPClassifier trains (it has none)
        for name, hidden, dropout in (("linear", "", []), ("mlp", "256", []),
                                      ("mlp_nodrop", "256", ["--dropout", "0"])):
            head = str(Path(tmp) / f"{name}.safetensors")
            r = edgetune(a.edgetune, ["train", train_dir, "-o", head, "--hidden", hidden, "--epochs", str(a.epochs),
                                      "--patience", "0", "--val-split", "0", "--batch", str(a.batch), "--json",
                                      *dropout, *common])
            ev = edgetune(a.edgetune, ["eval", val_dir, "--head", head, "--json", *common])
            res[name] = (r["seconds_per_epoch"], r["seconds"], ev["accuracy"])

    rows.append((f"linear head, {a.epochs} epochs vs LogisticRegression fit [s, lower is better]",
                 f"{res['linear'][1]:.3f}", f"{lr_time:.3f}", "LogisticRegression", res["linear"][1] / lr_time))
    rows.append(("linear head val accuracy vs LogisticRegression",
                 f"{res['linear'][2]:.4f}", f"{lr_acc:.4f}", "LogisticRegression", None))
    rows.append((f"256-hidden head, time per epoch (batch {a.batch}) [ms, lower is better]",
                 f"{res['mlp'][0] * 1e3:.2f}", f"{mlp_time / a.epochs * 1e3:.2f}", "MLPClassifier",
                 res["mlp"][0] / (mlp_time / a.epochs)))
    rows.append((f"256-hidden head val accuracy after {a.epochs} epochs",
                 f"{res['mlp'][2]:.4f}", f"{mlp_acc:.4f}", "MLPClassifier", None))
    rows.append((f"256-hidden head without dropout (as MLPClassifier), time per epoch [ms, lower is better]",
                 f"{res['mlp_nodrop'][0] * 1e3:.2f}", f"{mlp_time / a.epochs * 1e3:.2f}", "MLPClassifier",
                 res["mlp_nodrop"][0] / (mlp_time / a.epochs)))
    rows.append((f"256-hidden head without dropout, val accuracy after {a.epochs} epochs",
                 f"{res['mlp_nodrop'][2]:.4f}", f"{mlp_acc:.4f}", "MLPClassifier", None))

    print(f"# edgetune vs the usual tools — {time.strftime('%Y-%m-%d')}, {platform.machine()}, {cores} cores, "
          f"onnxruntime {ort.__version__}, scikit-learn {__import__('sklearn').__version__}\n")
    print("| measure | edgetune | other | other is | ratio |")
    print("|---|---|---|---|---|")
    for name, e, o, who, ratio in rows:
        print(f"| {name} | {e} | {o} | {who} | {'' if ratio is None else f'{ratio:.2f}'} |")
    print(f"\nModel only (preprocessed input), medians of 5 alternating rounds: edgetune {et1:.2f} ms/image on "
          f"1 thread, {etn:.2f} ms/image on {cores} cores (one plan per core); ONNX Runtime {ort1:.2f} ms/image "
          f"on 1 thread, {ortn:.2f} ms/image with {cores} intra-op threads. Ratio: edgetune's time over the "
          f"other's (for extract: the other's images/s over edgetune's), so below 1 edgetune is faster.")


if __name__ == "__main__":
    sys.exit(main())
