//! The datasets noisescope knows by name: their files, canonical download mirrors and
//! sha256 checksums.
//!
//! Two checksums per file: of the `.gz` as the original distribution published it, and of the
//! decompressed IDX contents. The contents are authoritative: copies that were re-compressed
//! (the MNIST in `../shared/datasets`, Debian's `dataset-fashion-mnist`) hold the same bytes
//! under a different gzip wrapper, so `verify` requires the raw checksum and reports whether the
//! `.gz` is also the original one; `fetch` requires both.

use crate::error::{DataError, Result};

/// Which half of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The training split.
    Train,
    /// The test split.
    Test,
}

impl Split {
    /// `"train"` or `"test"`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Rank-3 IDX `[n, rows, cols]`.
    Images,
    /// Rank-1 IDX `[n]`.
    Labels,
}

/// One file of a dataset.
#[derive(Debug, Clone, Copy)]
pub struct FileSpec {
    /// File name in the dataset folder, as published (`train-images-idx3-ubyte.gz`).
    pub file_name: &'static str,
    /// The split it belongs to.
    pub split: Split,
    /// Images or labels.
    pub kind: FileKind,
    /// sha256 of the `.gz` as originally published.
    pub gz_sha256: &'static str,
    /// sha256 of the decompressed IDX bytes.
    pub raw_sha256: &'static str,
    /// Number of samples the file holds.
    pub count: usize,
    /// sha256 of known re-compressions of the same contents (Debian's package, `gzip -9n`
    /// copies), each accepted by `verify` as a faithful wrapper.
    pub repacked_gz_sha256: &'static [&'static str],
}

impl FileSpec {
    const fn repacked(mut self, sha256: &'static [&'static str]) -> Self {
        self.repacked_gz_sha256 = sha256;
        self
    }

    /// The size of its decompressed IDX bytes for images of `shape`: a 16-byte header and
    /// the pixels, or an 8-byte header and the labels. Readers stop there (a gzip bomb).
    pub fn idx_size(&self, shape: [usize; 2]) -> u64 {
        match self.kind {
            FileKind::Images => 16 + (self.count * shape[0] * shape[1]) as u64,
            FileKind::Labels => 8 + self.count as u64,
        }
    }

    /// The name without `.gz`, under which an uncompressed copy is also accepted.
    pub fn raw_name(&self) -> &'static str {
        self.file_name.strip_suffix(".gz").unwrap_or(self.file_name)
    }
}

/// A dataset: its files, where to download them and what its classes are called.
#[derive(Debug, Clone, Copy)]
pub struct DatasetSpec {
    /// Registry name (`mnist`), also the folder name under a data directory.
    pub name: &'static str,
    /// One line for humans.
    pub description: &'static str,
    /// Base URLs tried in order by `fetch`; each is joined with a file name. Empty for a
    /// dataset bundled in the repository.
    pub mirrors: &'static [&'static str],
    /// Train images, train labels, test images, test labels.
    pub files: [FileSpec; 4],
    /// Class names, indexed by label.
    pub classes: &'static [&'static str],
    /// Image height and width.
    pub image_shape: [usize; 2],
    /// Where the data comes from and under which license.
    pub source: &'static str,
}

impl DatasetSpec {
    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.classes.len()
    }

    /// The image and label files of a split.
    pub fn split_files(&self, split: Split) -> (&FileSpec, &FileSpec) {
        let find = |kind| {
            self.files
                .iter()
                .find(|f| f.split == split && f.kind == kind)
                .expect("every registry entry has images and labels for both splits")
        };
        (find(FileKind::Images), find(FileKind::Labels))
    }
}

