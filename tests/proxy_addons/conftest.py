"""Fixtures for these tests: a real slapd (tests/support/slapd.py)."""

from tests.support.slapd import shared_slapd, slapd_server

__all__ = ["shared_slapd", "slapd_server"]
