//! Random forests on a histogram tree learner.
//!
//! Each feature is binned once into at most 256 quantile bins (one byte per value). A node's best
//! split is found by filling a per-bin histogram of class counts (or target sums) over the node's
//! rows and scanning it once, which costs O(rows) per feature instead of a sort. Trees are grown in
//! parallel (rayon), each from its own seeded generator, so results do not depend on thread timing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use mlops_nn::mlp::argmax;

use crate::matrix::Matrix;

/// Marks a leaf in [`Tree::feature`].
const LEAF: u32 = u32::MAX;
/// Values sampled per feature to place bin edges.
const EDGE_SAMPLE: usize = 200_000;

/// Features binned for split search.
pub struct Binned {
    rows: usize,
    bins: Vec<u8>,
    /// Per feature, the upper edge of every bin but the last: bin `b` holds `edges[b-1] < x <= edges[b]`.
    edges: Vec<Vec<f64>>,
}

impl Binned {
    pub fn new(x: &Matrix, max_bins: usize) -> Self {
        let max_bins = max_bins.clamp(2, 256);
        let per_feature: Vec<(Vec<f64>, Vec<u8>)> = (0..x.cols)
            .into_par_iter()
            .map(|f| {
                let col = x.column(f);
                let edges = bin_edges(col, max_bins);
                let bins = col
                    .iter()
                    .map(|v| edges.partition_point(|e| e < v) as u8)
                    .collect();
                (edges, bins)
            })
            .collect();
        let mut bins = Vec::with_capacity(x.rows * x.cols);
        let mut edges = Vec::with_capacity(x.cols);
        for (e, b) in per_feature {
            edges.push(e);
            bins.extend_from_slice(&b);
        }
        Self {
            rows: x.rows,
            bins,
            edges,
        }
    }

    fn column(&self, f: usize) -> &[u8] {
        &self.bins[f * self.rows..(f + 1) * self.rows]
    }
}

fn bin_edges(col: &[f64], max_bins: usize) -> Vec<f64> {
    let step = col.len().div_ceil(EDGE_SAMPLE).max(1);
    let mut sample: Vec<f64> = col.iter().step_by(step).copied().collect();
    sample.sort_by(f64::total_cmp);
    sample.dedup();
    if sample.len() <= max_bins {
        return sample
            .windows(2)
            .map(|w| w[0] + (w[1] - w[0]) / 2.0)
            .collect();
    }
    let mut edges: Vec<f64> = (1..max_bins)
        .map(|k| sample[k * (sample.len() - 1) / max_bins])
        .collect();
    edges.dedup();
    edges
}

/// What the trees learn to predict.
#[derive(Clone, Copy)]
pub enum Targets<'a> {
    Classes { y: &'a [u32], n_classes: usize },
    Values(&'a [f64]),
}

impl Targets<'_> {
    fn outputs(&self) -> usize {
        match self {
            Targets::Classes { n_classes, .. } => *n_classes,
            Targets::Values(_) => 1,
        }
    }
}

/// How many features each split looks at.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaxFeatures {
    /// √(features): the usual choice for classification.
    Sqrt,
    Log2,
    /// Every feature: the usual choice for regression.
    All,
    /// A fraction of the features, in (0, 1].
    Fraction(f64),
}

impl MaxFeatures {
    fn count(self, n: usize) -> usize {
        let k = match self {
            MaxFeatures::Sqrt => (n as f64).sqrt().round() as usize,
            MaxFeatures::Log2 => (n as f64).log2().round() as usize,
            MaxFeatures::All => n,
            MaxFeatures::Fraction(f) => (f * n as f64).round() as usize,
        };
        k.clamp(1, n.max(1))
    }
}

/// Forest settings.
#[derive(Debug, Clone)]
pub struct ForestParams {
    pub n_estimators: usize,
    pub max_depth: Option<usize>,
    pub min_samples_split: usize,
    pub min_samples_leaf: usize,
    pub max_features: MaxFeatures,
    pub bootstrap: bool,
    pub max_bins: usize,
    pub seed: u64,
}

