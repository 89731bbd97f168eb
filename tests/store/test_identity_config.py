"""store/identity_config.py: every problem reported with its place; groups and subnets to roles."""

from __future__ import annotations

from pathlib import Path

import pytest

from schoolgate.store.identity_config import (
    GroupMode,
    IdentityConfigError,
    LdapSettings,
    LocalSettings,
    load_identity_config,
    parse_identity_config,
)

DATA = Path(__file__).resolve().parents[2] / "schoolgate" / "store" / "data"

LDAP = """
directory:
  kind: ldap
  url: ldaps://dc1.school.lan:636
  bind_dn: cn=schoolgate,dc=school,dc=lan
  bind_password_file: secret
  user_search_base: ou=people,dc=school,dc=lan
"""


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        (
            "directory: {kind: ldaps}",
            ["identity.yaml: directory: unknown kind 'ldaps' (known: 'ldap', 'local')"],
        ),
        (
            "directory: {kind: local}",
            ["identity.yaml: directory.users_file: required setting is missing"],
        ),
        (
            "directory: {kind: local, users_file: u.yaml, user_file: x}",
            ["identity.yaml: directory.user_file: unknown setting (check the spelling)"],
        ),
        (
            "groups_to_roles: [{group: Staff, role: staff}, {group: X, role: pupil},"
            " {group: Y, role: Pupil}]",
            [
                "identity.yaml: groups_to_roles[2].role: 'Pupil' is not a role name "
                "(lower case letters, digits, underscores)"
            ],
        ),
        (
            "groups_to_roles: [{group: '', role: pupil}, {role: pupil}]",
            [
                "identity.yaml: groups_to_roles[0].group: String should have at least 1 character",
                "identity.yaml: groups_to_roles[1].group: required setting is missing",
            ],
        ),
        (
            "subnets: [{cidr: 10.0.0.1/8, role: pupil}]",
            [
                "identity.yaml: subnets[0].cidr: '10.0.0.1/8' has host bits set; did you mean 10.0.0.0/8?"
            ],
        ),
        (
            "subnets: [{cidr: lab, role: pupil}, {cidr: 10.1.0.0/16, role: pupil, without_auth: maybe}]",
            [
                "identity.yaml: subnets[0].cidr: 'lab' is not an IPv4 or IPv6 network",
                "identity.yaml: subnets[1].without_auth: Input should be a valid boolean, "
                "unable to interpret input",
            ],
        ),
        (
            "subnets: [{cidr: 10.1.0.0/16, role: pupil}, {cidr: 10.1.0.0/16, role: staff}]",
            ["identity.yaml: subnets[1].cidr: 10.1.0.0/16 is listed twice"],
        ),
        (
            "cache: {positive_seconds: -1}",
            ["identity.yaml: cache.positive_seconds: Input should be greater than or equal to 0"],
        ),
        ("auth_required: [yes]", ["identity.yaml: auth_required: Input should be a valid boolean"]),
        ("roles: {}", ["identity.yaml: roles: unknown setting (check the spelling)"]),
        ("- a list", ["identity.yaml: (top level): expected a mapping of settings"]),
        ("directory: {kind: local\n", ["identity.yaml: line 2, column 1: not valid YAML"]),
        (
            LDAP.replace("ldaps://dc1.school.lan:636", "http://dc1"),
            [
                "identity.yaml: directory.url: 'http://dc1' is not ldap://host[:port] or "
                "ldaps://host[:port]"
            ],
        ),
        (
            LDAP + "  start_tls: true\n",
            [
                "identity.yaml: directory: start_tls is for ldap:// URLs; ldaps:// is already encrypted"
            ],
        ),
        (
            LDAP + "  user_filter: uid={username}\n",
            [
                "identity.yaml: directory.user_filter: 'uid={username}' must be an LDAP filter in "
                "parentheses with {username}"
            ],
        ),
        (
            LDAP + "  groups: {mode: search}\n",
            ["identity.yaml: directory.groups: search_base is needed when mode is search"],
        ),
        (
            LDAP + "  groups: {mode: search, search_base: ou=g, filter: (member=x)}\n",
            ["identity.yaml: directory.groups: filter must contain {user_dn}"],
        ),
        (
            LDAP + "  timeouts: {connect_seconds: 0}\n  pool_size: 0\n",
            [
                "identity.yaml: directory.timeouts.connect_seconds: Input should be greater than 0",
                "identity.yaml: directory.pool_size: Input should be greater than or equal to 1",
            ],
        ),
    ],
)
def test_every_problem_is_reported_with_its_place(text: str, problems: list[str]) -> None:
    with pytest.raises(IdentityConfigError) as raised:
        parse_identity_config(text, source="identity.yaml")
    assert list(raised.value.problems) == problems
    assert str(raised.value) == "\n".join(problems)


