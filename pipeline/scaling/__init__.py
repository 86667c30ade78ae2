"""Lag, the scaling policy and its simulator, the local supervisor, Kubernetes manifests."""
