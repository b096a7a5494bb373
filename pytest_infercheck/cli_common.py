"""What every ``infercheck`` command shares: the usage error and the exit codes.

Below cli.py (the parser and ``audit``) and cli_saved.py (``gate``, ``baseline update``, ``report``),
so neither imports the other to raise one.
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2  # EXIT_FAILED: cannot run (audit), regressed (gate), failed (check)


class UsageError(Exception):
    """Something the user gave cannot be used; the message says what and the accepted forms."""
