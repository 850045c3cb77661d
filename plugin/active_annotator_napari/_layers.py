"""Layer helpers shared by the docks: per-class probability layers, and how docks find each other."""

# -- per-class probability layers ------------------------------------------------------------
# One hidden 2-D/3-D Image layer per class instead of one (K, *spatial) layer: a class axis
# would add a dims slider to every 2-D image (and one more to every stack). The layers are
# found by their metadata, not their names, so renaming them does not break anything.
PROBABILITY_OF = "probability_of"
FOREST_SOURCE = "pixel classifier"  # metadata "source" of the Pixel classifier's layers
CNN_SOURCE = "cnn"  # ... and of the CNN dock's


def is_probability_layer(layer, source=None) -> bool:
    """True for a per-class probability layer (of ``source``, when given)."""
    md = getattr(layer, "metadata", None) or {}
    return PROBABILITY_OF in md and (source is None or md.get("source") == source)


def probability_layers(viewer, source) -> dict:
    """``{class: layer}`` of the probability layers one widget (``source``) wrote."""
    import napari

    return {int(ly.metadata[PROBABILITY_OF]): ly for ly in viewer.layers
            if isinstance(ly, napari.layers.Image) and is_probability_layer(ly, source)}


def probability_layer_name(prefix, cls, class_names=None) -> str:
    names = class_names or {}
    name = names.get(cls, names.get(str(cls)))
    return f"{prefix} {cls}" + (f" ({name})" if name else "")


def put_probability_layers(viewer, proba, classes, *, prefix, source, scale, translate, class_names=None):
    """Show ``proba`` ``(K, *shape)`` as K hidden layers, updating existing ones in place."""
    existing = probability_layers(viewer, source)
    classes = [int(c) for c in classes]
    for c in set(existing) - set(classes):  # classes the model no longer has
        viewer.layers.remove(existing.pop(c))
    for k, c in enumerate(classes):
        data = proba[k]
        layer = existing.get(c)
        if layer is not None and layer.data.ndim == data.ndim:
            layer.data = data
            layer.scale, layer.translate = scale, translate
            layer.metadata.update({"classes": classes})
            continue
        if layer is not None:
            viewer.layers.remove(layer)
        viewer.add_image(data, name=probability_layer_name(prefix, c, class_names), scale=scale,
                         translate=translate, visible=False, colormap="viridis", contrast_limits=(0.0, 1.0),
                         metadata={PROBABILITY_OF: c, "source": source, "classes": classes})


def read_probabilities(viewer, source):
    """``(proba (K, *shape) float32, classes)`` from one widget's probability layers, or ``(None, None)``."""
    import numpy as np

    layers = probability_layers(viewer, source)
    if not layers:
        return None, None
    classes = sorted(layers)
    shapes = {tuple(layers[c].data.shape) for c in classes}
    if len(shapes) != 1:
        return None, None
    return np.stack([np.asarray(layers[c].data, dtype=np.float32) for c in classes]), classes


# -- the other docks of a viewer ---------------------------------------------------------------
def dock_of(viewer, kind):
    """The first dock of type ``kind`` in ``viewer``'s window (public ``window.dock_widgets``), or None.

    How docks find each other: the CNN dock warm-starts from the Pixel classifier dock's
    session, a project holds the CNN dock's network, the Batch dock uses the current forest.
    """
    try:
        docks = list(viewer.window.dock_widgets.values())
    except (AttributeError, RuntimeError):  # no window (closed)
        return None
    for widget in docks:
        if isinstance(widget, kind):
            return widget
    return None


def cnn_dock_for(viewer):
    """The open CNN fine-tuning dock of ``viewer``, or None."""
    from ._cnn_widget import CNNWidget

    return dock_of(viewer, CNNWidget)


def pixel_dock_for(viewer):
    """The open Pixel classifier dock of ``viewer``, or None."""
    from ._widget import PixelClassifierWidget

    return dock_of(viewer, PixelClassifierWidget)
