"""Worked example of the Explain tools on objects: coins (scikit-image), classes by size.

Run: ``python scripts/explain_objects.py [output_dir]`` (default ``docs/images``).

The image is ``skimage.data.coins()`` (a photograph of Greek coins, public domain,
shipped with scikit-image). Objects: Otsu threshold, holes filled, small specks
removed, connected components. The classes are a rule a numismatist might start
from, not hand labels: class 2 ("large") for coins above the median area, class 1
("small") below it, for half the coins (the others stay unlabelled). The forest
then has to find size in 20-odd shape and intensity measurements, most of which
measure size too: SHAP shows which ones it leaned on, and the correlation groups
show why the credit is spread over them.
"""

import sys
from pathlib import Path

import numpy as np


def main(out=Path(__file__).resolve().parents[1] / "docs" / "images") -> int:
    import skimage.data
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu
    from skimage.morphology import remove_small_objects

    from active_annotator import explain
    from active_annotator.objects import ObjectClassifier, feature_matrix, measure

    image = skimage.data.coins().astype(np.float32) / 255
    mask = ndi.binary_fill_holes(image > threshold_otsu(image))
    mask = remove_small_objects(mask, max_size=150)
    objects, n = ndi.label(mask)
    table = measure(objects, image)
    area = np.asarray(table["area"], float)
    rng = np.random.default_rng(0)
    y = np.where(area > np.median(area), 2, 1)
    y[rng.permutation(len(y))[: len(y) // 2]] = 0  # half the coins unlabelled
    clf = ObjectClassifier(n_estimators=100, random_state=0).fit(table, y)
    x, names = feature_matrix(table, clf.feature_names_in_)
    x = np.where(np.isnan(x), clf.fill_values_, x)[y > 0]
    e = explain.shap_values(clf, x, y=y[y > 0])
    groups = explain.correlated_groups(x, e.feature_names)
    proba = clf.predict_proba({k: np.asarray(v)[y > 0] for k, v in table.items()})
    err = float(np.max(np.abs(e.base_values[None, :] + e.values.sum(axis=1) - proba)))
    print(f"{n} coins, {int((y > 0).sum())} labelled, {len(names)} measurements; additivity error {err:.1e}")
    top = np.argsort(-np.abs(e.values).mean(axis=(0, 2)))[:6]
    for i in top:
        print(f"  {e.feature_names[i]:32s} {np.abs(e.values[:, i]).mean():.4f}")
    print(groups.sentence(e.feature_names))
    out.mkdir(parents=True, exist_ok=True)
    for name, fig in (("explain_objects_shap_bar.png", explain.bar_figure(e, 12)),
                      ("explain_objects_correlation.png", explain.correlation_figure(groups, e.feature_names))):
        fig.savefig(out / name, dpi=100)
        print(f"saved {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*(Path(a) for a in sys.argv[1:])))
