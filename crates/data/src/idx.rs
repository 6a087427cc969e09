//! IDX files (LeCun's MNIST format) of unsigned bytes, raw or gzip-compressed.
//!
//! Layout: a big-endian magic `0x00 0x00 0x08 r` (element type 0x08 = u8, r dimensions), then r
//! big-endian u32 sizes, then `∏ sizes` bytes in row-major order. A file is read as gzip when it
//! starts with the gzip magic `1f 8b` or its name ends in `.gz`.

use std::io::{Read, Write};
use std::path::Path;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::error::{DataError, Result};

/// IDX element type code of unsigned bytes, the only one MNIST-like data uses.
const IDX_U8: u8 = 0x08;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// An r-dimensional array of bytes as stored in an IDX file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Sizes, outermost first: `[n, rows, cols]` for images, `[n]` for labels.
    pub dims: Vec<usize>,
    /// `∏ dims` bytes, row-major.
    pub data: Vec<u8>,
}

/// Reads a file's bytes, decompressing gzip (by magic or by a `.gz` name).
///
/// A `.gz` file that does not start with the gzip magic, a corrupt deflate stream, a CRC or
/// length mismatch in the trailer, and a truncated stream are all [`DataError::Gzip`].
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_maybe_gz(path, raw)
}

/// As [`read_maybe_gz`], refusing a file whose contents (decompressed) exceed `limit` bytes
/// without reading past it: a small gzip that inflates to gigabytes stops at the limit.
pub fn read_maybe_gz_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_limited(path, raw, limit)
}

/// As [`read_maybe_gz`], on bytes already read from `path`.
pub fn decode_maybe_gz(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>> {
    decode_limited(path, raw, u64::MAX)
}

/// As [`decode_maybe_gz`], refusing contents of more than `limit` bytes without inflating
/// past them.
pub fn decode_limited(path: &Path, raw: Vec<u8>, limit: u64) -> Result<Vec<u8>> {
    let named_gz = path.extension().is_some_and(|e| e == "gz");
    let too_long = || DataError::Gzip {
        path: path.to_path_buf(),
        detail: format!("its contents exceed the {limit} bytes expected"),
    };
    if raw.starts_with(&GZIP_MAGIC) {
        let cap = (raw.len() as u64)
            .saturating_mul(4)
            .min(limit.saturating_add(1));
        let mut out = Vec::with_capacity(cap as usize);
        GzDecoder::new(raw.as_slice())
            .take(limit.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| DataError::Gzip {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
        if out.len() as u64 > limit {
            return Err(too_long());
        }
        Ok(out)
    } else if named_gz {
        Err(DataError::Gzip {
            path: path.to_path_buf(),
            detail: format!(
                "the name ends in .gz but the file does not start with the gzip magic 1f 8b (found {:02x?})",
                &raw[..raw.len().min(2)]
            ),
        })
    } else if raw.len() as u64 > limit {
        Err(too_long())
    } else {
        Ok(raw)
    }
}

/// Parses IDX bytes; `path` only names the source in errors.
///
/// # Errors
/// [`DataError::BadMagic`] for a wrong magic or element type, [`DataError::Truncated`] when
/// the header or payload is short, [`DataError::TrailingBytes`] when the payload is long.
pub fn parse_idx(path: &Path, bytes: &[u8]) -> Result<IdxArray> {
    if bytes.len() < 4 {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: 4,
            found: bytes.len(),
        });
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let rank = bytes[3] as usize;
    if bytes[0] != 0 || bytes[1] != 0 || bytes[2] != IDX_U8 || rank == 0 {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            found: magic,
        });
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: header,
            found: bytes.len(),
        });
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::BadDims {
            path: path.to_path_buf(),
            detail: format!("sizes {dims:?} overflow"),
        })?;
    let payload = &bytes[header..];
    if payload.len() < expected {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected,
            found: payload.len(),
        });
    }
    if payload.len() > expected {
        return Err(DataError::TrailingBytes {
            path: path.to_path_buf(),
            expected,
            extra: payload.len() - expected,
        });
    }
    Ok(IdxArray {
        dims,
        data: payload.to_vec(),
    })
}

/// Reads and parses an IDX file, raw or gzip.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bytes = read_maybe_gz(path)?;
    parse_idx(path, &bytes)
}

