"""What a person is told after an action: every action ends on a page that says what happened.
The redirect after a change carries `?done=<code>`; the page looks the code up here, so no text
from the address is ever shown (only these fixed sentences)."""

from __future__ import annotations

from fastapi import Request

NOTICES = {
    "sent": "Sent - the Business Manager will look at it. You will see the answer here and "
    "under “My requests”. If it is approved, this page says until when you can use "
    "the website.",
    "sent-by-link": "Sent - the Business Manager will look at it. To see the answer, sign in "
    "and open “My requests”. If it is approved, it says there until when you can use the "
    "website.",
    "approved": "Approved. The access starts within a few seconds.",
    "denied": "Denied. The person who asked will see your reason.",
    "list-block": "Added to the block list. It is blocked for everyone within a few seconds.",
    "list-allow": "Added to the allow list. It is allowed for everyone within a few seconds "
    "(unless the policy can never unblock it).",
    "list-removed": "Removed from the local lists. The change reaches the gateway within a few "
    "seconds.",
    "revoked": "Revoked. The access has ended; the gateway stops it within a few seconds.",
    "sanction-placed": "Sanction placed. The gateway applies it within a few seconds; the "
    "pupil can use the computer only in a supervised session.",
    "sanction-extended": "Extended. The new end date is shown below.",
    "sanction-confirmed": "Sanction placed. The recommendation is now in force, within a few "
    "seconds.",
    "sanction-lifted": "Lifted. The pupil can use the computer as before within a few "
    "seconds; your reason is kept with the record.",
    "sanction-dismissed": "Dismissed. No sanction was placed; your reason is kept with the record.",
    "session-opened": "Supervised session open. The pupil can use the computer while you "
    "supervise them, until the time shown.",
    "alert-acknowledged": "Acknowledged. Others can see that you are dealing with it.",
    "alert-closed": "Closed. What you did and the outcome are kept as an incident note.",
    "school-added": "School added to the trust. Its gateway policy starts within a few seconds; "
    "give its staff their groups (for example ash-DSL) in the directory.",
    "note-written": "Note written. It is kept as written; to correct it, write another.",
}


def notice_for(request: Request) -> str:
    """The sentence for this page's `done` code, or "" (unknown codes say nothing)."""
    return NOTICES.get(request.query_params.get("done", ""), "")
