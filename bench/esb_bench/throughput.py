"""The machine's speed at the layer work itself: tar, ISA-L gzip and sha256, in one process.

Usage: ./pants run bench/esb_bench/throughput.py -- --out RESULT.json BLOB...

For each gzipped layer BLOB (the unique layers of a cold build's images), with the data already in
memory, it times:
- `write_layer`: the image tool's own tar writer, compressor and digests (what each layer process
  does after reading its inputs), on the layer's members;
- raw: ISA-L level 1 compression and sha256 of the uncompressed and compressed streams, on the
  layer's tar bytes, without building a tar: the floor under any tool that makes the same blobs.
It writes the totals as JSON for bench/run.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import tempfile
import time
from pathlib import Path

from isal import isal_zlib

from imagetool.tarlayer import COMPRESSION_LEVEL, read_layer_members, write_layer

CHUNK = 1 << 20


def raw_seconds(tar: bytes) -> float:
    start = time.perf_counter()
    compressor = isal_zlib.compressobj(COMPRESSION_LEVEL, isal_zlib.DEFLATED, -isal_zlib.MAX_WBITS)
    tar_digest, blob_digest = hashlib.sha256(), hashlib.sha256()
    view = memoryview(tar)
    for offset in range(0, len(view), CHUNK):
        chunk = view[offset : offset + CHUNK]
        tar_digest.update(chunk)
        blob_digest.update(compressor.compress(chunk))
    blob_digest.update(compressor.flush())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("blobs", nargs="+", type=Path)
    args = parser.parse_args()
    totals = {
        "layers": 0,
        "tar_bytes": 0,
        "blob_bytes": 0,
        "write_layer_seconds": 0.0,
        "raw_seconds": 0.0,
    }
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "layer.tar.gz"
        for blob in args.blobs:
            tar = gzip.decompress(blob.read_bytes())
            with read_layer_members(blob) as stream:
                members = list(stream)
            start = time.perf_counter()
            write_layer(members, out, mtime=0)
            totals["write_layer_seconds"] += time.perf_counter() - start
            totals["raw_seconds"] += raw_seconds(tar)
            totals["layers"] += 1
            totals["tar_bytes"] += len(tar)
            totals["blob_bytes"] += blob.stat().st_size
    args.out.write_text(json.dumps(totals, indent=2) + "\n")


if __name__ == "__main__":
    main()
