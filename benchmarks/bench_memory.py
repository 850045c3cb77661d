"""Peak memory of chunked prediction: a uint16 zarr volume far larger than the chunks.

Run: ``python benchmarks/bench_memory.py [--sizes-gb 0.125,0.5,1] [--dir /tmp/aa_bench]``
(the issue's target is ``--sizes-gb 4``: under 2 GB peak RSS, also with autocontext:
``--sizes-gb 4 --strong``).

For each size a ``(Z, 2048, 2048)`` uint16 zarr (chunks ``1x1024x1024``) is made
on disk from the bundled nuclei image tiled 4x4, shifted per plane, plus
Gaussian noise. A classifier (default 2-D features, 30 trees) trained on the
bundled starter labels predicts it plane by plane with
``active_annotator.scale.predict_file`` (dask threaded scheduler, all cores
unless ``--threads``) into an output zarr, in a fresh subprocess whose peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is reported.

``--stages N`` trains an autocontext model (N forests chained; its ``halo``, the
context a chunk reads, grows with each stage); ``--strong`` is the configuration
of ``active-annotator train --strong``: ``stages=2, class_weight="auto",
context_sigmas="auto"``. The table states the configuration, the model's halo,
the chunk and the threads; ``--json PATH`` also writes them with the rows.
Nothing is written outside ``--dir`` (a temporary folder) unless asked.
"""

from __future__ import annotations

import argparse
import json
import os
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
import dask
from active_annotator.scale import predict_file
threads = int(sys.argv[4])
chunks = None if sys.argv[5] == "0" else (1, int(sys.argv[5]), int(sys.argv[5]))
t = time.perf_counter()
with dask.config.set(num_workers=threads if threads > 0 else None):
    predict_file(sys.argv[1], sys.argv[2], sys.argv[3], chunks=chunks)
