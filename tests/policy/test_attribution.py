"""Attributing a request to a school (policy/attribution.py, TrustFile.attribute): the trust
file's `listeners:` and `directory:` keys checked with every problem's place, and the order of
trust: listener, subnet, directory, else unmatched; a person in two schools' groups is never
given one of them by chance."""

from __future__ import annotations

import ipaddress

import pytest

from schoolgate.policy.attribution import (
    AMBIGUOUS,
    DirectoryMatch,
    SchoolKeys,
    check_attribution,
    listener_of,
    parse_listener,
    parse_ou,
)
from schoolgate.policy.errors import PolicyError
from schoolgate.policy.trust import By, TrustFile, parse_trust_file

TRUST = """
name: Oak Learning Trust
base: base.yaml
unmatched: refuse
schools:
  oak:
    name: Oak Primary
    subnets: [10.1.0.0/16]
    listeners: ["10.9.0.1:3128", "[fd00::1]:3128"]
    directory: {group: OakPupils}
  elm:
    name: Elm Primary
    subnets: [10.2.0.0/16]
    listeners: ["10.9.0.2:3128"]
    directory: {ou: "ou=Elm, ou=Schools, dc=trust, dc=org"}
  ash:
    name: Ash Infants
    directory: {group: AshPupils, ou: "ou=Ash,ou=Schools,dc=trust,dc=org"}
"""
OAK_DN = "uid=pupil1,ou=Oak,ou=Schools,dc=trust,dc=org"
ELM_DN = "uid=pupil2,OU=elm,OU=Schools,DC=trust,DC=org"  # as a directory may spell it
ASH_DN = "uid=pupil3,ou=Ash,ou=Schools,dc=trust,dc=org"


def trust_file(text: str = TRUST) -> TrustFile:
    return parse_trust_file(text, source="trust.yaml")


def problems_of(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        trust_file(text)
    return caught.value.problems


# --- the trust file's keys --------------------------------------------------------------------


def test_the_trust_file_names_each_schools_listeners_and_directory() -> None:
    trust = trust_file()
    oak, elm, ash = trust.schools["oak"], trust.schools["elm"], trust.schools["ash"]
    assert oak.listeners == (
        (ipaddress.ip_address("10.9.0.1"), 3128),
        (ipaddress.ip_address("fd00::1"), 3128),
    )
    assert oak.directory == DirectoryMatch(group="OakPupils")
    assert elm.directory == DirectoryMatch(ou="ou=Elm, ou=Schools, dc=trust, dc=org")
    assert ash.subnets == ()  # a school may be reached by its directory group or OU alone
    assert ash.listeners == ()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10.9.0.1:3128", (ipaddress.ip_address("10.9.0.1"), 3128)),
        (" 10.9.0.1:8080 ", (ipaddress.ip_address("10.9.0.1"), 8080)),
        ("[fd00::1]:3128", (ipaddress.ip_address("fd00::1"), 3128)),
        ("[::ffff:10.9.0.1]:3128", (ipaddress.ip_address("10.9.0.1"), 3128)),  # dual stack
        ("10.9.0.1", "is not an address and port"),
        ("fd00::1:3128", "is not an address and port"),
        ("[10.9.0.1]:3128", "only an IPv6 address goes in brackets"),
        ("oak.example:3128", "is not an IP address"),
        ("10.9.0.1:0", "0 is not a port (1-65535)"),
        ("10.9.0.1:70000", "70000 is not a port (1-65535)"),
        ("0.0.0.0:3128", "is every address of the gateway"),
        ("[::]:3128", "is every address of the gateway"),
    ],
)
def test_a_listener_is_an_address_and_port(raw: str, expected: tuple[object, int] | str) -> None:
    found = parse_listener(raw)
    if isinstance(expected, str):
        assert isinstance(found, str)
        assert expected in found
    else:
        assert found == expected


def test_listener_problems_are_listed_with_their_place() -> None:
    text = """
name: T
base: b.yaml
schools:
  oak: {name: Oak, listeners: ["10.9.0.1:3128", "10.9.0.1"]}
  elm: {name: Elm, listeners: ["10.9.0.1:3128", "0.0.0.0:3128"]}
"""
    assert problems_of(text) == [
        "schools.oak.listeners[1]: '10.9.0.1' is not an address and port (write it like "
        "10.9.0.1:3128 or [fd00::1]:3128)",
        "schools.elm.listeners[0]: 10.9.0.1:3128 is already given to the school 'oak': a "
        "gateway listener must belong to one school",
        "schools.elm.listeners[1]: '0.0.0.0:3128' is every address of the gateway, which no "
        "client connects to: name the address the school's clients connect to",
    ]


