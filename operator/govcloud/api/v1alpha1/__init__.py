"""govcloud.io/v1alpha1: the models of every kind served by the operator."""
