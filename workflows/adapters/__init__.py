"""Adapters: the clients through which activities reach systems outside the platform (OCI registries, the
Kubernetes API)."""