def test_directory_problems_are_listed_with_their_place() -> None:
    text = """
name: T
base: b.yaml
schools:
  oak: {name: Oak, directory: {group: OakPupils, ou: "ou=Oak,dc=t"}}
  elm: {name: Elm, directory: {group: oakpupils}}
  ash: {name: Ash, directory: {ou: "ou=Ash,ou=Oak,dc=t"}}
  yew: {name: Yew, directory: {ou: "Yew School"}}
  fir: {name: Fir, directory: {}}
"""
    assert problems_of(text) == [
        "schools.elm.directory.group: 'oakpupils' is already given to the school 'oak': a "
        "person must belong to one school",
        "schools.ash.directory.ou: 'ou=Ash,ou=Oak,dc=t' and the school 'oak''s OU "
        "'ou=Oak,dc=t' are the same or one is inside the other: a person must belong to one "
        "school (give each school an OU of its own)",
        "schools.yew.directory.ou: 'Yew School' is not an OU's distinguished name (write it "
        "like 'ou=Oak,dc=trust,dc=org')",
        "schools.fir.directory: give a group ({group: OakPupils}) or an OU "
        "({ou: 'ou=Oak,dc=trust,dc=org'}), or leave 'directory:' out",
    ]
    unknown = "name: T\nbase: b.yaml\nschools:\n  box: {name: Box, directory: {groups: [B]}}\n"
    assert problems_of(unknown)[0].startswith("schools.box.directory.groups: unknown key")


def test_an_ou_holding_another_schools_is_refused_whichever_comes_first() -> None:
    _, _, problems = check_attribution(
        {
            "oak": SchoolKeys(directory=DirectoryMatch(ou="ou=Oak,ou=Schools,dc=t")),
            "all": SchoolKeys(directory=DirectoryMatch(ou="OU=Schools, DC=t")),
        }
    )
    assert len(problems) == 1
    assert problems[0].startswith("schools.all.directory.ou: 'OU=Schools, DC=t' and the school")


def test_an_ou_is_compared_ignoring_case_and_spaces() -> None:
    assert parse_ou("OU=Elm , DC=trust,dc=ORG") == ("ou=elm", "dc=trust", "dc=org")
    assert parse_ou(r"ou=Oak\, Elm,dc=t") == (r"ou=oak\, elm", "dc=t")  # an escaped comma
    assert parse_ou("ou=,dc=t") is None
    assert parse_ou("Oak") is None