/// Serializes an array to IDX bytes (uncompressed).
pub fn encode_idx(array: &IdxArray) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * array.dims.len() + array.data.len());
    out.extend_from_slice(&[0, 0, IDX_U8, array.dims.len() as u8]);
    for &d in &array.dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(&array.data);
    out
}

/// Writes an IDX file, gzip-compressed (level 9, no name or time in the header, so the bytes
/// are reproducible) when `gzip` is set.
///
/// # Panics
/// When `∏ dims ≠ data.len()`: a bug in the caller, not something a user can cause.
pub fn write_idx(path: &Path, array: &IdxArray, gzip: bool) -> Result<()> {
    assert_eq!(
        array.dims.iter().product::<usize>(),
        array.data.len(),
        "IdxArray dims disagree with its data"
    );
    let raw = encode_idx(array);
    let bytes = if gzip {
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        enc.write_all(&raw).map_err(|e| DataError::io(path, e))?;
        enc.finish().map_err(|e| DataError::io(path, e))?
    } else {
        raw
    };
    std::fs::write(path, bytes).map_err(|e| DataError::io(path, e))
}

/// Images of one split: `n` images of `rows × cols` bytes, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub n: usize,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// `n · rows · cols` pixels in 0..=255.
    pub pixels: Vec<u8>,
}

/// Reads an image file: an IDX array of rank 3.
pub fn read_images(path: &Path) -> Result<IdxImages> {
    let a = read_idx(path)?;
    images_from_idx(path, a)
}

pub(crate) fn images_from_idx(path: &Path, a: IdxArray) -> Result<IdxImages> {
    match a.dims[..] {
        [n, rows, cols] => Ok(IdxImages {
            n,
            rows,
            cols,
            pixels: a.data,
        }),
        _ => Err(DataError::BadDims {
            path: path.to_path_buf(),
            detail: format!(
                "an image file has 3 dimensions [n, rows, cols], found {:?}",
                a.dims
            ),
        }),
    }
}

/// Reads a label file: an IDX array of rank 1 whose entries are all below `classes`.
pub fn read_labels(path: &Path, classes: usize) -> Result<Vec<u8>> {
    let a = read_idx(path)?;
    labels_from_idx(path, a, classes)
}

