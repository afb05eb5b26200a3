"""Checks and audits: activation sweeps, path similarity, silent units, per-unit audits."""
