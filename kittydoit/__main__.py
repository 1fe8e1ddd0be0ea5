"""``python -m kittydoit`` is the ``kittydoit`` command."""

import sys

from kittydoit.cli import main

sys.exit(main())
