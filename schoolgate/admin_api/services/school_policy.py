"""Which policy the policy and calendar pages show and change (docs/trust.md): without a trust,
the one policy file; with one, a school's own policy (the trust's base with the school's
override, compiled as the gateway compiles it) and its override file, or for the trust's roles
the base policy, narrowed to one school by `?school=<id>`. An edit of a school's file is
checked with the whole trust, so a school loosening a lock is refused in the trust's words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from sqlalchemy.orm import Session

from schoolgate.admin_api.errors import Conflict, InvalidInput, NotAllowed, NotFound
from schoolgate.admin_api.resources import Resources
from schoolgate.admin_api.roles import SignedInUser
from schoolgate.admin_api.services.policy_versions import (
    Checked,
    check_text,
    editable_path,
    restore,
    save,
)
from schoolgate.policy.errors import PolicyError
from schoolgate.policy.model import Policy
from schoolgate.policy.trust import School
from schoolgate.store import policy_versions as versions
from schoolgate.store.models import PolicyVersionRow
from schoolgate.store.trust_files import load_trust, trust_stamp

# (trust file, school) -> (the trust's files' stamps, that school's policy compiled)
_compiled: dict[tuple[Path, str], tuple[object, Policy]] = {}


@dataclass(frozen=True, slots=True)
class PolicyPlace:
    """One policy the pages show and change: the single school's or the trust's base policy
    (`school` None), or a school's in a trust."""

    path: Path | None  # the file edited (a school's override); None: none to edit
    kind: str  # the kind of its versions in policy_versions
    school: School | None = None
    trust_file: Path | None = None  # the file is one of this trust's: checked with it

    @property
    def query(self) -> str:
        """What links and forms add so a trust role stays on this school's pages."""
        return f"?school={self.school.id}" if self.school is not None else ""

    def editable(self) -> Path:
        """The file to change, or Conflict saying how to give the school one."""
        if self.school is None:
            return editable_path(self.path)
        if self.path is None:
            raise Conflict(
                f"{self.school.name} runs the trust's policy as it is: it has no policy "
                "file of its own to change here. The trust's IT team can give it one: in "
                f"the trust file, under the school '{self.school.id}', add "
                f"'policy: {self.school.id}/policy.yaml' and make that file (empty to start "
                "with), then restart the admin."
            )
        return self.path


def place_for(resources: Resources, user: SignedInUser, wanted: str | None) -> PolicyPlace:
    """The policy `user` works on: their school's, or for a trust role the base policy or the
    school `wanted` names (NotFound for an id that is no school of the trust)."""
    trust = resources.trust
    settings = resources.settings
    if trust is None or settings.trust_file is None:
        return PolicyPlace(settings.policy_file, versions.POLICY)
    folder = settings.trust_file.parent
    if user.every_school:
        if not wanted:
            return _base_place(settings.policy_file, folder / trust.base, settings.trust_file)
        school_id = wanted
    elif user.school is not None:
        school_id = user.school
    else:
        raise NotAllowed(
            "the trust places you in no school (or in more than one), so there is no policy "
            "for you here; ask the trust's IT team to put your account in one school's groups"
        )
    school = trust.schools.get(school_id)
    if school is None:
        raise NotFound(f"there is no school {school_id[:40]!r} in this trust")
    path = folder / school.policy if school.policy is not None else None
    return PolicyPlace(path, versions.school_kind(school.id), school, settings.trust_file)


def schools_to_choose(resources: Resources, user: SignedInUser) -> list[School]:
    """The schools a trust role may narrow the pages to (none for anyone else)."""
    if resources.trust is None or not user.every_school:
        return []
    return sorted(resources.trust.schools.values(), key=lambda school: school.name)


def _base_place(policy_file: Path | None, base: Path, trust_file: Path) -> PolicyPlace:
    """The trust's base policy, when it is the admin's policy file: checked with the whole
    trust, so a change no school's policy can live with is refused before it is written."""
    if policy_file is not None and policy_file.resolve() == base.resolve():
        return PolicyPlace(base, versions.POLICY, None, trust_file)
    return PolicyPlace(policy_file, versions.POLICY)


