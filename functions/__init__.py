"""Trigger modules: parse the binding, call ``shared``, map the result. No logic lives here."""
