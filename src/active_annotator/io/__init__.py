"""Reading and writing data in other tools' formats (OME-Zarr, QuakeML, ...).

Each format is a submodule, imported on its own so its optional library
(``ome-zarr``, ObsPy) is needed only when that format is used.
"""
