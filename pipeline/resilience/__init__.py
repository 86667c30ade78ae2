"""Breakers, retries, budgets, rate limits and bounded waits: what keeps a process standing."""