const DIGITS: &[&str] = &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const FASHION: &[&str] = &[
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

const fn file(
    file_name: &'static str,
    split: Split,
    kind: FileKind,
    count: usize,
    gz_sha256: &'static str,
    raw_sha256: &'static str,
) -> FileSpec {
    FileSpec {
        file_name,
        split,
        kind,
        gz_sha256,
        raw_sha256,
        count,
        repacked_gz_sha256: &[],
    }
}

use FileKind::{Images, Labels};
use Split::{Test, Train};

/// MNIST (LeCun, Cortes, Burges): 60 000 / 10 000 handwritten digits.
pub const MNIST: DatasetSpec = DatasetSpec {
    name: "mnist",
    description: "MNIST handwritten digits, 60000 train / 10000 test, 28x28",
    mirrors: &[
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    files: [
        file(
            "train-images-idx3-ubyte.gz",
            Train,
            Images,
            60_000,
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        )
        .repacked(&[
            // the same contents re-gzipped with `gzip -9n`, as in the team's shared copy
            "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
        ]),
        file(
            "train-labels-idx1-ubyte.gz",
            Train,
            Labels,
            60_000,
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        )
        .repacked(&[
            // the same contents re-gzipped with `gzip -9n`, as in the team's shared copy
            "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",
        ]),
        file(
            "t10k-images-idx3-ubyte.gz",
            Test,
            Images,
            10_000,
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        )
        .repacked(&[
            // the same contents re-gzipped with `gzip -9n`, as in the team's shared copy
            "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",
        ]),
        file(
            "t10k-labels-idx1-ubyte.gz",
            Test,
            Labels,
            10_000,
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        )
        .repacked(&[
            // the same contents re-gzipped with `gzip -9n`, as in the team's shared copy
            "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",
        ]),
    ],
    classes: DIGITS,
    image_shape: [28, 28],
    source: "Y. LeCun, C. Cortes, C. J. C. Burges, The MNIST database of handwritten digits",
};

/// Fashion-MNIST (Xiao, Rasul, Vollgraf 2017): 60 000 / 10 000 Zalando article images.
pub const FASHION_MNIST: DatasetSpec = DatasetSpec {
    name: "fashion-mnist",
    description: "Fashion-MNIST Zalando articles, 60000 train / 10000 test, 28x28",
    mirrors: &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
    files: [
        file(
            "train-images-idx3-ubyte.gz",
            Train,
            Images,
            60_000,
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        )
        .repacked(&[
            // Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1 (gzip header rewritten)
            "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        ]),
        file(
            "train-labels-idx1-ubyte.gz",
            Train,
            Labels,
            60_000,
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        )
        .repacked(&[
            // Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1 (gzip header rewritten)
            "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        ]),
        file(
            "t10k-images-idx3-ubyte.gz",
            Test,
            Images,
            10_000,
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        )
        .repacked(&[
            // Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1 (gzip header rewritten)
            "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        ]),
        file(
            "t10k-labels-idx1-ubyte.gz",
            Test,
            Labels,
            10_000,
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        )
        .repacked(&[
            // Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1 (gzip header rewritten)
            "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
        ]),
    ],
    classes: FASHION,
    image_shape: [28, 28],
    source: "H. Xiao, K. Rasul, R. Vollgraf, Fashion-MNIST (2017); MIT license, Copyright 2017 Zalando SE",
};

/// The first 2000 training and 1000 test images of MNIST, bundled in `datasets/mnist-small`.
pub const MNIST_SMALL: DatasetSpec = DatasetSpec {
    name: "mnist-small",
    description: "first 2000 train / 1000 test images of MNIST, bundled with noisescope",
    mirrors: &[],
    files: [
        file(
            "train-images-idx3-ubyte.gz",
            Train,
            Images,
            2000,
            "750662c1088380a463030e0667f3f588c04b64ce0b94db052d91efbf11281c49",
            "729d340c0177402770b27c04f817dfb40ed8844459b35a9f11ae21067b05cf19",
        ),
        file(
            "train-labels-idx1-ubyte.gz",
            Train,
            Labels,
            2000,
            "7f4b553342b6b128aa996290b81805c7b344e662af569cd8aeaded8e599a38c8",
            "90795ea2219655a7281c0d6756d0ae8a33bebac7ec84bac89bbdcc5e3baa9f8c",
        ),
        file(
            "t10k-images-idx3-ubyte.gz",
            Test,
            Images,
            1000,
            "1107a88c1dcf1bde0925f29c9f47e943757cc4c8190862d72943ef6e4a638a2c",
            "de7c252b04f05e1f8309634180ccdf286dc6dbac8c579b74e76e02ae0331ca52",
        ),
        file(
            "t10k-labels-idx1-ubyte.gz",
            Test,
            Labels,
            1000,
            "59f1210430c03405bf13b88e2855be7b6adbf45b16966f8f6bf11013873bf815",
            "832c0d20f0dc42e575488c75a83a970787d4c8d4d05831b2ef03701b4a478a90",
        ),
    ],
    classes: DIGITS,
    image_shape: [28, 28],
    source: "subset of MNIST (LeCun, Cortes, Burges), made by scripts/make-small-datasets.py",
};

/// The first 2000 training and 1000 test images of Fashion-MNIST, bundled in
/// `datasets/fashion-mnist-small`: the built-in default dataset.
pub const FASHION_MNIST_SMALL: DatasetSpec = DatasetSpec {
    name: "fashion-mnist-small",
    description: "first 2000 train / 1000 test images of Fashion-MNIST, bundled with noisescope",
    mirrors: &[],
    files: [
        file(
            "train-images-idx3-ubyte.gz",
            Train,
            Images,
            2000,
            "f22187ccdaf60ba8ba633c688ffdb32f5d0268e239d82877be5684d1661de7f9",
            "71a9f8cec24060d6752b3e4940ce6d6fd729334afa47b735dd553481aa83b53e",
        ),
        file(
            "train-labels-idx1-ubyte.gz",
            Train,
            Labels,
            2000,
            "eebe183fe476d171b9496a702183a5bac1aa920264ba962d5208ac2c6487ee0f",
            "8983259dfbc9f185f92698916f7daf361704b43ba7d19568cc7bcdeefdc1bece",
        ),
        file(
            "t10k-images-idx3-ubyte.gz",
            Test,
            Images,
            1000,
            "54d129cc094c51d0496db5197d51ebc9ecc94cc743220d1d4077c752869991ca",
            "7a6d8e07ea021ec5bc73135ebd0a5770799557ec6f8242d8749c4f32a3cf4643",
        ),
        file(
            "t10k-labels-idx1-ubyte.gz",
            Test,
            Labels,
            1000,
            "dbcee292a255fe70d571317bf37c89b845f3177427c61a23f68e4230b262a846",
            "b40abac7ec8228f434940f579deb7cf7b6e3103b5274cb91d1545771f5ef1c8b",
        ),
    ],
    classes: FASHION,
    image_shape: [28, 28],
    source: "subset of Fashion-MNIST (Xiao, Rasul, Vollgraf 2017; MIT, Copyright 2017 Zalando SE), made by scripts/make-small-datasets.py",
};

/// Every dataset the registry knows, full ones first.
pub const ALL: &[DatasetSpec] = &[MNIST, FASHION_MNIST, MNIST_SMALL, FASHION_MNIST_SMALL];

/// Looks a dataset up by name.
///
/// # Errors
/// [`DataError::UnknownDataset`], listing the known names.
pub fn lookup(name: &str) -> Result<&'static DatasetSpec> {
    ALL.iter()
        .find(|d| d.name == name)
        .ok_or_else(|| DataError::UnknownDataset {
            name: name.to_string(),
            known: ALL.iter().map(|d| d.name).collect(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_known_and_unknown() {
        assert_eq!(lookup("fashion-mnist").unwrap().n_classes(), 10);
        let err = lookup("cifar10").unwrap_err();
        assert!(err.to_string().contains("mnist, fashion-mnist"), "{err}");
    }

    #[test]
    fn checksums_are_sha256_hex() {
        for d in ALL {
            for f in &d.files {
                for s in [f.gz_sha256, f.raw_sha256] {
                    assert_eq!(s.len(), 64, "{} {}", d.name, f.file_name);
                    assert!(
                        s.bytes()
                            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                    );
                }
            }
            let (i, l) = d.split_files(Split::Test);
            assert_eq!((i.kind, l.kind), (FileKind::Images, FileKind::Labels));
        }
    }
}
