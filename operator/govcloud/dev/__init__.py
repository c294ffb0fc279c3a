"""Developer tooling: the real local Kubernetes control plane shared by tests, e2e and the demo."""
