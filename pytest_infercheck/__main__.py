"""`python -m pytest_infercheck audit ...` runs the same command line as `infercheck audit ...`."""

import sys

from .cli import main

sys.exit(main())
