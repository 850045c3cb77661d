"""Peak memory of chunked prediction: a uint16 zarr volume far larger than the chunks.

Run: ``python benchmarks/bench_memory.py [--sizes-gb 0.125,0.5,1] [--dir /tmp/aa_bench]``
(the issue's target is ``--sizes-gb 4``: under 2 GB peak RSS).

For each size a ``(Z, 2048, 2048)`` uint16 zarr (chunks ``1x1024x1024``) is made
on disk from the bundled nuclei image tiled 4x4, shifted per plane, plus
Gaussian noise. A classifier (default 2-D features, 30 trees) trained on the
bundled starter labels predicts it plane by plane with
``active_annotator.scale.predict_file`` (dask threaded scheduler, all cores)
into an output zarr, in a fresh subprocess whose peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is reported.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

EDGE = 2048


def make_volume(path: Path, n_planes: int) -> None:
    import zarr

    from active_annotator.data import nuclei2d

    if path.exists():
        z = zarr.open_array(str(path), mode="r")
        if z.shape == (n_planes, EDGE, EDGE):
            return
        shutil.rmtree(path)
    base = np.tile(nuclei2d()["image"].astype(np.float32), (4, 4))
    z = zarr.create_array(str(path), shape=(n_planes, EDGE, EDGE), chunks=(1, 1024, 1024),
                          dtype=np.uint16)
    rng = np.random.default_rng(0)
    for k in range(n_planes):
        plane = np.roll(base, (37 * k, 53 * k), axis=(0, 1))
        plane += rng.normal(0, 0.05 * base.std(), plane.shape).astype(np.float32)
        z[k] = np.clip(plane, 0, 65535).astype(np.uint16)


CHILD = """
import json, resource, sys, time
from active_annotator.scale import predict_file
t = time.perf_counter()
predict_file(sys.argv[1], sys.argv[2], sys.argv[3])
wall = time.perf_counter() - t
print(json.dumps({"wall": wall, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes-gb", default="0.125,0.5,1")
    p.add_argument("--dir", type=Path, default=Path("/tmp/aa_bench"))
    p.add_argument("--trees", type=int, default=30)
    p.add_argument("--keep", action="store_true", help="keep the volumes on disk")
    a = p.parse_args(argv)

    from active_annotator.classifier import PixelClassifier
    from active_annotator.data import nuclei2d

    a.dir.mkdir(parents=True, exist_ok=True)
    d = nuclei2d()
    model = a.dir / "model.aamodel"
    PixelClassifier(n_estimators=a.trees).fit(d["image"], d["labels"]).save(model)
    rows = []
    for gb in (float(s) for s in a.sizes_gb.split(",")):
        n_planes = max(1, int(round(gb * 2**30 / (EDGE * EDGE * 2))))
        vol = a.dir / f"volume_{n_planes}.zarr"
        t = time.perf_counter()
        make_volume(vol, n_planes)
        t_make = time.perf_counter() - t
        out = a.dir / "prediction.zarr"
        r = subprocess.run([sys.executable, "-c", CHILD, str(model), str(vol), str(out)],
                           capture_output=True, text=True)
        if r.returncode:
            print(r.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"prediction of {vol} failed")
        res = json.loads(r.stdout.strip().splitlines()[-1])
        n_px = n_planes * EDGE * EDGE
        rows.append((n_planes * EDGE * EDGE * 2 / 2**30, n_planes, res["wall"], n_px / res["wall"] / 1e6,
                     res["maxrss_mb"], t_make))
        shutil.rmtree(out, ignore_errors=True)
        if not a.keep:
            shutil.rmtree(vol, ignore_errors=True)
        print(f"done {gb} GB: {res}", file=sys.stderr, flush=True)
    print(f"\nuint16 volumes (Z, {EDGE}, {EDGE}), chunks 1x1024x1024, 2-D default features "
          f"(halo 32), {a.trees} trees")
    print("| volume (GiB) | planes | predict wall (s) | Mpx/s | peak RSS (MiB) | make volume (s) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for gib, z, wall, rate, rss, t_make in rows:
        print(f"| {gib:.3f} | {z} | {wall:.1f} | {rate:.2f} | {rss:.0f} | {t_make:.1f} |")
    return rows


if __name__ == "__main__":
    main()