pub(crate) fn labels_from_idx(path: &Path, a: IdxArray, classes: usize) -> Result<Vec<u8>> {
    if a.dims.len() != 1 {
        return Err(DataError::BadDims {
            path: path.to_path_buf(),
            detail: format!("a label file has 1 dimension [n], found {:?}", a.dims),
        });
    }
    if let Some((index, &label)) = a
        .data
        .iter()
        .enumerate()
        .find(|(_, l)| **l as usize >= classes)
    {
        return Err(DataError::LabelOutOfRange {
            path: path.to_path_buf(),
            index,
            label,
            classes,
        });
    }
    Ok(a.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images() -> IdxArray {
        IdxArray {
            dims: vec![3, 2, 2],
            data: (0..12).collect(),
        }
    }

    #[test]
    fn roundtrip_raw_and_gzip() {
        let dir = tempfile::tempdir().unwrap();
        for (name, gz) in [("a-idx3-ubyte", false), ("a-idx3-ubyte.gz", true)] {
            let p = dir.path().join(name);
            write_idx(&p, &images(), gz).unwrap();
            assert_eq!(read_idx(&p).unwrap(), images());
            let imgs = read_images(&p).unwrap();
            assert_eq!((imgs.n, imgs.rows, imgs.cols), (3, 2, 2));
        }
        // A gzip file without the .gz name is still recognised by its magic.
        let p = dir.path().join("b");
        write_idx(&p, &images(), true).unwrap();
        assert_eq!(read_idx(&p).unwrap(), images());
    }

    #[test]
    fn bad_magic_is_named() {
        let mut bytes = encode_idx(&images());
        bytes[2] = 0x0D; // float element type
        let err = parse_idx(Path::new("x.idx"), &bytes).unwrap_err();
        assert!(
            matches!(err, DataError::BadMagic { found: 0x0D03, .. }),
            "{err}"
        );
        assert!(err.to_string().starts_with("x.idx: bad IDX magic"));
        let err = parse_idx(Path::new("y"), b"PK\x03\x04rest").unwrap_err();
        assert!(matches!(err, DataError::BadMagic { .. }));
    }

    #[test]
    fn truncated_header_and_payload() {
        let bytes = encode_idx(&images());
        for cut in [2, 9, bytes.len() - 1] {
            let err = parse_idx(Path::new("t"), &bytes[..cut]).unwrap_err();
            assert!(
                matches!(err, DataError::Truncated { .. }),
                "cut {cut}: {err}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        let err = parse_idx(Path::new("t"), &long).unwrap_err();
        assert!(
            matches!(err, DataError::TrailingBytes { extra: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn wrong_dimensions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels-as-images");
        write_idx(
            &p,
            &IdxArray {
                dims: vec![4],
                data: vec![0; 4],
            },
            false,
        )
        .unwrap();
        assert!(matches!(read_images(&p), Err(DataError::BadDims { .. })));
        let q = dir.path().join("images-as-labels");
        write_idx(&q, &images(), false).unwrap();
        let err = read_labels(&q, 10).unwrap_err();
        assert!(matches!(err, DataError::BadDims { .. }));
        assert!(err.to_string().contains("images-as-labels"));
    }

    #[test]
    fn label_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels");
        write_idx(
            &p,
            &IdxArray {
                dims: vec![4],
                data: vec![1, 9, 10, 3],
            },
            false,
        )
        .unwrap();
        let err = read_labels(&p, 10).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::LabelOutOfRange {
                    index: 2,
                    label: 10,
                    classes: 10,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(read_labels(&p, 11).unwrap(), vec![1, 9, 10, 3]);
    }

    #[test]
    fn bad_gzip() {
        let dir = tempfile::tempdir().unwrap();
        // A .gz name over raw bytes.
        let p = dir.path().join("raw.gz");
        write_idx(&p, &images(), false).unwrap();
        let err = read_idx(&p).unwrap_err();
        assert!(matches!(err, DataError::Gzip { .. }), "{err}");
        // A flipped payload byte: the CRC in the trailer no longer matches.
        let q = dir.path().join("flip.gz");
        write_idx(&q, &images(), true).unwrap();
        let mut bytes = std::fs::read(&q).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        std::fs::write(&q, &bytes).unwrap();
        let err = read_idx(&q).unwrap_err();
        assert!(
            matches!(err, DataError::Gzip { .. } | DataError::Truncated { .. }),
            "{err}"
        );
        // A stream cut short.
        let r = dir.path().join("cut.gz");
        write_idx(&r, &images(), true).unwrap();
        let bytes = std::fs::read(&r).unwrap();
        std::fs::write(&r, &bytes[..bytes.len() - 6]).unwrap();
        let err = read_idx(&r).unwrap_err();
        assert!(matches!(err, DataError::Gzip { .. }), "{err}");
        assert!(err.to_string().contains("cut.gz"));
    }

    #[test]
    fn missing_file_names_path() {
        let err = read_idx(Path::new("/nonexistent/dir/file.gz")).unwrap_err();
        assert!(matches!(err, DataError::Io { .. }));
        assert!(err.to_string().contains("/nonexistent/dir/file.gz"));
    }

    proptest::proptest! {
        /// Arbitrary bytes, raw or behind a gzip header, give an IDX array or a named error,
        /// never a panic; so do IDX headers with arbitrary dimensions (a header that claims
        /// more than the file holds is caught before any allocation).
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            dims in proptest::collection::vec(0u32..u32::MAX, 0..4),
            kind in 0u8..16,
            gz in proptest::bool::ANY,
        ) {
            let p = Path::new("fuzz.idx");
            let _ = parse_idx(p, &bytes);
            let mut header = vec![0, 0, kind, dims.len() as u8];
            for d in &dims {
                header.extend(d.to_be_bytes());
            }
            header.extend(&bytes);
            if let Ok(a) = parse_idx(p, &header) {
                let _ = images_from_idx(p, a.clone());
                let _ = labels_from_idx(p, a, 10);
            }
            let mut wrapped = GZIP_MAGIC.to_vec();
            wrapped.extend(&bytes);
            let _ = decode_maybe_gz(Path::new("fuzz.gz"), if gz { wrapped } else { bytes.clone() });
            let _ = read_maybe_gz_limited(Path::new("/nonexistent/fuzz"), 8);
        }
    }
}
