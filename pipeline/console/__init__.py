"""`pipeline console` and `pipeline top`: what a cluster's pipelines are doing, in one place."""
