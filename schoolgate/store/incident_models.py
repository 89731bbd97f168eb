"""The DSL's incident notes on the shared metadata: what happened, the action taken and the
outcome, about one user, optionally tied to an alert or an event. In the DfE's words, "a
documented process for recording incidents that includes what action was taken and the
outcomes". Notes are records: written once, never edited (a correction is a new note).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from schoolgate.store.models import Base, school_column


class IncidentNoteRow(Base):
    """One incident note. `alert_id` and `event_id` are not foreign keys: notes outlive the
    browsing events they cite (retention purges events, never notes)."""

    __tablename__ = "incident_notes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    at: Mapped[datetime]  # when it was written
    user: Mapped[str] = mapped_column(String(200))  # the pupil or member of staff concerned
    written_by: Mapped[str] = mapped_column(String(200))
    happened_at: Mapped[datetime | None]  # when the incident happened, if known
    what_happened: Mapped[str] = mapped_column(Text)
    action_taken: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text)
    alert_id: Mapped[str | None] = mapped_column(String(36))
    event_id: Mapped[str | None] = mapped_column(String(36))
    school: Mapped[str | None] = school_column()

    __table_args__ = (
        Index("ix_incident_notes_user_at", "user", "at"),
        Index("ix_incident_notes_at", "at"),
        Index("ix_incident_notes_alert_id", "alert_id"),
        Index("ix_incident_notes_school_at", "school", "at"),
    )
