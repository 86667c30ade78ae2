"""What a process tells its operators: structured logs and traces (metrics: pipeline.metrics)."""
