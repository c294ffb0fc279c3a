"""API layer: pydantic models of every custom resource; crds/ is generated from them."""
