"""The worker: a consumer group's replica, its bulkheads, commits, dead letters and health."""