# --- the order of trust ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listener", "address", "groups", "dn", "school", "by"),
    [
        # the listener first: nothing a device sends changes it, whatever its address or person
        (("10.9.0.1", 3128), "10.2.0.5", {"AshPupils"}, ELM_DN, "oak", By.LISTENER),
        (("10.9.0.2", 3128), "10.1.0.5", set(), None, "elm", By.LISTENER),
        (("::ffff:10.9.0.2", 3128, 0, 0), "10.1.0.5", set(), None, "elm", By.LISTENER),
        (("fd00::1", 3128, 0, 0), None, set(), None, "oak", By.LISTENER),
        # another port or address of the gateway names no school: the subnet
        (("10.9.0.1", 8080), "10.2.0.5", set(), None, "elm", By.SUBNET),
        (("10.9.0.3", 3128), "10.1.0.5", {"AshPupils"}, None, "oak", By.SUBNET),
        # then the subnet, before the person signed in
        (None, "10.2.0.5", {"OakPupils"}, OAK_DN, "elm", By.SUBNET),
        (None, "::ffff:10.1.0.5", set(), None, "oak", By.SUBNET),
        # then the directory: a group (ignoring case, as AD does) or an OU
        (None, "192.0.2.1", {"Staff", "oakpupils"}, None, "oak", By.DIRECTORY),
        (None, "192.0.2.1", {"Pupils"}, ELM_DN, "elm", By.DIRECTORY),
        (None, "192.0.2.1", set(), ASH_DN, "ash", By.DIRECTORY),
        (None, "192.0.2.1", {"AshPupils"}, ASH_DN, "ash", By.DIRECTORY),  # both: one school
        # the OU itself, or an OU beside the school's, is not a person under it
        (None, "192.0.2.1", set(), "ou=Elm,ou=Schools,dc=trust,dc=org", None, By.UNMATCHED),
        (None, "192.0.2.1", set(), "uid=x,ou=Elmer,ou=Schools,dc=trust,dc=org", None, By.UNMATCHED),
        # two schools' groups or OUs: refused, never one of them by chance
        (None, "192.0.2.1", {"OakPupils", "AshPupils"}, None, None, By.AMBIGUOUS),
        (None, "192.0.2.1", {"OakPupils"}, ELM_DN, None, By.AMBIGUOUS),
        # nothing applies
        (None, "192.0.2.1", {"Pupils"}, "not a dn", None, By.UNMATCHED),
        (None, None, set(), None, None, By.UNMATCHED),
        (("not an address", 3128), "rubbish", set(), None, None, By.UNMATCHED),
    ],
)
def test_the_first_that_applies_in_order_of_trust(
    listener: tuple[object, ...] | None,
    address: str | None,
    groups: set[str],
    dn: str | None,
    school: str | None,
    by: By,
) -> None:
    found = trust_file().attribute(
        listener=listener, address=address, groups=frozenset(groups), dn=dn
    )
    assert (found.school.id if found.school else None, found.by) == (school, by)


@pytest.mark.parametrize(
    ("groups", "by"), [({"Pupils"}, By.UNMATCHED), ({"OakPupils", "AshPupils"}, By.AMBIGUOUS)]
)
def test_unmatched_and_ambiguous_people_get_the_school_the_trust_names(
    groups: set[str], by: By
) -> None:
    trust = trust_file(TRUST.replace("unmatched: refuse", "unmatched: ash"))
    found = trust.attribute(address="192.0.2.1", groups=frozenset(groups))
    assert found.school is not None
    assert (found.school.id, found.by) == ("ash", by)


def test_the_answers_are_remembered_per_person_and_per_socket_address() -> None:
    attributor = trust_file().attributor
    groups = frozenset({"OakPupils"})
    assert attributor.by_directory(groups, None) == "oak"
    assert attributor.by_directory(frozenset({"OakPupils", "AshPupils"}), None) == AMBIGUOUS
    assert attributor._memo[(groups, None)] == "oak"
    for _ in range(2):
        assert attributor.by_listener(("10.9.0.2", 3128)) == "elm"
        assert attributor.by_listener(("10.9.0.2", 3129)) is None
        assert attributor.by_listener(["10.9.0.2", 3128]) is None  # not a socket address
    assert attributor._sockets == {("10.9.0.2", 3128): "elm", ("10.9.0.2", 3129): None}


def test_without_listeners_or_directory_only_the_subnet_counts() -> None:
    trust = trust_file(
        "name: T\nbase: b.yaml\nschools:\n  oak: {name: Oak, subnets: [10.1.0.0/16]}\n"
    )
    found = trust.attribute(listener=("10.9.0.1", 3128), address="10.1.0.5")
    assert (found.school.id if found.school else None, found.by) == ("oak", By.SUBNET)
    nobody = trust.attribute(address="192.0.2.1", groups=frozenset({"OakPupils"}), dn=OAK_DN)
    assert (nobody.school, nobody.by) == (None, By.UNMATCHED)


@pytest.mark.parametrize(
    ("sockname", "expected"),
    [
        (("10.9.0.1", 3128), (ipaddress.ip_address("10.9.0.1"), 3128)),
        (("::ffff:10.9.0.1", 3128, 0, 0), (ipaddress.ip_address("10.9.0.1"), 3128)),
        (("fe80::1%eth0", 3128, 0, 2), (ipaddress.ip_address("fe80::1"), 3128)),
        (None, None),
        (("10.9.0.1",), None),
        (("host.example", 3128), None),
        (("10.9.0.1", "3128"), None),
    ],
)
def test_a_sockets_local_address_is_read_as_a_listener(
    sockname: object, expected: tuple[object, int] | None
) -> None:
    assert listener_of(sockname) == expected
