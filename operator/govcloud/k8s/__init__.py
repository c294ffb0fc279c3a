"""The only layer that talks to an API server (the hub or a sub-center)."""
