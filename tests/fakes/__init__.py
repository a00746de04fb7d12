"""Fakes of outside services at their wire level (HTTP), for tests. Never fakes of our own code."""
