"""``python -m harness`` is the ``bce-harness`` command."""

import sys

from harness.cli import main

sys.exit(main())