/// One tree, as flat arrays (compact to store, fast to walk).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tree {
    /// Split feature, or `LEAF`.
    feature: Vec<u32>,
    threshold: Vec<f64>,
    /// Left child; for a leaf, the leaf's index into `values`.
    left: Vec<u32>,
    right: Vec<u32>,
    /// `outputs` values per leaf: class probabilities, or the mean target.
    values: Vec<f64>,
    /// The nodes packed for prediction, built on first use: a walk then reads one cache line a
    /// node instead of one from each of the four arrays above.
    #[serde(skip)]
    packed: std::sync::OnceLock<Packed>,
}

/// A tree as prediction walks it.
#[derive(Debug, Clone)]
struct Packed {
    nodes: Vec<Node>,
    /// The longest path from the root to a leaf.
    depth: usize,
}

/// A node as prediction walks it: split feature, threshold, and the left and right children side
/// by side. A leaf points at itself both ways (so every walk can take `depth` steps without
/// asking whether it has arrived) and keeps its value's index in `leaf`.
#[derive(Debug, Clone, Copy)]
struct Node {
    threshold: f64,
    feature: u32,
    children: [u32; 2],
    leaf: u32,
}

impl Tree {
    #[inline]
    fn leaf(&self, x: &Matrix, row: usize) -> usize {
        let mut node = 0;
        while self.feature[node] != LEAF {
            node = if x.get(row, self.feature[node] as usize) <= self.threshold[node] {
                self.left[node] as usize
            } else {
                self.right[node] as usize
            };
        }
        self.left[node] as usize
    }

    fn packed(&self) -> &Packed {
        self.packed.get_or_init(|| {
            let nodes: Vec<Node> = (0..self.feature.len())
                .map(|n| {
                    let leaf = self.feature[n] == LEAF;
                    Node {
                        threshold: if leaf { 0.0 } else { self.threshold[n] },
                        feature: if leaf { 0 } else { self.feature[n] },
                        children: if leaf {
                            [n as u32; 2]
                        } else {
                            [self.left[n], self.right[n]]
                        },
                        leaf: if leaf { self.left[n] } else { 0 },
                    }
                })
                .collect();
            let mut depth = 0;
            let mut stack = vec![(0usize, 0usize)];
            while let Some((n, d)) = stack.pop() {
                if self.feature[n] == LEAF {
                    depth = depth.max(d);
                } else {
                    stack.push((self.left[n] as usize, d + 1));
                    stack.push((self.right[n] as usize, d + 1));
                }
            }
            Packed { nodes, depth }
        })
    }

    /// The leaf each row of `rows` (row-major, `cols` features each) falls in. Rows walk in
    /// groups of `LANES`, one level at a time, `depth` levels without a branch: the lanes' node
    /// loads do not wait on each other, so the processor overlaps them (a single walk is one
    /// dependent load after another).
    fn leaves_of_rows(&self, rows: &[f64], cols: usize, leaves: &mut [usize]) {
        const LANES: usize = 8;
        let Packed { nodes, depth } = self.packed();
        for (group, out) in leaves.chunks_mut(LANES).enumerate() {
            let first = group * LANES;
            let lanes = out.len();
            let mut at = [0u32; LANES];
            for _ in 0..*depth {
                for (lane, node) in at.iter_mut().enumerate().take(lanes) {
                    let n = nodes[*node as usize];
                    let x = rows[(first + lane) * cols + n.feature as usize];
                    // As the fit split: `x <= threshold` goes left (a NaN would go right).
                    let left = x <= n.threshold;
                    *node = n.children[usize::from(!left)];
                }
            }
            for (leaf, node) in out.iter_mut().zip(at) {
                *leaf = nodes[node as usize].leaf as usize;
            }
        }
    }

    pub fn node_count(&self) -> usize {
        self.feature.len()
    }
}

/// A fitted forest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forest {
    /// Classes (classification) or 1 (regression).
    pub outputs: usize,
    pub classification: bool,
    pub n_features: usize,
    pub trees: Vec<Tree>,
    /// Mean decrease in impurity per feature, summing to 1.
    pub feature_importances: Vec<f64>,
}

