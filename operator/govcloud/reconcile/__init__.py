"""Reconcilers: per kind, gather observed state, decide with pure code, apply, write status once."""
