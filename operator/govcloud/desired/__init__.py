"""Desired state (pure): a CloudTenant spec in, the Kubernetes manifests that should exist out."""
