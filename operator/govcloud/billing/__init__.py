"""Billing (pure): rating usage against the rate card, billing periods."""
