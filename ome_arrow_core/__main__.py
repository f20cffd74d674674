"""``python -m ome_arrow_core``: the same as the ``ome-arrow-core`` command."""

import sys

from .cli import main

sys.exit(main())
