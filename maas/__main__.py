"""`python -m maas ARGS`: the same as the `maas` command."""

import sys

from maas.tools.cli import main

sys.exit(main())
