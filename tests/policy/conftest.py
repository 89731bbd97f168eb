"""Fixtures for the policy tests: the small inline policy of tests/support/policies.py."""

from __future__ import annotations

import pytest

from schoolgate.policy.model import Policy
from schoolgate.policy.parse import parse_policy
from tests.support.policies import POLICY_TEXT


@pytest.fixture(scope="session")
def policy() -> Policy:
    return parse_policy(POLICY_TEXT, source="test-policy.yaml")
