"""The foundation: files, codecs, locks, the engine spec, the machine's threads and GPUs; small pure helpers
every other layer may use (docs/architecture.md, Layers)."""
