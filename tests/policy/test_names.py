"""policy/names.py: one canonical user name (findings 6 and 10 of the December review)."""

from __future__ import annotations

import pytest

from schoolgate.policy.names import canonical_user, same_user


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("pupil1", "pupil1"),
        ("Pupil1", "pupil1"),
        ("  PUPIL1\t", "pupil1"),
        ("ｐｕｐｉｌ１", "pupil1"),  # full-width letters and digit
        ("ｔｅａｃｈｅｒ１", "teacher1"),
        ("TEACHER１", "teacher1"),  # a full-width/ASCII mix
        ("Straße", "strasse"),  # case folding, not lower()
        ("ﬁona", "fiona"),  # a ligature folds to letters
        ("o'brien.j", "o'brien.j"),
        ("Ｊ．Ｓｍｉｔｈ", "j.smith"),
    ],
)
def test_spellings_of_one_name_become_one(raw: str, expected: str) -> None:
    assert canonical_user(raw) == expected


def test_every_full_width_and_ascii_mix_of_a_name_is_the_same_person() -> None:
    # Finding 6: 255 mixes of "teacher1" each had their own five tries.
    word = "teacher1"
    forms = set()
    for mask in range(2 ** len(word)):
        mixed = "".join(chr(ord(ch) + 0xFEE0) if mask >> i & 1 else ch for i, ch in enumerate(word))
        forms.add(canonical_user(mixed))
    assert forms == {"teacher1"}


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "\u3000", "pupil\x001", "pupil\n1", "pu\u200bpil1", "pupil1\u202e", "a" * 257],
)
def test_names_that_are_not_names_are_refused_in_words(raw: str) -> None:
    with pytest.raises(ValueError, match="user name"):
        canonical_user(raw)


def test_same_user() -> None:
    assert same_user("Pupil1", "ｐｕｐｉｌ１")
    assert not same_user("pupil1", "pupil2")
    assert not same_user("", "")
