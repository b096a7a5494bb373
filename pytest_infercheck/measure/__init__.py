"""Measurement and the typed facts it produces: timing, statistics, profiles, memory, output comparison,
budgets, the latency comparison's statistics, and the result records (docs/architecture.md, Layers)."""