/// The out-of-bag score as trees are added: (trees, score). Accuracy for classification, R² for
/// regression.
pub type OobHistory = Vec<(usize, f64)>;

/// Hooks into a running fit.
pub struct FitHooks<'a> {
    pub cancelled: &'a AtomicBool,
    /// Called after each tree with (trees done, total).
    pub on_tree: &'a (dyn Fn(usize, usize) + Sync),
}

/// The fit was cancelled.
#[derive(Debug)]
pub struct Cancelled;

impl Forest {
    /// Grows the forest. Returns it with its out-of-bag history (empty without bootstrap).
    pub fn fit(
        x: &Matrix,
        targets: Targets<'_>,
        params: &ForestParams,
        hooks: &FitHooks<'_>,
    ) -> Result<(Self, OobHistory), Cancelled> {
        let binned = Binned::new(x, params.max_bins);
        // Counting and reporting under one lock keeps the reported count in order even though
        // trees finish on several threads.
        let done = Mutex::new(0usize);
        let grown: Vec<(Tree, Vec<f64>, Option<Vec<bool>>)> = (0..params.n_estimators)
            .into_par_iter()
            .map(|t| {
                let mut rng = ChaCha8Rng::seed_from_u64(
                    params
                        .seed
                        .wrapping_add((t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                );
                let (mut sample, in_bag) = if params.bootstrap {
                    let mut in_bag = vec![false; x.rows];
                    let sample: Vec<u32> = (0..x.rows)
                        .map(|_| {
                            let i = rng.random_range(0..x.rows);
                            in_bag[i] = true;
                            i as u32
                        })
                        .collect();
                    (sample, Some(in_bag))
                } else {
                    ((0..x.rows as u32).collect(), None)
                };
                let mut importance = vec![0.0; x.cols];
                let tree = TreeBuilder {
                    binned: &binned,
                    targets,
                    params,
                    cancelled: hooks.cancelled,
                }
                .build(&mut sample, &mut rng, &mut importance)?;
                {
                    let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
                    *done += 1;
                    (hooks.on_tree)(*done, params.n_estimators);
                }
                Ok((tree, importance, in_bag))
            })
            .collect::<Result<_, Cancelled>>()?;

        let mut importances = vec![0.0; x.cols];
        for (_, imp, _) in &grown {
            for (a, b) in importances.iter_mut().zip(imp) {
                *a += b;
            }
        }
        let total: f64 = importances.iter().sum();
        if total > 0.0 {
            importances.iter_mut().for_each(|v| *v /= total);
        }
        let mut forest = Forest {
            outputs: targets.outputs(),
            classification: matches!(targets, Targets::Classes { .. }),
            n_features: x.cols,
            trees: Vec::with_capacity(grown.len()),
            feature_importances: importances,
        };
        let mut bags = Vec::with_capacity(grown.len());
        for (tree, _, bag) in grown {
            forest.trees.push(tree);
            bags.push(bag);
        }
        let history = if params.bootstrap {
            forest.oob_history(x, targets, &bags)
        } else {
            Vec::new()
        };
        Ok((forest, history))
    }

    fn oob_history(
        &self,
        x: &Matrix,
        targets: Targets<'_>,
        bags: &[Option<Vec<bool>>],
    ) -> OobHistory {
        let k = self.outputs;
        let mut sums = vec![0.0; x.rows * k];
        let mut votes = vec![0u32; x.rows];
        let every = (self.trees.len() / 20).max(1);
        let mut history = Vec::new();
        for (t, (tree, bag)) in self.trees.iter().zip(bags).enumerate() {
            let Some(bag) = bag else { continue };
            for row in (0..x.rows).filter(|&r| !bag[r]) {
                let leaf = tree.leaf(x, row);
                for (s, v) in sums[row * k..(row + 1) * k]
                    .iter_mut()
                    .zip(&tree.values[leaf * k..(leaf + 1) * k])
                {
                    *s += v;
                }
                votes[row] += 1;
            }
            if ((t + 1) % every == 0 || t + 1 == self.trees.len())
                && let Some(score) = oob_score(&sums, &votes, k, targets)
            {
                history.push((t + 1, score));
            }
        }
        history
    }

    /// Averaged tree outputs, row-major: `rows × outputs`.
    pub fn predict_raw(&self, x: &Matrix) -> Vec<f64> {
        /// Rows scored together: their features fit in the cache while every tree walks them.
        const BLOCK: usize = 256;
        let k = self.outputs;
        let mut out = vec![0.0; x.rows * k];
        let scale = 1.0 / self.trees.len().max(1) as f64;
        out.par_chunks_mut(k * BLOCK)
            .enumerate()
            .for_each(|(chunk, block)| {
                // The matrix is column-major; a walk reads one row across features, so the block
                // is copied row-major first. Each tree then walks every row of the block while its
                // nodes are in the cache. Every row still sums its trees in the same order.
                let first = chunk * BLOCK;
                let rows = block.len() / k.max(1);
                let mut local = vec![0.0; rows * x.cols];
                for c in 0..x.cols {
                    for (i, v) in x.column(c)[first..first + rows].iter().enumerate() {
                        local[i * x.cols + c] = *v;
                    }
                }
                let mut leaves = vec![0usize; rows];
                for tree in &self.trees {
                    tree.leaves_of_rows(&local, x.cols, &mut leaves);
                    for (row_out, &leaf) in block.chunks_mut(k).zip(&leaves) {
                        for (o, v) in row_out
                            .iter_mut()
                            .zip(&tree.values[leaf * k..(leaf + 1) * k])
                        {
                            *o += v;
                        }
                    }
                }
                block.iter_mut().for_each(|o| *o *= scale);
            });
        out
    }
}

fn oob_score(sums: &[f64], votes: &[u32], k: usize, targets: Targets<'_>) -> Option<f64> {
    let rows: Vec<usize> = (0..votes.len()).filter(|&r| votes[r] > 0).collect();
    if rows.is_empty() {
        return None;
    }
    match targets {
        Targets::Classes { y, .. } => {
            let correct = rows
                .iter()
                .filter(|&&r| argmax(&sums[r * k..(r + 1) * k]) == y[r] as usize)
                .count();
            Some(correct as f64 / rows.len() as f64)
        }
        Targets::Values(y) => {
            let mean = rows.iter().map(|&r| y[r]).sum::<f64>() / rows.len() as f64;
            let ss_res: f64 = rows
                .iter()
                .map(|&r| (y[r] - sums[r] / votes[r] as f64).powi(2))
                .sum();
            let ss_tot: f64 = rows.iter().map(|&r| (y[r] - mean).powi(2)).sum();
            Some(if ss_tot > 0.0 {
                1.0 - ss_res / ss_tot
            } else {
                0.0
            })
        }
    }
}

struct TreeBuilder<'a> {
    binned: &'a Binned,
    targets: Targets<'a>,
    params: &'a ForestParams,
    cancelled: &'a AtomicBool,
}

struct Split {
    feature: usize,
    bin: u8,
    gain: f64,
}

impl TreeBuilder<'_> {
    fn build(
        &self,
        sample: &mut [u32],
        rng: &mut ChaCha8Rng,
        importance: &mut [f64],
    ) -> Result<Tree, Cancelled> {
        let k = self.targets.outputs();
        let mut tree = Tree {
            feature: vec![LEAF],
            threshold: vec![0.0],
            left: vec![0],
            right: vec![0],
            values: Vec::new(),
            packed: Default::default(),
        };
        let mut features: Vec<usize> = (0..self.binned.edges.len()).collect();
        let mtry = self.params.max_features.count(features.len());
        let max_depth = self.params.max_depth.unwrap_or(usize::MAX);
        let mut stack = vec![(0usize, 0usize, sample.len(), 0usize)];
        let mut stats = vec![0.0; k.max(2)];
        let mut hist = Vec::new();
        while let Some((node, start, end, depth)) = stack.pop() {
            if self.cancelled.load(Ordering::Relaxed) {
                return Err(Cancelled);
            }
            let rows = &sample[start..end];
            let n = rows.len();
            self.node_stats(rows, &mut stats);
            let can_split = depth < max_depth
                && n >= self.params.min_samples_split
                && n >= 2 * self.params.min_samples_leaf
                && !self.is_pure(&stats, n);
            let split = if can_split {
                // partial_shuffle draws the random subset into the first slice it returns (the
                // tail of `features`), not the head.
                let (chosen, _) = features.partial_shuffle(rng, mtry);
                self.best_split(rows, chosen, &stats, &mut hist)
            } else {
                None
            };
            match split {
                Some(s) => {
                    importance[s.feature] += s.gain;
                    let col = self.binned.column(s.feature);
                    let mid =
                        start + partition(&mut sample[start..end], |&i| col[i as usize] <= s.bin);
                    let (l, r) = (tree.feature.len(), tree.feature.len() + 1);
                    for _ in 0..2 {
                        tree.feature.push(LEAF);
                        tree.threshold.push(0.0);
                        tree.left.push(0);
                        tree.right.push(0);
                    }
                    tree.feature[node] = s.feature as u32;
                    tree.threshold[node] = self.binned.edges[s.feature][s.bin as usize];
                    tree.left[node] = l as u32;
                    tree.right[node] = r as u32;
                    stack.push((r, mid, end, depth + 1));
                    stack.push((l, start, mid, depth + 1));
                }
                None => {
                    tree.left[node] = (tree.values.len() / k) as u32;
                    match self.targets {
                        Targets::Classes { .. } => {
                            tree.values.extend(stats[..k].iter().map(|c| c / n as f64))
                        }
                        Targets::Values(_) => tree.values.push(stats[0] / n as f64),
                    }
                }
            }
        }
        Ok(tree)
    }

