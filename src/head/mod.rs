//! The trainable classification head: a small dense network on top of frozen
//! backbone features, trained on-device with hand-written gradients.
//!
//! # Model
//!
//! [`Head`] is a stack of [`Dense`] layers (`W: [in, out]`, `b: [out]`):
//! a linear softmax classifier when [`HeadConfig::hidden`] is empty, or an
//! MLP with ReLU hidden layers. Inverted dropout (rate
//! [`HeadConfig::dropout`]) is applied during training to the input of every
//! dense layer (the features and each hidden activation). Weights are
//! initialised He-normal for ReLU layers and Glorot-uniform for the output
//! layer, from `ChaCha8Rng::seed_from_u64(seed)`. An optional
//! [`Standardizer`] (training mean/std) is stored in the head and applied by
//! [`Head::logits`], [`Head::predict_proba`] and [`Head::predict`].
//!
//! # Training
//!
//! [`train`] minimises softmax cross-entropy (optionally label-smoothed and
//! class-weighted: the loss is `Σ w_i·CE_i / Σ w_i`) with Adam/AdamW or SGD
//! with momentum ([`OptimizerKind`]), L2 or decoupled weight decay on the
//! weights (not biases), a per-epoch [`LrSchedule`], optional global-norm
//! gradient clipping, and early stopping ([`TrainConfig::patience`]) that
//! restores the best weights according to [`Monitor`]:
//!
//! * `Monitor::ValLoss` (default): lowest validation loss;
//! * `Monitor::ValAccuracy`: highest validation accuracy, ties broken by the
//!   lower validation loss.
//!
//! Without a validation set the monitor uses the training loss/accuracy.
//! The forward/backward passes run on [`crate::kernels`] (not ndarray's
//! `dot`) over buffers allocated once before the first batch. Runs are
//! single-threaded and seeded (init, shuffling and dropout use separate
//! ChaCha8 streams of `TrainConfig::seed`), so they are bit-identical on one
//! machine. If the loss becomes NaN/infinite (or explodes past
//! `max(10⁴, 100 × the first batch's loss)`), training stops
//! with [`TrainError::Diverged`], which carries the best head so far.
//!
//! ```no_run
//! # use edgetune::head::*;
//! # let (x, y) = (ndarray::Array2::<f32>::zeros((10, 1280)), vec![0usize; 10]);
//! let (tr, va) = stratified_split(&y, 2, 0.2, 0);
//! let (xt, yt) = (x.select(ndarray::Axis(0), &tr), tr.iter().map(|&i| y[i]).collect::<Vec<_>>());
//! let (xv, yv) = (x.select(ndarray::Axis(0), &va), va.iter().map(|&i| y[i]).collect::<Vec<_>>());
//! let out = train(xt.view(), &yt, Some((xv.view(), &yv)), 2, &HeadConfig::default(),
//!                 &TrainConfig::default(), &mut |m| eprintln!("epoch {} loss {:.3}", m.epoch, m.train_loss))?;
//! let probs = out.head.predict_proba(xv.view());
//! # Ok::<(), TrainError>(())
//! ```
//!
//! # API summary
//!
//! ```text
//! Head::new(input_dim, n_classes, &HeadConfig, seed) -> Head
//! Head::{logits, predict_proba}(&self, ArrayView2<f32>) -> Array2<f32>
//! Head::predict(&self, ArrayView2<f32>) -> Vec<usize>
//! train(x, y, val, n_classes, &HeadConfig, &TrainConfig, &mut dyn FnMut(&EpochMetrics))
//!     -> Result<TrainOutcome, TrainError>
//! evaluate(&Head, x, y) -> Result<(mean_ce, accuracy), TrainError>
//! loss_and_grads(&Head, x, y, sample_weights, label_smoothing) -> (f32, Vec<(dW, db)>)
//! stratified_split(labels, n_classes, val_fraction, seed) -> (train_idx, val_idx)
//! class_weights(labels, n_classes, ClassWeights) -> Vec<f32>
//! ```

mod backprop;
mod model;
mod optim;
mod train;

pub use backprop::{LayerGrads, loss_and_grads};
pub use model::{Dense, Head, HeadConfig, Standardizer};
pub use optim::{LrSchedule, OptimizerKind};
pub use train::{
    ClassWeights, EpochMetrics, Monitor, TrainConfig, TrainError, TrainOutcome, class_weights,
    evaluate, stratified_split, train,
};
