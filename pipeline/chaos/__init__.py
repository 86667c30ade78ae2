"""`pipeline chaos run`: faults injected into a live local cluster, judged from the topics."""
