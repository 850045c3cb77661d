"""napari glue for napari-active-annotator: widgets, readers, writers, sample data.

Compute lives in the Qt-free core (:mod:`active_annotator`); this package only
translates between napari layers and core calls.
"""

__version__ = "0.1.0"
