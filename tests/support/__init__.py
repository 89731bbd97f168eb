"""Shared helpers for the test suite: real services started on loopback, and the rule for
tests that need something the machine may not have."""