    /// Class counts, or (sum, sum of squares) for regression.
    fn node_stats(&self, rows: &[u32], stats: &mut [f64]) {
        stats.iter_mut().for_each(|s| *s = 0.0);
        match self.targets {
            Targets::Classes { y, .. } => rows
                .iter()
                .for_each(|&i| stats[y[i as usize] as usize] += 1.0),
            Targets::Values(y) => rows.iter().for_each(|&i| {
                let v = y[i as usize];
                stats[0] += v;
                stats[1] += v * v;
            }),
        }
    }

    fn is_pure(&self, stats: &[f64], n: usize) -> bool {
        match self.targets {
            Targets::Classes { n_classes, .. } => stats[..n_classes].contains(&(n as f64)),
            Targets::Values(_) => stats[1] - stats[0] * stats[0] / n as f64 <= 1e-12 * n as f64,
        }
    }

    /// The split with the largest impurity decrease among `features`, if any decreases it.
    fn best_split(
        &self,
        rows: &[u32],
        features: &[usize],
        parent: &[f64],
        hist: &mut Vec<f64>,
    ) -> Option<Split> {
        let min_leaf = self.params.min_samples_leaf as f64;
        let n = rows.len() as f64;
        let mut best: Option<Split> = None;
        match self.targets {
            Targets::Classes { y, n_classes: k } => {
                let parent_score = parent[..k].iter().map(|c| c * c).sum::<f64>() / n;
                let mut left = vec![0.0; k];
                for &f in features {
                    let nb = self.binned.edges[f].len() + 1;
                    if nb < 2 {
                        continue;
                    }
                    hist.clear();
                    hist.resize(nb * k, 0.0);
                    let col = self.binned.column(f);
                    for &i in rows {
                        hist[col[i as usize] as usize * k + y[i as usize] as usize] += 1.0;
                    }
                    left.iter_mut().for_each(|v| *v = 0.0);
                    let mut n_left = 0.0;
                    for b in 0..nb - 1 {
                        for c in 0..k {
                            left[c] += hist[b * k + c];
                            n_left += hist[b * k + c];
                        }
                        let n_right = n - n_left;
                        if n_left < min_leaf {
                            continue;
                        }
                        if n_right < min_leaf {
                            break;
                        }
                        let (mut sl, mut sr) = (0.0, 0.0);
                        for c in 0..k {
                            sl += left[c] * left[c];
                            let r = parent[c] - left[c];
                            sr += r * r;
                        }
                        let gain = sl / n_left + sr / n_right - parent_score;
                        if gain > 1e-12 && best.as_ref().is_none_or(|s| gain > s.gain) {
                            best = Some(Split {
                                feature: f,
                                bin: b as u8,
                                gain,
                            });
                        }
                    }
                }
            }
            Targets::Values(y) => {
                let parent_score = parent[0] * parent[0] / n;
                for &f in features {
                    let nb = self.binned.edges[f].len() + 1;
                    if nb < 2 {
                        continue;
                    }
                    hist.clear();
                    hist.resize(nb * 2, 0.0);
                    let col = self.binned.column(f);
                    for &i in rows {
                        let b = col[i as usize] as usize * 2;
                        hist[b] += 1.0;
                        hist[b + 1] += y[i as usize];
                    }
                    let (mut n_left, mut s_left) = (0.0, 0.0);
                    for b in 0..nb - 1 {
                        n_left += hist[b * 2];
                        s_left += hist[b * 2 + 1];
                        let n_right = n - n_left;
                        if n_left < min_leaf {
                            continue;
                        }
                        if n_right < min_leaf {
                            break;
                        }
                        let s_right = parent[0] - s_left;
                        let gain =
                            s_left * s_left / n_left + s_right * s_right / n_right - parent_score;
                        if gain > 1e-12 * n && best.as_ref().is_none_or(|s| gain > s.gain) {
                            best = Some(Split {
                                feature: f,
                                bin: b as u8,
                                gain,
                            });
                        }
                    }
                }
            }
        }
        best
    }
}

