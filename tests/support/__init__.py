"""Shared test material (importable by every test tier)."""
