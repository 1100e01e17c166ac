"""``python -m densflow``: the same as the ``densflow`` command."""

import sys

from .app.cli import main

sys.exit(main())
