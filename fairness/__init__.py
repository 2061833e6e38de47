"""Fairness audit and gate: protected attributes (read here only), group metrics, the plan against the meeting, proxies."""
