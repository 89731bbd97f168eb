"""Which pupils a teacher may supervise: the pupils in the directory groups their own groups
teach (`classes:` in the identity file, e.g. Teachers-Year5 teaches Year5). The DSL may
supervise anyone; a member of staff who teaches no class may supervise nobody (the school
has not said whose class is whose, so the gateway does not guess)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from schoolgate.admin_api.errors import NotAllowed, Unavailable
from schoolgate.admin_api.roles import Role, SignedInUser
from schoolgate.admin_api.services.sanctions import directory_name, lookup_user
from schoolgate.store.directory import Directory, DirectoryUnavailable
from schoolgate.store.identity_config import IdentityConfig
from schoolgate.store.models import SanctionRow, SanctionState, SupervisedSessionRow


@dataclass(frozen=True)
class ClassPupil:
    """A sanctioned pupil of the teacher's class, and any supervised session open now."""

    user: str
    display_name: str
    sanction_ends: datetime | None
    session_ends: datetime | None
    session_by: str | None


def classes_of(identity: IdentityConfig, actor: SignedInUser) -> frozenset[str]:
    return identity.classes_taught(actor.groups)


def class_names(identity: IdentityConfig, actor: SignedInUser) -> list[str]:
    """The taught groups as the identity file spells them, for people to read."""
    taught = classes_of(identity, actor)
    names = {t for m in identity.classes for t in m.teaches if t.casefold() in taught}
    return sorted(names)


def check_may_supervise(
    *, identity: IdentityConfig, directory: Directory | None, actor: SignedInUser, user: str
) -> str:
    """The pupil's canonical name if `actor` may open a supervised session for them, else
    NotAllowed in plain words. The DSL may for anyone."""
    name = directory_name(directory, user)
    if actor.has(Role.DSL):
        return name
    taught = classes_of(identity, actor)
    if not taught:
        raise NotAllowed(
            "You can open a supervised session only for pupils in your class, and "
            "the school's directory does not say which class you teach. Ask the "
            "DSL to open it, or the IT technician to add your class (docs: "
            "identity, classes)."
        )
    found = _groups(directory, name)
    if not taught & found:
        raise NotAllowed(
            f"{name} is not in your class, so you cannot open a supervised session "
            "for them. Ask their class teacher or the DSL."
        )
    return name


def class_pupils(
    session: Session,
    *,
    identity: IdentityConfig,
    directory: Directory | None,
    actor: SignedInUser,
    at: datetime,
) -> list[ClassPupil]:
    """The pupils of `actor`'s class (everyone's, for the DSL) with a sanction in force now."""
    taught = classes_of(identity, actor)
    dsl = actor.has(Role.DSL)
    if not taught and not dsl:
        return []
    not_ended = or_(SanctionRow.ends.is_(None), SanctionRow.ends > at)
    sanctions = session.scalars(
        select(SanctionRow)
        .where(SanctionRow.state == SanctionState.PLACED, SanctionRow.starts <= at, not_ended)
        .order_by(SanctionRow.user)
    ).all()
    sessions = {
        row.user.casefold(): row
        for row in session.scalars(
            select(SupervisedSessionRow)
            .where(SupervisedSessionRow.starts <= at, SupervisedSessionRow.ends > at)
            .order_by(SupervisedSessionRow.ends)
        )
    }
    pupils: dict[str, ClassPupil] = {}
    for row in sanctions:
        key = row.user.casefold()
        if key in pupils:
            continue
        try:
            found = lookup_user(directory, row.user) if directory is not None else None
        except DirectoryUnavailable:
            raise Unavailable(
                "the school directory cannot be reached just now, so your "
                "class cannot be listed; try again in a minute"
            ) from None
        groups = {g.casefold() for g in found.groups} if found is not None else set()
        if not dsl and not taught & groups:
            continue
        open_now = sessions.get(key)
        pupils[key] = ClassPupil(
            user=row.user,
            display_name=found.display_name if found is not None else row.user,
            sanction_ends=row.ends,
            session_ends=open_now.ends if open_now else None,
            session_by=open_now.opened_by if open_now else None,
        )
    return list(pupils.values())


def _groups(directory: Directory | None, name: str) -> frozenset[str]:
    if directory is None:
        return frozenset()
    try:
        found = lookup_user(directory, name)
    except DirectoryUnavailable:
        raise Unavailable(
            "the school directory cannot be reached just now, so the pupil's "
            "class cannot be checked; try again in a minute"
        ) from None
    return frozenset(g.casefold() for g in found.groups) if found is not None else frozenset()
