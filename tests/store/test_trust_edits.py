"""store/trust_edits.py: a school added to or taken out of a trust file only when the trust
checks with the change, and nothing changed when the file cannot be written."""

from __future__ import annotations

from pathlib import Path

import pytest

from schoolgate.store.policy_files import seed_policy_path
from schoolgate.store.trust_edits import TrustNotChanged, add_school, checked_without
from tests.support.trusts import write_trust

TRUST = (
    "name: T\nbase: base.yaml\nschools:\n"
    "  oak: {name: Oak, subnets: [10.1.0.0/16]}\n  elm: {name: Elm, subnets: [10.2.0.0/16]}\n"
)


def _trust(folder: Path) -> Path:
    return write_trust(folder, TRUST, {"base.yaml": seed_policy_path().read_text()})


def test_a_trust_file_that_cannot_be_written_beside_is_left_as_it_was(tmp_path: Path) -> None:
    trust = _trust(tmp_path)
    (tmp_path / ".trust.yaml.new").mkdir()  # where the new file is written first
    with pytest.raises(TrustNotChanged, match="cannot write beside the trust file"):
        add_school(trust, "ash", name="Ash", subnets=["10.3.0.0/16"], policy="ash/policy.yaml")
    with pytest.raises(TrustNotChanged, match="cannot write beside the trust file"):
        checked_without(trust, "elm")
    assert trust.read_text() == TRUST
    assert not (tmp_path / "ash").exists()  # the policy file made for it is taken back


def test_the_id_trust_is_refused(tmp_path: Path) -> None:
    trust = _trust(tmp_path)
    with pytest.raises(TrustNotChanged) as refused:
        add_school(trust, "trust", name="T", subnets=["10.3.0.0/16"], policy=None)
    assert "a school may not have the id 'trust'" in str(refused.value)
    assert trust.read_text() == TRUST


def test_the_text_without_a_school_is_checked_but_not_written(tmp_path: Path) -> None:
    trust = _trust(tmp_path)
    assert checked_without(trust, "elm") == TRUST.replace(
        "\n  elm: {name: Elm, subnets: [10.2.0.0/16]}", ""
    )
    assert trust.read_text() == TRUST
    with pytest.raises(TrustNotChanged, match="there is no school 'ash'"):
        checked_without(trust, "ash")
