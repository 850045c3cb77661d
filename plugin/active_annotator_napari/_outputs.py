"""Between the viewer and the Pixel classifier's session: what is on screen, and the output layers.

* :func:`view_region` and :func:`view_step` read the viewer's public API (dims
  point, camera, canvas size) and hand data coordinates to
  :mod:`active_annotator.view`, which does the geometry;
* :class:`OutputLayers` writes a session's :class:`~active_annotator.session.Stage`
  into the "prediction", per-class "probability" and "uncertainty" layers, a
  visible region in place, and keeps the uncertainty layer's eye and the dock's
  checkbox one switch.
"""

import napari
import numpy as np

from active_annotator.session import Stage
from active_annotator.view import current_plane, preview_step, visible_region

from ._layers import probability_layers, put_probability_layers


def _data_point(layer, world, channel_axis):
    point = np.asarray(layer.world_to_data(world), float)
    return np.delete(point, channel_axis) if channel_axis is not None and not layer.rgb else point


def view_region(viewer, layer, shape, channel_axis, spatial_ndim):
    """Slices over the image's non-channel axes ``(*stack, *spatial)`` of what ``viewer`` shows.

    A 3-D view shows the whole volume, a view of other axes than the spatial ones the
    current plane; so does a view this function does not understand.
    """
    dims = viewer.dims
    try:
        point = _data_point(layer, dims.point, channel_axis)
        if dims.ndisplay != 2:
            return visible_region(shape, spatial_ndim, point, three_d=True)
        displayed = list(dims.displayed)
        if displayed != [dims.ndim - layer.ndim + a for a in range(layer.ndim)][-2:]:
            return visible_region(shape, spatial_ndim, point)
        cam = viewer.scene.camera
        center = np.asarray(cam.center, float)[-2:]
        half = np.asarray(viewer.canvas.size, float)[:2] / (2.0 * cam.zoom)
        corners = []
        for dy in (-1, 1):
            for dx in (-1, 1):
                w = np.asarray(dims.point, float).copy()
                w[displayed[0]], w[displayed[1]] = center[0] + dy * half[0], center[1] + dx * half[1]
                corners.append(_data_point(layer, w, channel_axis))
        return visible_region(shape, spatial_ndim, point, corners)
    except Exception:  # noqa: BLE001 - a view we do not understand: the current plane
        return current_plane(shape, spatial_ndim)


def view_step(viewer, layer) -> int:
    """Image pixels per screen pixel when zoomed out (a power of 2, at most 16; else 1)."""
    if viewer.dims.ndisplay != 2:
        return 1
    try:
        per_screen = 1.0 / (viewer.scene.camera.zoom * min(abs(float(v)) for v in layer.scale[-2:]))
    except (AttributeError, ValueError, ZeroDivisionError):  # no camera we understand: exact
        return 1
    return preview_step(per_screen)


class OutputLayers:
    """The Pixel classifier dock's output layers (names and the probability layers' source given)."""

    def __init__(self, dock, *, prediction, uncertainty, probability, source, uncertainty_check):
        self.dock, self.viewer = dock, dock.viewer
        self.prediction, self.uncertainty, self.probability, self.source = prediction, uncertainty, probability, source
        self.uncertainty_check = uncertainty_check
        self._watched = None
        uncertainty_check.toggled.connect(self._on_check)

    def _layers(self):
        own = self.dock.own_layer
        return (own(self.prediction, napari.layers.Labels), own(self.uncertainty, napari.layers.Image),
                probability_layers(self.viewer, self.source))

    def write(self, stage, classes, scale, translate, annotations=None):
        """Show a whole-image stage; the annotations layer stays on top and selected."""
        keep_active = self.viewer.layers.selection.active
        self.dock.put_layer(self.prediction, "labels", stage.prediction, scale, translate, opacity=0.35)
        names = {} if annotations is None else annotations.metadata.get("class_names", {})
        put_probability_layers(self.viewer, stage.probabilities, classes, prefix=self.probability,
                               source=self.source, scale=scale, translate=translate, class_names=names)
        unc = self.dock.put_layer(self.uncertainty, "image", stage.uncertainty, scale, translate,
                                  colormap="magma", contrast_limits=(0.0, 1.0), blending="additive",
                                  opacity=0.7, visible=self.uncertainty_check.isChecked())
        if unc is not self._watched:
            self._watched = unc
            unc.events.visible.connect(self._on_layer_visible)
        layers = self.viewer.layers
        if annotations is not None:  # keep painting
            layers.move(layers.index(annotations.name), len(layers))
            layers.selection.active = annotations
        elif keep_active is not None:
            layers.selection.active = keep_active

    def write_region(self, part, classes, shape, scale, translate, annotations=None):
        """Write a visible-region stage in place when the layers' shapes fit (the rest keeps the
        previous prediction until the full stage replaces it); else layers of the whole image,
        zero outside the region."""
        pred, unc, prob = self._layers()
        arrays = [pred, unc, *prob.values()] if pred is not None and unc is not None else []
        fits = (arrays and sorted(prob) == classes and pred.data.dtype == part.prediction.dtype
                and all(isinstance(ly.data, np.ndarray) and ly.data.shape == shape for ly in arrays))
        if not fits:
            self.write(Stage(part.region, np.zeros((len(classes),) + shape, np.float32),
                             np.zeros(shape, part.prediction.dtype), np.zeros(shape, np.float32),
                             part.classifier, False, part.seconds), classes, scale, translate, annotations)
            pred, unc, prob = self._layers()
        region = part.region
        pred.data[region] = part.prediction
        for k, c in enumerate(classes):
            prob[c].data[region] = part.probabilities[k]
        unc.data[region] = part.uncertainty
        for layer in (pred, unc, *prob.values()):
            layer.refresh()

    def _on_check(self, checked):
        layer = self._layers()[1]
        if layer is not None and layer.visible != checked:
            layer.visible = checked

    def _on_layer_visible(self, event=None):
        # the layer list's eye and the checkbox are the same switch
        layer = self._layers()[1]
        if layer is not None and layer.visible != self.uncertainty_check.isChecked():
            self.uncertainty_check.setChecked(layer.visible)
