//! A labelled image split held in host memory as bytes, as read from its IDX files.

use std::path::Path;

use crate::error::{DataError, Result};
use crate::idx::{read_images, read_labels};
use crate::locate::{SearchPath, file_in};
use crate::registry::{DatasetSpec, Split, lookup};

/// `n` images of `rows × cols` bytes with one label each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDataset {
    /// Where it came from (`fashion-mnist/train`), kept through tweaks for messages and logs.
    pub name: String,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// Number of classes; every label is below it.
    pub classes: usize,
    /// `n · rows · cols` pixels in 0..=255, image after image.
    pub pixels: Vec<u8>,
    /// `n` labels.
    pub labels: Vec<u8>,
}

impl ImageDataset {
    /// Reads one split of a registry dataset from `dir`.
    ///
    /// Checks structure (IDX format, counts, label range) but not checksums: that is
    /// [`crate::verify()`]'s job, kept out of every load because it reads the files twice.
    pub fn load_split(spec: &DatasetSpec, dir: &Path, split: Split) -> Result<Self> {
        let (fi, fl) = spec.split_files(split);
        let missing = |f: &crate::registry::FileSpec| DataError::NotFound {
            name: format!("{} ({})", spec.name, f.file_name),
            searched: vec![dir.to_path_buf()],
        };
        let images_path = file_in(dir, fi).ok_or_else(|| missing(fi))?;
        let labels_path = file_in(dir, fl).ok_or_else(|| missing(fl))?;
        // The registry knows each file's decompressed size: read no further than it.
        let [rows, cols] = spec.image_shape;
        let images =
            crate::idx::read_maybe_gz_limited(&images_path, 16 + (fi.count * rows * cols) as u64)
                .and_then(|b| crate::idx::parse_idx(&images_path, &b))
                .and_then(|a| crate::idx::images_from_idx(&images_path, a))?;
        if (images.rows, images.cols) != (rows, cols) {
            return Err(DataError::BadDims {
                path: images_path,
                detail: format!(
                    "{} images are {rows}×{cols}, found {}×{}",
                    spec.name, images.rows, images.cols
                ),
            });
        }
        let labels = crate::idx::read_maybe_gz_limited(&labels_path, fl.idx_size(spec.image_shape))
            .and_then(|b| crate::idx::parse_idx(&labels_path, &b))
            .and_then(|a| crate::idx::labels_from_idx(&labels_path, a, spec.n_classes()))?;
        let ds = Self::from_parts(&images_path, images, &labels_path, labels, spec.n_classes())?;
        if ds.len() != fi.count {
            return Err(DataError::BadDims {
                path: images_path,
                detail: format!(
                    "{} {} has {} samples, found {}",
                    spec.name,
                    split.name(),
                    fi.count,
                    ds.len()
                ),
            });
        }
        Ok(ImageDataset {
            name: format!("{}/{}", spec.name, split.name()),
            ..ds
        })
    }

    /// Finds a registry dataset on the search path and reads one split.
    pub fn open(name: &str, search: &SearchPath, split: Split) -> Result<Self> {
        let spec = lookup(name)?;
        let dir = search.locate(spec)?;
        Self::load_split(spec, &dir, split)
    }

    /// Reads any pair of IDX image and label files.
    ///
    /// # Errors
    /// Any IDX error, and [`DataError::CountMismatch`] when the two files disagree.
    pub fn from_files(images: &Path, labels: &Path, classes: usize) -> Result<Self> {
        let im = read_images(images)?;
        let lab = read_labels(labels, classes)?;
        Self::from_parts(images, im, labels, lab, classes)
    }

    fn from_parts(
        images: &Path,
        im: crate::idx::IdxImages,
        labels: &Path,
        lab: Vec<u8>,
        classes: usize,
    ) -> Result<Self> {
        if im.n != lab.len() {
            return Err(DataError::CountMismatch {
                images: images.to_path_buf(),
                n_images: im.n,
                labels: labels.to_path_buf(),
                n_labels: lab.len(),
            });
        }
        Ok(ImageDataset {
            name: images.display().to_string(),
            rows: im.rows,
            cols: im.cols,
            classes,
            pixels: im.pixels,
            labels: lab,
        })
    }

    /// Number of samples n.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels per image, `rows · cols`.
    pub fn pixel_dim(&self) -> usize {
        self.rows * self.cols
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let p = self.pixel_dim();
        &self.pixels[i * p..(i + 1) * p]
    }

    /// Samples per class, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// Mean and (population) standard deviation of all pixels on the [0, 1] scale, x/255,
    /// accumulated in f64.
    pub fn pixel_mean_std(&self) -> (f64, f64) {
        let mut hist = [0u64; 256];
        for &p in &self.pixels {
            hist[p as usize] += 1;
        }
        let n = self.pixels.len() as f64;
        let mean = hist
            .iter()
            .enumerate()
            .map(|(v, &c)| v as f64 * c as f64)
            .sum::<f64>()
            / n;
        let var = hist
            .iter()
            .enumerate()
            .map(|(v, &c)| (v as f64 - mean).powi(2) * c as f64)
            .sum::<f64>()
            / n;
        (mean / 255.0, var.sqrt() / 255.0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::idx::{IdxArray, write_idx};

    pub(crate) fn tiny(
        dir: &Path,
        n_images: usize,
        labels: Vec<u8>,
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        let ip = dir.join("img.gz");
        let lp = dir.join("lab");
        write_idx(
            &ip,
            &IdxArray {
                dims: vec![n_images, 2, 2],
                data: (0..n_images * 4).map(|v| (v * 17 % 256) as u8).collect(),
            },
            true,
        )
        .unwrap();
        write_idx(
            &lp,
            &IdxArray {
                dims: vec![labels.len()],
                data: labels,
            },
            false,
        )
        .unwrap();
        (ip, lp)
    }

    #[test]
    fn counts_and_stats() {
        let d = tempfile::tempdir().unwrap();
        let (ip, lp) = tiny(d.path(), 4, vec![0, 2, 2, 1]);
        let ds = ImageDataset::from_files(&ip, &lp, 3).unwrap();
        assert_eq!(ds.class_counts(), vec![1, 1, 2]);
        let px: Vec<f64> = ds.pixels.iter().map(|&p| p as f64 / 255.0).collect();
        let m = px.iter().sum::<f64>() / px.len() as f64;
        let s = (px.iter().map(|p| (p - m).powi(2)).sum::<f64>() / px.len() as f64).sqrt();
        let (mean, std) = ds.pixel_mean_std();
        assert!((mean - m).abs() < 1e-12 && (std - s).abs() < 1e-12);
    }

    #[test]
    fn image_and_label_counts_must_agree() {
        let d = tempfile::tempdir().unwrap();
        let (ip, lp) = tiny(d.path(), 4, vec![0, 1, 1]);
        let err = ImageDataset::from_files(&ip, &lp, 3).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::CountMismatch {
                    n_images: 4,
                    n_labels: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("img.gz"));
    }

    #[test]
    fn bundled_small_dataset_loads() {
        let ds = ImageDataset::open("fashion-mnist-small", &SearchPath::default(), Split::Train)
            .unwrap();
        assert_eq!((ds.len(), ds.rows, ds.cols, ds.classes), (2000, 28, 28, 10));
        assert_eq!(ds.name, "fashion-mnist-small/train");
        assert_eq!(ds.class_counts().iter().sum::<usize>(), 2000);
    }
}
