"""``python -m densflow``: the same as the ``densflow`` command."""

import sys

from .cli import main

sys.exit(main())
