"""Which schools' rows a database session may see and change (docs/trust.md, "Keeping schools'
data apart"). A session given a scope (`scope_session`) adds the scope's condition to every ORM
SELECT, UPDATE and DELETE of the tables holding a school's data, and writes the scope's school
on the rows it adds; so no query, count or look-up by id in the admin can reach another school's
rows, whether or not its route remembered to filter. A session without a scope (the gateway's,
a command's) is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, event, false, true
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker, with_loader_criteria

from schoolgate.store.admin_models import AuditEntryRow, UnblockRequestRow
from schoolgate.store.incident_models import IncidentNoteRow
from schoolgate.store.models import (
    AlertRow,
    CircumventionAttemptRow,
    EventRow,
    ExceptionRow,
    LocalListRow,
    SanctionRow,
    SupervisedSessionRow,
)

SCHOOL_MODELS: tuple[type[Any], ...] = (
    EventRow,
    CircumventionAttemptRow,
    SanctionRow,
    SupervisedSessionRow,
    ExceptionRow,
    AlertRow,
    UnblockRequestRow,
    IncidentNoteRow,
    AuditEntryRow,
    LocalListRow,
)
_KEY = "schoolgate.school_scope"


@dataclass(frozen=True, slots=True)
class SchoolScope:
    """Whose rows: every school's (`every`: no trust file, or a trust role), one school's, or
    nobody's (`school` None and not `every`: a person the trust places in no school)."""

    school: str | None = None
    every: bool = False

    def condition(self, column: Any) -> ColumnElement[bool]:
        if self.every:
            return true()
        if self.school is None:
            return false()
        result: ColumnElement[bool] = column == self.school
        return result


EVERY_SCHOOL = SchoolScope(every=True)
NO_SCHOOL = SchoolScope()


def scope_session(session: Session, scope: SchoolScope) -> Session:
    """Limit `session` to `scope` from now on; returns it."""
    session.info[_KEY] = scope
    return session


def scoped_sessions(sessions: sessionmaker[Session], scope: SchoolScope) -> sessionmaker[Session]:
    """A maker of sessions like `sessions`' each limited to `scope` (for work that opens
    sessions of its own, such as a streamed export)."""
    kw = dict(sessions.kw)
    kw["info"] = {**(kw.get("info") or {}), _KEY: scope}
    return sessionmaker(**kw)


def session_scope(session: Session) -> SchoolScope | None:
    """The scope `session` was given, if any."""
    found = session.info.get(_KEY)
    return found if isinstance(found, SchoolScope) else None


@event.listens_for(Session, "do_orm_execute")
def _only_the_scopes_rows(state: ORMExecuteState) -> None:
    scope = session_scope(state.session)
    if scope is None or scope.every:
        return
    if state.is_select or state.is_update or state.is_delete:
        state.statement = state.statement.options(
            *(
                with_loader_criteria(model, scope.condition(model.school), include_aliases=True)
                for model in SCHOOL_MODELS
            )
        )


@event.listens_for(Session, "before_flush")
def _new_rows_are_the_scopes(session: Session, _context: object, _instances: object) -> None:
    scope = session_scope(session)
    if scope is None or scope.school is None:
        return
    for row in session.new:
        if isinstance(row, SCHOOL_MODELS) and row.school is None:
            row.school = scope.school
