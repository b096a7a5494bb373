"""Judgement: what the facts a check recorded mean (verdict.py, the one verdict function)."""
