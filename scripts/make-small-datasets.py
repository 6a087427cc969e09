#!/usr/bin/env python3
"""Builds datasets/mnist-small and datasets/fashion-mnist-small from the full, verified copies.

Each holds the first 2000 training and first 1000 test images (and labels) of its source, as
IDX files gzipped at level 9 with no file name and a zero time stamp, so that the bytes are
reproducible. Prints the sha256 of each .gz and of its raw contents, for the registry
(crates/data/src/registry.rs) and datasets/README.md.

usage: python3 scripts/make-small-datasets.py [SOURCE_ROOT]   (default ../shared/datasets)
"""
import gzip, hashlib, io, os, struct, sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets"
TAKE = {"train": 2000, "t10k": 1000}

for name in ["mnist", "fashion-mnist"]:
    out_dir = os.path.join("datasets", f"{name}-small")
    os.makedirs(out_dir, exist_ok=True)
    for split, n in TAKE.items():
        for kind, rank in [("images-idx3", 3), ("labels-idx1", 1)]:
            fname = f"{split}-{kind}-ubyte.gz"
            raw = gzip.open(os.path.join(ROOT, name, fname)).read()
            dims = struct.unpack(">" + "I" * rank, raw[4 : 4 + 4 * rank])
            per = 1
            for d in dims[1:]:
                per *= d
            head = raw[:4] + struct.pack(">I", n) + raw[8 : 4 + 4 * rank]
            small = head + raw[4 + 4 * rank : 4 + 4 * rank + n * per]
            buf = io.BytesIO()
            with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as g:
                g.write(small)
            gz = buf.getvalue()
            with open(os.path.join(out_dir, fname), "wb") as f:
                f.write(gz)
            print(name, fname, n, hashlib.sha256(gz).hexdigest(), hashlib.sha256(small).hexdigest())
