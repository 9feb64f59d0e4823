"""`python -m prober` is the `prober` command."""

import sys

from prober.cli import main

sys.exit(main())
