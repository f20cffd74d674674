"""``python -m ome_arrow_core.cli``: the same as the ``ome-arrow-core`` command."""

import sys

from . import main

sys.exit(main())
