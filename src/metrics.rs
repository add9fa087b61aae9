//! Classification metrics for `eval`: accuracy, per-class precision, recall
//! and F1, and the confusion matrix (rows: true class, columns: predicted).

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct ClassMetrics {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Number of true samples of this class.
    pub support: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub accuracy: f64,
    pub samples: usize,
    pub labels: Vec<String>,
    pub per_class: Vec<ClassMetrics>,
    pub macro_f1: f64,
    pub confusion: Vec<Vec<usize>>,
}

/// The `k` most probable classes of `probs`, highest first (ties: lower
/// index first), with their probabilities.
pub fn top_k(probs: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<usize> = (0..probs.len()).collect();
    idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    idx.into_iter().take(k).map(|i| (i, probs[i])).collect()
}

/// `truth` and `predicted` index into `labels`.
pub fn evaluate(labels: &[String], truth: &[usize], predicted: &[usize]) -> Evaluation {
    assert_eq!(truth.len(), predicted.len());
    let n = labels.len();
    let mut confusion = vec![vec![0usize; n]; n];
    for (&t, &p) in truth.iter().zip(predicted) {
        confusion[t][p] += 1;
    }
    let correct: usize = (0..n).map(|i| confusion[i][i]).sum();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let per_class: Vec<ClassMetrics> = (0..n)
        .map(|c| {
            let tp = confusion[c][c];
            let predicted_c: usize = (0..n).map(|r| confusion[r][c]).sum();
            let support: usize = confusion[c].iter().sum();
            let precision = ratio(tp, predicted_c);
            let recall = ratio(tp, support);
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassMetrics {
                label: labels[c].clone(),
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    let with_support: Vec<&ClassMetrics> = per_class.iter().filter(|c| c.support > 0).collect();
    let macro_f1 = if with_support.is_empty() {
        0.0
    } else {
        with_support.iter().map(|c| c.f1).sum::<f64>() / with_support.len() as f64
    };
    Evaluation {
        accuracy: ratio(correct, truth.len()),
        samples: truth.len(),
        labels: labels.to_vec(),
        per_class,
        macro_f1,
        confusion,
    }
}

impl Evaluation {
    /// A plain-text report: summary, per-class table, confusion matrix.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "accuracy: {:.4} ({} images)\n\n",
            self.accuracy, self.samples
        );
        let w = self
            .labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(5)
            .max(5);
        s += &format!("{:w$}  precision  recall  f1      support\n", "class");
        for c in &self.per_class {
            s += &format!(
                "{:w$}  {:<9.4}  {:<6.4}  {:<6.4}  {}\n",
                c.label, c.precision, c.recall, c.f1, c.support
            );
        }
        s += &format!(
            "{:w$}  {:<9}  {:<6}  {:<6.4}\n\n",
            "macro", "", "", self.macro_f1
        );
        s += "confusion (rows: true, columns: predicted)\n";
        let cw = self
            .confusion
            .iter()
            .flatten()
            .map(|v| v.to_string().len())
            .max()
            .unwrap_or(1)
            .max(3);
        s += &format!("{:w$}", "");
        for i in 0..self.labels.len() {
            s += &format!("  {:>cw$}", format!("[{i}]"));
        }
        s += "\n";
        for (i, row) in self.confusion.iter().enumerate() {
            s += &format!("{:w$}", format!("[{i}] {}", self.labels[i]), w = w);
            for v in row {
                s += &format!("  {v:>cw$}");
            }
            s += "\n";
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_confusion() {
        let labels = vec!["a".to_string(), "b".to_string()];
        // truth a a a b b, predicted a a b b a
        let e = evaluate(&labels, &[0, 0, 0, 1, 1], &[0, 0, 1, 1, 0]);
        assert_eq!(e.confusion, vec![vec![2, 1], vec![1, 1]]);
        assert!((e.accuracy - 0.6).abs() < 1e-12);
        assert!((e.per_class[0].precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((e.per_class[0].recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((e.per_class[1].recall - 0.5).abs() < 1e-12);
        assert!(e.to_text().contains("accuracy: 0.6000"));
    }
}
