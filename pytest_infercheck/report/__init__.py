"""Reports of a run's results: the terminal table, JSON (and, with the CI gate, Markdown and HTML)."""
