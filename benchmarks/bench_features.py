"""Feature engine throughput: ours vs scikit-image, fastfilters2 and a plain scipy stack.

Run: ``python benchmarks/bench_features.py [--repeat 3] [--threads N]``

Same data, same run, best of ``--repeat`` wall and CPU times per engine (the
dev machine is shared, so the minimum is the least disturbed number). Data: a real
photograph (skimage.data.camera(), 512x512) tiled to 2048x2048 float32 for 2-D;
the bundled nuclei volume tiled to 128x128x128 for 3-D.

Per-feature throughput = features / time; the ratio column is ours (all
threads) / this row. fastfilters2 2.0.0.dev0 (PyPI wheel) is 2-D only and runs
on one thread; scikit-image and the scipy stack get ``workers``/threads.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from scipy import ndimage as ndi


def _image_2d() -> np.ndarray:
    from skimage.data import camera

    return np.tile(camera().astype(np.float32), (4, 4))


def _volume_3d(edge: int = 128) -> np.ndarray:
    from active_annotator.data import nuclei3d

    v = nuclei3d()["image"].astype(np.float32)
    reps = [-(-edge // n) for n in v.shape]
    return np.ascontiguousarray(np.tile(v, reps)[:edge, :edge, :edge])


def scipy_stack(x: np.ndarray, sigmas, threads: int) -> np.ndarray:
    """The straightforward stack: one scipy.ndimage call per output, threads over sigmas."""
    from concurrent.futures import ThreadPoolExecutor

    nd = x.ndim

    def per_sigma(s):
        outs = [ndi.gaussian_filter(x, s, output=np.float32),
                ndi.gaussian_laplace(x, s, output=np.float32)]
        h = {}
        for i in range(nd):
            for j in range(i, nd):
                o = [0] * nd
                o[i] += 1
                o[j] += 1
                h[i, j] = ndi.gaussian_filter(x, s, order=o, output=np.float32)
        if nd == 2:
            a, b, c = h[0, 0], h[0, 1], h[1, 1]
            rad = np.hypot((a - c) / 2, b)
            outs += [(a + c) / 2 + rad, (a + c) / 2 - rad]
        else:
            m = np.stack([np.stack([h[min(i, j), max(i, j)] for j in range(3)], -1)
                          for i in range(3)], -2)
            w = np.linalg.eigvalsh(m)
            outs += [w[..., k] for k in (2, 1, 0)]
        return outs

    with ThreadPoolExecutor(threads) as pool:
        per = list(pool.map(per_sigma, sigmas))
    g = [p[0] for p in per]
    dog = [g[i] - g[i + 1] for i in range(len(g) - 1)]
    return np.stack([x] + g + dog + [p[1] for p in per] + [q for p in per for q in p[2:]])


def best_time(fn, repeat: int):
    """Best wall time and best CPU time (all threads of this process) over ``repeat`` runs.

    CPU time is the fairer number on a shared machine: it does not count time
    the OS gave to other processes; features per CPU-second x cores is the
    throughput of a fully busy machine.
    """
    out = fn()  # warm-up (numba compilation, caches)
    del out
    walls, cpus = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        del out
    return min(walls), min(cpus)


def count(a) -> int:
    return a.shape[0] if a.ndim and a.shape[0] < 200 else a.shape[-1]


def run(name: str, x: np.ndarray, repeat: int, threads: int):
    from active_annotator.features import FeatureSet, compute

    sigmas = (1.0, 2.0, 4.0, 8.0)
    engines = {"active_annotator": lambda: compute(x, FeatureSet(sigmas=sigmas, ndim=x.ndim),
                                                   threads=threads)}
    if threads > 1:
        engines["active_annotator, 1 thread"] = lambda: compute(
            x, FeatureSet(sigmas=sigmas, ndim=x.ndim), threads=1)
    try:
        from skimage.feature import multiscale_basic_features

        engines["skimage multiscale_basic_features"] = lambda: multiscale_basic_features(
            x, sigma_min=1, sigma_max=8, num_sigma=4, workers=threads)
    except ImportError:
        print("scikit-image not installed: skipped")
    if x.ndim == 2:
        try:
            import fastfilters2

            engines["fastfilters2"] = lambda: np.concatenate(
                [fastfilters2.compute_filters(x, s) for s in sigmas])
        except ImportError:
            print("fastfilters2 not installed (pip install fastfilters2): skipped")
    engines["scipy.ndimage stack"] = lambda: scipy_stack(x, sigmas, threads)

    rows = []
    for label, fn in engines.items():
        sample = fn()
        n_feat = sample.shape[0] if label != "skimage multiscale_basic_features" else sample.shape[-1]
        del sample
        wall, cpu = best_time(fn, repeat)
        rows.append((label, wall, cpu, n_feat))
    ours_wall = rows[0][3] / rows[0][1]
    ours_cpu = rows[0][3] / rows[0][2]
    print(f"\n{name}: shape {x.shape} float32, sigmas {sigmas}, {threads} threads, best of {repeat}")
    print("| engine | wall (s) | CPU (s) | features | features/s (wall) | features/CPU-s "
          "| ours/this (wall) | ours/this (CPU) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, wall, cpu, n in rows:
        print(f"| {label} | {wall:.3f} | {cpu:.3f} | {n} | {n / wall:.1f} | {n / cpu:.1f} "
              f"| {ours_wall / (n / wall):.2f}x | {ours_cpu / (n / cpu):.2f}x |")
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--only", choices=["2d", "3d"])
    a = p.parse_args(argv)
    if a.only != "3d":
        run("2-D", _image_2d(), a.repeat, a.threads)
    if a.only != "2d":
        run("3-D", _volume_3d(), a.repeat, a.threads)


if __name__ == "__main__":
    main()
