"""govcloud-operator: the kopf operator that runs a city's unified government cloud."""

__version__ = "0.1.0"