/// Moves the elements that satisfy `pred` to the front; returns how many there are.
fn partition<T>(v: &mut [T], pred: impl Fn(&T) -> bool) -> usize {
    let mut i = 0;
    for j in 0..v.len() {
        if pred(&v[j]) {
            v.swap(i, j);
            i += 1;
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(n: usize) -> ForestParams {
        ForestParams {
            n_estimators: n,
            max_depth: Some(8),
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: MaxFeatures::Sqrt,
            bootstrap: true,
            max_bins: 256,
            seed: 1,
        }
    }

    fn no_hooks() -> (AtomicBool, impl Fn(usize, usize) + Sync) {
        (AtomicBool::new(false), |_, _| {})
    }

    /// Two interleaved half-moons-like classes: y = 1 when x1 > sin(3 x0).
    fn wavy(n: usize, seed: u64) -> (Matrix, Vec<u32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x0: Vec<f64> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
        let x1: Vec<f64> = (0..n).map(|_| rng.random_range(-1.5..1.5)).collect();
        let noise: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let y = x0
            .iter()
            .zip(&x1)
            .map(|(a, b)| u32::from(*b > (3.0 * a).sin()))
            .collect();
        let data = [x0, x1, noise].concat();
        (
            Matrix {
                rows: n,
                cols: 3,
                data,
            },
            y,
        )
    }

    #[test]
    fn learns_a_non_linear_boundary() {
        let (x, y) = wavy(3000, 1);
        let (tx, ty) = wavy(1000, 2);
        let (cancel, on_tree) = no_hooks();
        let hooks = FitHooks {
            cancelled: &cancel,
            on_tree: &on_tree,
        };
        let (forest, oob) = Forest::fit(
            &x,
            Targets::Classes {
                y: &y,
                n_classes: 2,
            },
            &params(30),
            &hooks,
        )
        .unwrap();
        let proba = forest.predict_raw(&tx);
        let acc = (0..tx.rows)
            .filter(|&r| argmax(&proba[r * 2..r * 2 + 2]) == ty[r] as usize)
            .count() as f64
            / tx.rows as f64;
        assert!(acc > 0.93, "accuracy {acc}");
        assert!(oob.last().unwrap().1 > 0.9, "{oob:?}");
        assert!(
            forest.feature_importances[2] < forest.feature_importances[0],
            "noise must matter least"
        );
        assert!((forest.feature_importances.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn the_packed_walk_finds_the_leaves_the_plain_walk_finds() {
        let (x, y) = wavy(2000, 5);
        let (tx, _) = wavy(777, 6);
        let (cancel, on_tree) = no_hooks();
        let hooks = FitHooks {
            cancelled: &cancel,
            on_tree: &on_tree,
        };
        let mut deep = params(12);
        deep.max_depth = None;
        let (forest, _) = Forest::fit(
            &x,
            Targets::Classes {
                y: &y,
                n_classes: 2,
            },
            &deep,
            &hooks,
        )
        .unwrap();
        let rows: Vec<f64> = (0..tx.rows)
            .flat_map(|r| (0..tx.cols).map(move |c| (r, c)))
            .map(|(r, c)| tx.get(r, c))
            .collect();
        let mut leaves = vec![0; tx.rows];
        for tree in &forest.trees {
            tree.leaves_of_rows(&rows, tx.cols, &mut leaves);
            for (r, leaf) in leaves.iter().enumerate() {
                assert_eq!(*leaf, tree.leaf(&tx, r), "row {r}");
            }
        }
        // And the probabilities are the plain walk's sums, in the same order.
        let proba = forest.predict_raw(&tx);
        for r in 0..tx.rows {
            let mut sums = [0.0; 2];
            for tree in &forest.trees {
                let leaf = tree.leaf(&tx, r);
                sums[0] += tree.values[leaf * 2];
                sums[1] += tree.values[leaf * 2 + 1];
            }
            let scale = 1.0 / forest.trees.len() as f64;
            assert_eq!(proba[r * 2], sums[0] * scale, "row {r}");
            assert_eq!(proba[r * 2 + 1], sums[1] * scale, "row {r}");
        }
    }

    #[test]
    fn same_seed_same_forest_whatever_the_threads() {
        let (x, y) = wavy(500, 3);
        let (cancel, on_tree) = no_hooks();
        let hooks = FitHooks {
            cancelled: &cancel,
            on_tree: &on_tree,
        };
        let t = Targets::Classes {
            y: &y,
            n_classes: 2,
        };
        let a = Forest::fit(&x, t, &params(8), &hooks).unwrap().0;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = pool.install(|| Forest::fit(&x, t, &params(8), &hooks).unwrap().0);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
    }

    #[test]
    fn regression_fits_a_smooth_function() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let n = 2000;
        let x0: Vec<f64> = (0..n).map(|_| rng.random_range(-3.0..3.0)).collect();
        let y: Vec<f64> = x0.iter().map(|v| v.sin() * 2.0).collect();
        let x = Matrix {
            rows: n,
            cols: 1,
            data: x0,
        };
        let (cancel, on_tree) = no_hooks();
        let hooks = FitHooks {
            cancelled: &cancel,
            on_tree: &on_tree,
        };
        let p = ForestParams {
            max_features: MaxFeatures::All,
            ..params(20)
        };
        let (forest, oob) = Forest::fit(&x, Targets::Values(&y), &p, &hooks).unwrap();
        assert!(oob.last().unwrap().1 > 0.98, "{oob:?}");
        let pred = forest.predict_raw(&Matrix {
            rows: 1,
            cols: 1,
            data: vec![1.0],
        });
        assert!((pred[0] - 2.0 * 1.0f64.sin()).abs() < 0.1, "{pred:?}");
    }

    #[test]
    fn cancellation_stops_the_fit() {
        let (x, y) = wavy(500, 3);
        let cancel = AtomicBool::new(true);
        let hooks = FitHooks {
            cancelled: &cancel,
            on_tree: &|_, _| {},
        };
        assert!(
            Forest::fit(
                &x,
                Targets::Classes {
                    y: &y,
                    n_classes: 2
                },
                &params(4),
                &hooks
            )
            .is_err()
        );
    }
}
