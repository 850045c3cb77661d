"""The core's error messages in the words of the docks' controls.

The core speaks to Python users ("e.g. FeatureSet(sigmas=(1.0,))"); a dock
shows the same message with each piece of Python replaced by the control
that does the same thing. Only the remedy changes, never the diagnosis.
"""

from __future__ import annotations

import re

SCALES = "Scales (sigmas, px)"
FAMILIES = "Features"
CHANNEL_AXIS = "Channel axis"
SPATIAL_DIMS = "Spatial dims"


def _numbers(text: str) -> str:
    """``"1.0, 2.0,"`` -> ``"1, 2"``."""
    return ", ".join(f"{float(v):g}" for v in text.split(",") if v.strip())


_RULES = [
    (re.compile(r"Use sigmas up to (\S+) for an image this small, e\.g\. "
                r"FeatureSet\(sigmas=\(([^)]*)\)\)\."),
     lambda m: f"Type scales up to {m[1]} in '{SCALES}' for an image this small, "
               f"e.g. {_numbers(m[2])}."),
    (re.compile(r"Use a larger image, or FeatureSet\(families=\('original',\)\) without filters\."),
     lambda m: f"Use a larger image, or in '{FAMILIES}' tick only 'Original intensity' (no filters)."),
    (re.compile(r"Use FeatureSet\.default\(ndim=\d\) or check channel_axis\."),
     lambda m: f"Choose '{SPATIAL_DIMS}' to fit the image, or check '{CHANNEL_AXIS}'."),
    (re.compile(r"Give at least one sigma \(scale\), e\.g\. sigmas=\(([^)]*)\)\."),
     lambda m: f"Give at least one sigma (scale) in '{SCALES}', e.g. {_numbers(m[1])}."),
    (re.compile(r", channel_axis=(None|-?\d+)\)"),
     lambda m: ")" if m[1] == "None" else f", channel axis {m[1]})"),
]


def for_gui(message: str) -> str:
    """``message`` with the Python remedies replaced by the docks' controls."""
    for pattern, replace in _RULES:
        message = pattern.sub(replace, message)
    return message


def for_signal_gui(message: str, sampling_rate: float) -> str:
    """``message`` for the Signal dock: scales in seconds in 'Scales (s)', sample counts never "px"."""

    def seconds(m):
        values = [float(v) / sampling_rate for v in m[2].split(",") if v.strip()]
        return (f"Type scales up to {float(m[1]) / sampling_rate:.3g} s in 'Scales (s)' for a record this "
                f"short, e.g. {', '.join(f'{v:.3g}' for v in values)}.")

    message = re.sub(r"Use sigmas up to (\S+) for an image this small, e\.g\. FeatureSet\(sigmas=\(([^)]*)\)\)\.",
                     seconds, message)
    message = for_gui(message).replace(f"'{SCALES}'", "'Scales (s)'")
    return re.sub(r"\bpx\b", "samples", message)
