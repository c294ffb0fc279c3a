"""Migration (pure): the staged migration state machine and object transforms."""
