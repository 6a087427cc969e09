//! Seeded edits of a labelled image split: subsets, random labels, class filters and binary
//! tasks. Each returns a new dataset and leaves the input untouched; the same seed gives the
//! same result on every machine (ChaCha8 streams).

use rand::SeedableRng;
use rand::seq::index::sample;
use rand::{Rng, seq::SliceRandom};
use rand_chacha::ChaCha8Rng;

use crate::dataset::ImageDataset;
use crate::error::{DataError, Result};

impl ImageDataset {
    /// The samples at `indices`, in that order.
    ///
    /// # Errors
    /// [`DataError::Invalid`] for an index ≥ n.
    pub fn select(&self, indices: &[usize]) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(DataError::invalid(
                "subset",
                format!("index {bad} but {} has {} samples", self.name, self.len()),
            ));
        }
        let mut pixels = Vec::with_capacity(indices.len() * self.pixel_dim());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        Ok(ImageDataset {
            name: self.name.clone(),
            rows: self.rows,
            cols: self.cols,
            classes: self.classes,
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        })
    }

    fn check_count(&self, what: &'static str, n: usize) -> Result<()> {
        if n > self.len() {
            return Err(DataError::invalid(
                what,
                format!("asked for {n} samples but {} has {}", self.name, self.len()),
            ));
        }
        Ok(())
    }

    /// The first n samples.
    pub fn first(&self, n: usize) -> Result<Self> {
        self.check_count("subset", n)?;
        self.select(&(0..n).collect::<Vec<_>>())
    }

    /// n samples drawn uniformly without replacement, kept in their original order.
    pub fn random_subset(&self, n: usize, seed: u64) -> Result<Self> {
        self.check_count("subset", n)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut idx = sample(&mut rng, self.len(), n).into_vec();
        idx.sort_unstable();
        self.select(&idx)
    }

    /// Replaces the labels at `indices` by labels drawn uniformly from all classes (a new
    /// label may equal the old one, as in Zhu et al.'s code).
    pub fn randomize_labels_at(&self, indices: &[usize], seed: u64) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(DataError::invalid(
                "random labels",
                format!("index {bad} but {} has {} samples", self.name, self.len()),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = self.clone();
        for &i in indices {
            out.labels[i] = rng.random_range(0..self.classes) as u8;
        }
        Ok(out)
    }

    /// Gives k samples, chosen uniformly without replacement, uniformly random labels.
    /// Returns the new dataset and the chosen indices, sorted.
    pub fn randomize_labels(&self, k: usize, seed: u64) -> Result<(Self, Vec<usize>)> {
        self.check_count("random labels", k)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut idx = sample(&mut rng, self.len(), k).into_vec();
        idx.sort_unstable();
        let out = self.randomize_labels_at(&idx, seed.wrapping_add(0x9e37_79b9_7f4a_7c15))?;
        Ok((out, idx))
    }

    /// Zhu et al.'s tweak: the first `clean` samples with their labels, then the next `noisy`
    /// samples with uniformly random labels (`clean + noisy` samples in all).
    pub fn clean_plus_random_labels(&self, clean: usize, noisy: usize, seed: u64) -> Result<Self> {
        let head = self.first(clean + noisy)?;
        head.randomize_labels_at(&(clean..clean + noisy).collect::<Vec<_>>(), seed)
    }

    /// Keeps the samples whose label is in `classes`; labels keep their values.
    pub fn filter_classes(&self, classes: &[u8]) -> Result<Self> {
        if let Some(&bad) = classes.iter().find(|&&c| c as usize >= self.classes) {
            return Err(DataError::invalid(
                "class filter",
                format!(
                    "class {bad} but {} has classes 0..{}",
                    self.name, self.classes
                ),
            ));
        }
        let idx: Vec<usize> = (0..self.len())
            .filter(|&i| classes.contains(&self.labels[i]))
            .collect();
        self.select(&idx)
    }

    /// A binary task: label 1 for the classes in `positive`, 0 for all others.
    pub fn binary(&self, positive: &[u8]) -> Result<Self> {
        if let Some(&bad) = positive.iter().find(|&&c| c as usize >= self.classes) {
            return Err(DataError::invalid(
                "binary relabelling",
                format!(
                    "class {bad} but {} has classes 0..{}",
                    self.name, self.classes
                ),
            ));
        }
        Ok(ImageDataset {
            labels: self
                .labels
                .iter()
                .map(|l| positive.contains(l) as u8)
                .collect(),
            classes: 2,
            ..self.clone()
        })
    }

    /// The samples in a seeded random order.
    pub fn shuffled(&self, seed: u64) -> Self {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        self.select(&idx).expect("a permutation is in range")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(n: usize) -> ImageDataset {
        ImageDataset {
            name: "t".into(),
            rows: 1,
            cols: 2,
            classes: 10,
            pixels: (0..2 * n).map(|v| v as u8).collect(),
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
        }
    }

    #[test]
    fn first_and_random_subsets() {
        let d = ds(50);
        assert_eq!(d.first(3).unwrap().pixels, vec![0, 1, 2, 3, 4, 5]);
        let a = d.random_subset(10, 7).unwrap();
        assert_eq!(a, d.random_subset(10, 7).unwrap());
        assert_ne!(a, d.random_subset(10, 8).unwrap());
        assert_eq!(a.len(), 10);
        // Rows stay intact: pixel pairs (2i, 2i+1) with label i % 10.
        for j in 0..10 {
            let i = a.pixels[2 * j] as usize / 2;
            assert_eq!(a.pixels[2 * j + 1] as usize, 2 * i + 1);
            assert_eq!(a.labels[j] as usize, i % 10);
        }
        assert!(d.first(51).is_err());
        assert!(
            d.random_subset(51, 0)
                .unwrap_err()
                .to_string()
                .contains("51")
        );
    }

    #[test]
    fn random_labels_are_uniform_and_seeded() {
        let d = ds(20_000);
        let (r, idx) = d.randomize_labels(10_000, 3).unwrap();
        assert_eq!(idx.len(), 10_000);
        assert_eq!(r, d.randomize_labels(10_000, 3).unwrap().0);
        // Untouched samples keep their labels.
        let chosen: std::collections::HashSet<_> = idx.iter().copied().collect();
        assert!(
            (0..d.len())
                .filter(|i| !chosen.contains(i))
                .all(|i| r.labels[i] == d.labels[i])
        );
        // New labels are uniform over the 10 classes: each count within 5 sigma of 1000.
        let mut counts = [0usize; 10];
        for &i in &idx {
            counts[r.labels[i] as usize] += 1;
        }
        let sigma = (10_000.0f64 * 0.1 * 0.9).sqrt();
        assert!(
            counts
                .iter()
                .all(|&c| (c as f64 - 1000.0).abs() < 5.0 * sigma),
            "{counts:?}"
        );
    }

    #[test]
    fn zhu_tweak_keeps_first_clean_block() {
        let d = ds(2000);
        let t = d.clean_plus_random_labels(1000, 200, 1).unwrap();
        assert_eq!(t.len(), 1200);
        assert_eq!(t.labels[..1000], d.labels[..1000]);
        let changed = (1000..1200).filter(|&i| t.labels[i] != d.labels[i]).count();
        assert!(changed > 150, "{changed} of 200 changed"); // 9/10 expected
        assert!(d.clean_plus_random_labels(1900, 200, 1).is_err());
    }

    #[test]
    fn class_filter_and_binary() {
        let d = ds(30);
        let f = d.filter_classes(&[3, 7]).unwrap();
        assert_eq!(f.labels, vec![3, 7, 3, 7, 3, 7]);
        let b = f.binary(&[7]).unwrap();
        assert_eq!((b.classes, b.labels.clone()), (2, vec![0, 1, 0, 1, 0, 1]));
        assert!(d.filter_classes(&[10]).is_err());
        assert!(d.binary(&[12]).is_err());
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let d = ds(100);
        let s = d.shuffled(5);
        assert_eq!(s, d.shuffled(5));
        let mut l = s.labels.clone();
        l.sort();
        let mut o = d.labels.clone();
        o.sort();
        assert_eq!(l, o);
    }
}
