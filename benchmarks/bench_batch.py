"""Batch prediction of a folder: time per image, rerun (skip) time, cancel latency.

    nice -n 5 python benchmarks/bench_batch.py            # 100 images of 256x256
    python benchmarks/bench_batch.py --n 20 --size 128    # smaller

Everything is written to a temporary folder (nothing in the repository); --out
writes the figures as JSON. Cancel latency is measured twice: from the stop
request (made when image n/2 starts) to predict_batch returning, with the
in-memory path (one call per image) and with the dask path (--chunks 64).
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from active_annotator.batch import predict_batch
from active_annotator.classifier import PixelClassifier
from active_annotator.features import FeatureSet


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--trees", type=int, default=50)
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        imgs = d / "images"
        imgs.mkdir()
        for i in range(args.n):
            img = rng.normal(0, 0.3, (args.size, args.size)).astype(np.float32)
            img[: args.size // 2] += 1.5
            tifffile.imwrite(imgs / f"img_{i:03d}.tif", img)
        lab = np.zeros((args.size, args.size), np.uint8)
        lab[5:20] = 2
        lab[-20:-5] = 1
        clf = PixelClassifier(FeatureSet(ndim=2), n_estimators=args.trees).fit(tifffile.imread(imgs / "img_000.tif"), lab)
        model = clf.save(d / "m.aamodel")
        res = {"n_images": args.n, "size": args.size, "trees": args.trees,
               "load_before": os.getloadavg()[0], "cores": os.cpu_count()}
        t = time.perf_counter()
        r = predict_batch(model, imgs, d / "out")
        res["first_run_s"] = time.perf_counter() - t
        res["per_image_s"] = res["first_run_s"] / args.n
        assert r.count("done") == args.n
        t = time.perf_counter()
        r = predict_batch(model, imgs, d / "out")
        res["rerun_s"] = time.perf_counter() - t
        res["rerun_skipped"] = r.count("skipped")
        for label, chunks in (("in_memory", None), ("dask_chunks_64", (64, 64))):
            asked = {}

            def on_file(i, fr, asked=asked):
                if i == args.n // 2 and fr.status == "running":
                    asked["t"] = time.perf_counter()

            r = predict_batch(model, imgs, d / f"cancel_{label}", chunks=chunks, on_file=on_file,
                              should_stop=lambda asked=asked: "t" in asked)
            res[f"cancel_latency_{label}_s"] = time.perf_counter() - asked["t"]
            res[f"cancel_done_before_{label}"] = r.count("done")
        res["load_after"] = os.getloadavg()[0]
    print(json.dumps(res, indent=1))
    if args.out:
        args.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