wall = time.perf_counter() - t
print(json.dumps({"wall": wall, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _chunk_of(model, vol: Path, chunk: int) -> tuple[int, ...]:
    """The chunk ``predict_file`` computes in (before its halo), without computing anything."""
    import dask.array as da
    import zarr

    from active_annotator.scale import predict_dask

    image = da.from_zarr(zarr.open_array(str(vol), mode="r"))
    return predict_dask(model, image, chunks=None if chunk == 0 else (1, chunk, chunk)).chunksize


def _loadavg() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes-gb", default="0.125,0.5,1")
    p.add_argument("--dir", type=Path, default=Path("/tmp/aa_bench"))
    p.add_argument("--trees", type=int, default=30)
    p.add_argument("--stages", type=int, default=1, help="autocontext stages (default 1)")
    p.add_argument("--strong", action="store_true",
                   help='as `train --strong`: stages=2 (at least), class_weight="auto", '
                        'context_sigmas="auto"')
    p.add_argument("--context-sigmas", default=None,
                   help='autocontext smoothing scales, "auto" or e.g. 1,2,4,8,16,32 (a larger halo '
                        'than the starter labels make "auto" choose); default: as --strong / the feature sigmas')
    p.add_argument("--threads", type=int, default=0,
                   help="dask threads for prediction and forest training threads (default 0: all cores)")
    p.add_argument("--chunk", type=int, default=0,
                   help="chunk edge of the computation (default 0: the zarr's 1024)")
    p.add_argument("--json", type=Path, default=None, help="also write configuration and rows here")
    p.add_argument("--keep", action="store_true", help="keep the volumes on disk")
    a = p.parse_args(argv)

    from active_annotator.classifier import PixelClassifier
    from active_annotator.data import nuclei2d

    a.dir.mkdir(parents=True, exist_ok=True)
    d = nuclei2d()
    model = a.dir / "model.aamodel"
    params = {"n_estimators": a.trees, "stages": a.stages}
    if a.strong:
        params.update(stages=max(2, a.stages), class_weight="auto", context_sigmas="auto")
    if a.context_sigmas is not None:
        params["context_sigmas"] = (a.context_sigmas if a.context_sigmas == "auto"
                                    else tuple(float(v) for v in a.context_sigmas.split(",")))
    if a.threads > 0:
        params["n_jobs"] = a.threads
    t = time.perf_counter()
    clf = PixelClassifier(**params).fit(d["image"], d["labels"])
    t_train = time.perf_counter() - t
    clf.save(model)
    config = {
        "strong": a.strong, "stages": clf.n_stages, "trees": a.trees,
        "class_weight": clf.class_weight, "class_weight_": getattr(clf, "class_weight_", None),
        "context_sigmas": clf.context_sigmas,
        "context_sigmas_": list(getattr(clf, "context_sigmas_", None) or []) or None,
        "features": clf.n_features_in_, "feature_halo": clf.feature_set.halo, "halo": clf.halo,
        "threads": a.threads or os.cpu_count(), "train_s": round(t_train, 2),
    }
    print(f"model: {config}", file=sys.stderr, flush=True)
    rows = []
    for gb in (float(s) for s in a.sizes_gb.split(",")):
        n_planes = max(1, round(gb * 2**30 / (EDGE * EDGE * 2)))
        vol = a.dir / f"volume_{n_planes}.zarr"
        t = time.perf_counter()
        make_volume(vol, n_planes)
        t_make = time.perf_counter() - t
        out = a.dir / "prediction.zarr"
        config["chunk"] = list(_chunk_of(str(model), vol, a.chunk))
        env = dict(os.environ)
        if a.threads > 0:
            env.update(OMP_NUM_THREADS=str(a.threads), NUMBA_NUM_THREADS=str(a.threads))
        load0 = _loadavg()
        r = subprocess.run([sys.executable, "-c", CHILD, str(model), str(vol), str(out),
                            str(a.threads), str(a.chunk)], check=False, capture_output=True,
                           text=True, env=env)
        load1 = _loadavg()
        if r.returncode:
            print(r.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"prediction of {vol} failed")
        res = json.loads(r.stdout.strip().splitlines()[-1])
        n_px = n_planes * EDGE * EDGE
        rows.append((n_planes * EDGE * EDGE * 2 / 2**30, n_planes, res["wall"], n_px / res["wall"] / 1e6,
                     res["maxrss_mb"], t_make, load0, load1))
        shutil.rmtree(out, ignore_errors=True)
        if not a.keep:
            shutil.rmtree(vol, ignore_errors=True)
        print(f"done {gb} GB: {res}", file=sys.stderr, flush=True)
    c = config
    what = (f"stages={c['stages']}, class_weight={c['class_weight']!r} (chose {c['class_weight_']!r}), "
            f"context_sigmas={c['context_sigmas']!r} (chose {c['context_sigmas_']})"
            if c["stages"] > 1 else "one stage")
    print(f"\nuint16 volumes (Z, {EDGE}, {EDGE}), zarr chunks 1x1024x1024, computed in chunks "
          f"{'x'.join(map(str, c.get('chunk', [])))}, 2-D default features ({c['features']}, "
          f"feature halo {c['feature_halo']}), {what}, {a.trees} trees, model halo {c['halo']} px, "
          f"{c['threads']} thread(s), training {c['train_s']} s")
    print("| volume (GiB) | planes | predict wall (s) | Mpx/s | peak RSS (MiB) | make volume (s) "
          "| load avg before / after |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for gib, z, wall, rate, rss, t_make, l0, l1 in rows:
        print(f"| {gib:.3f} | {z} | {wall:.1f} | {rate:.2f} | {rss:.0f} | {t_make:.1f} | {l0:.1f} / {l1:.1f} |")
    if a.json is not None:
        keys = ("gib", "planes", "predict_s", "mpx_s", "peak_rss_mib", "make_s", "load_before", "load_after")
        a.json.write_text(json.dumps({"config": config, "rows": [dict(zip(keys, r)) for r in rows]},
                                     indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
