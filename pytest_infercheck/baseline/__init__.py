"""The CI gate against a stored baseline (docs/gate.md).

- key.py: what an entry is tied to (machine key) and which check it belongs to (identity), spelt once;
- store.py: the file: schema, validation, locked update;
- verdict.py: one check against its entry (the statistics are ../regression.py's);
- summary.py: the records read back for the terminal, JUnit, Markdown and HTML.
"""