def place_policy(resources: Resources, place: PolicyPlace) -> Policy:
    """The policy the gateway runs for this place: the school's compiled from the trust's
    files as they are now, else the admin's own (the single school's, or the base). A file
    broken on the server leaves the last good one (as the gateway keeps its running trust)."""
    if place.school is None or place.trust_file is None:
        return resources.policy
    key = (place.trust_file, place.school.id)
    stamp = trust_stamp(place.trust_file)
    cached = _compiled.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        policy = load_trust(place.trust_file, only=place.school.id).policies[place.school.id]
    except PolicyError as error:
        if cached is not None:
            return cached[1]
        raise Conflict(
            f"{place.school.name}'s policy cannot be shown: "
            f"{'; '.join(error.problems)[:2000]}. Correct the file, or restore a version "
            "that worked on All versions (/policy/versions)."
        ) from None
    _compiled[key] = (stamp, policy)
    return policy


def check_place_text(place: PolicyPlace, text: str) -> Checked:
    """`text` as the new content of this place's file, checked as the gateway will load it:
    in a trust, with the whole trust (`trust_problems`), or InvalidInput."""
    path = place.editable()
    if place.trust_file is None:
        return check_text(text, path=path)
    policy, problems = trust_problems(place, text)
    if policy is None:
        raise InvalidInput({"text": "; ".join(problems)})
    return Checked(text=text, policy=policy)


def trust_problems(place: PolicyPlace, text: str) -> tuple[Policy | None, list[str]]:
    """`text` in place of this place's file, the whole trust compiled with it: (the place's
    policy, []) or (None, every problem). A school's are its own, in its own words; a problem
    in another school's file refuses it too (the gateway would keep the old trust), unnamed."""
    path, trust_file = place.editable(), place.trust_file
    if trust_file is None:
        return None, ["this policy is not one of a trust's"]
    try:
        trust = load_trust(trust_file, texts={path: text})
    except PolicyError as error:
        if place.school is None:  # the trust's IT: every problem, each school's named
            return None, list(error.problems)
        prefix = f"school {place.school.id!r} ({place.school.policy}): "
        own = [p.removeprefix(prefix) for p in error.problems if p.startswith(prefix)]
        return None, own or [
            "the trust's other policy files have a problem, so the gateway would not "
            "take up this change; ask the trust's IT team to run 'schoolgate trust "
            "check' and correct it (nothing was changed)"
        ]
    if place.school is None:
        return trust.base, []
    policy = trust.policies.get(place.school.id)
    if policy is None:  # the trust file changed since the admin started
        return None, ["the trust file no longer names this school; ask the trust's IT team"]
    return policy, []


def save_place(
    session: Session,
    place: PolicyPlace,
    *,
    actor: SignedInUser,
    text: str,
    reason: str,
    at: datetime,
    restoring: int | None = None,
) -> tuple[PolicyVersionRow | None, Policy]:
    """Save `text` (or restore the version `restoring`) as this place's new version, checked
    as the gateway will load it, and write its file (services/policy_versions.py `save`)."""
    check = None if place.trust_file is None else partial(check_place_text, place)
    if restoring is not None:
        return restore(
            session,
            actor=actor,
            path=place.editable(),
            version_id=restoring,
            reason=reason,
            at=at,
            kind=place.kind,
            check=check,
        )
    return save(
        session,
        actor=actor,
        path=place.editable(),
        text=text,
        reason=reason,
        at=at,
        kind=place.kind,
        check=check,
    )


def after_save(page: str, place: PolicyPlace, done: str) -> str:
    """Where a saved change sends the person: the page, saying what was saved, on the same
    school's view."""
    school = f"&school={place.school.id}" if place.school is not None else ""
    return f"{page}?saved={done}{school}"
