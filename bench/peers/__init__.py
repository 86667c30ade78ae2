"""Contestants of bench/pipeline_peers.py: the same enrichment job, four ways."""
