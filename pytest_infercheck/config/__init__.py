"""Settings: the one option table, its parsers, and the typed ``Settings`` built from it
(docs/architecture.md, Layers)."""
