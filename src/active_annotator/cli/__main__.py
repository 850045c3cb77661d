"""``python -m active_annotator.cli``: the same as the ``active-annotator`` command."""

import sys

from . import main

sys.exit(main())