def test_an_empty_file_means_no_directory_and_the_defaults() -> None:
    config = parse_identity_config("", source="identity.yaml")
    assert config.directory is None
    assert config.auth_required is True
    assert (config.cache.positive_seconds, config.cache.negative_seconds) == (600, 30)


def test_ldap_settings_and_their_defaults() -> None:
    config = parse_identity_config(LDAP + "  groups: {mode: ad_nested, search_base: ou=g}\n")
    ldap = config.directory
    assert isinstance(ldap, LdapSettings)
    assert ldap.url == "ldaps://dc1.school.lan:636"
    assert ldap.user_filter == "(uid={username})"
    assert ldap.groups.mode is GroupMode.AD_NESTED
    assert (
        ldap.groups.effective_filter
        == "(&(objectClass=group)(member:1.2.840.113556.1.4.1941:={user_dn}))"
    )
    assert (ldap.timeouts.connect_seconds, ldap.timeouts.total_seconds) == (3, 5)


ROLES = parse_identity_config("""
groups_to_roles:
  - {group: SocialMedia, role: social_media_manager}
  - {group: Staff, role: staff}
  - {group: Pupils, role: pupil}
""")


@pytest.mark.parametrize(
    ("groups", "role"),
    [
        ({"Staff", "SocialMedia"}, "social_media_manager"),  # first matching mapping wins
        ({"Staff", "DSL"}, "staff"),
        ({"Pupils", "Year5"}, "pupil"),
        ({"staff"}, "staff"),  # group names ignore case, as in AD
        ({"Governors"}, None),  # unmapped: the policy's default role
        (set(), None),
    ],
)
def test_first_matching_group_gives_the_role(groups: set[str], role: str | None) -> None:
    assert ROLES.role_for_groups(groups) == role


SUBNETS = parse_identity_config("""
subnets:
  - {cidr: 10.20.0.0/16, role: pupil, without_auth: true}
  - {cidr: 10.20.5.0/24, role: staff}
  - {cidr: "fd00:1::/64", role: pupil}
""")


@pytest.mark.parametrize(
    ("address", "role"),
    [
        ("10.20.1.9", "pupil"),
        ("10.20.5.9", "staff"),  # the most specific subnet wins, whatever the order
        ("::ffff:10.20.5.9", "staff"),  # IPv4-mapped IPv6 from a dual-stack listener
        ("fd00:1::5", "pupil"),
        ("fd00:1::5%eth0", "pupil"),
        ("10.21.0.1", None),
        ("not an address", None),
    ],
)
def test_the_most_specific_subnet_gives_the_role(address: str, role: str | None) -> None:
    subnet = SUBNETS.subnet_for(address)
    assert (subnet.role if subnet else None) == role


def test_load_resolves_paths_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("pw\n")
    (tmp_path / "identity.yaml").write_text(LDAP)
    ldap = load_identity_config(tmp_path / "identity.yaml").directory
    assert isinstance(ldap, LdapSettings)
    assert ldap.bind_password_file == tmp_path / "secret"


def test_load_reports_files_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "identity.yaml").write_text(LDAP + "  ca_file: ca.pem\n")
    with pytest.raises(IdentityConfigError) as raised:
        load_identity_config(tmp_path / "identity.yaml")
    assert raised.value.problems == (
        f"identity.yaml: directory.bind_password_file: cannot read {tmp_path / 'secret'}",
        f"identity.yaml: directory.ca_file: cannot read {tmp_path / 'ca.pem'}",
    )


def test_load_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(IdentityConfigError, match="cannot read the identity configuration"):
        load_identity_config(tmp_path / "nope.yaml")


def test_the_demo_configuration_loads() -> None:
    config = load_identity_config(DATA / "demo-identity.yaml")
    assert isinstance(config.directory, LocalSettings)
    assert config.directory.users_file == DATA / "demo-users.yaml"
    assert [m.role for m in config.groups_to_roles] == ["social_media_manager", "staff", "pupil"]
