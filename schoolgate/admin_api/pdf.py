"""The evidence pack as a PDF (fpdf2): the same sections as the printable page, on A4, in a
font that has every character (DejaVu Sans where the system has it; else Helvetica, with the
few characters it lacks replaced)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from schoolgate.admin_api.services.evidence import EvidencePack
from schoolgate.admin_api.words import role_words

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
_LATIN1 = str.maketrans(
    {
        "—": "-",
        "–": "-",
        "‘": "'",
        "’": "'",
        "“": '"',
        "”": '"',
        "…": "...",
        "·": "-",
        "✓": "v",
        "✗": "x",
    }
)


def _when(value: datetime, zone: ZoneInfo) -> str:
    local = value.astimezone(zone)
    return f"{local.strftime('%A')} {local.day} {local.strftime('%B %Y')}, {local:%H:%M}"


def _day(value: date) -> str:
    return f"{value.day} {value:%B %Y}"


class _Pdf(FPDF):
    def __init__(self) -> None:
        super().__init__(format="A4")
        self.unicode = (DEJAVU / "DejaVuSans.ttf").is_file() and (
            DEJAVU / "DejaVuSans-Bold.ttf"
        ).is_file()
        if self.unicode:
            self.add_font("body", "", str(DEJAVU / "DejaVuSans.ttf"))
            self.add_font("body", "B", str(DEJAVU / "DejaVuSans-Bold.ttf"))
        self.family = "body" if self.unicode else "Helvetica"
        self.set_auto_page_break(auto=True, margin=15)
        self.set_margins(15, 15, 15)

    def text_of(self, text: str) -> str:
        if self.unicode:
            return text
        return text.translate(_LATIN1).encode("latin-1", "replace").decode("latin-1")

    def heading(self, text: str, size: int = 14) -> None:
        self.ln(3)
        self.set_font(self.family, "B", size)
        self.multi_cell(
            0, size * 0.5, self.text_of(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
        self.set_font(self.family, "", 10)

    def para(self, text: str) -> None:
        self.set_font(self.family, "", 10)
        self.multi_cell(0, 5, self.text_of(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def keep_together(self, height: float) -> None:
        """Start a new page unless `height` mm still fit on this one."""
        if self.get_y() + height > self.h - self.b_margin:
            self.add_page()

    def grid(
        self,
        header: list[str],
        rows: list[list[str]],
        size: int = 8,
        widths: tuple[int, ...] | None = None,
    ) -> None:
        self.set_font(self.family, "", size)
        with self.table(
            text_align="LEFT", line_height=size * 0.5, **({"col_widths": widths} if widths else {})
        ) as table:
            row = table.row()
            for cell in header:
                row.cell(self.text_of(cell))
            for values in rows:
                row = table.row()
                for cell in values:
                    row.cell(self.text_of(cell))
        self.set_font(self.family, "", 10)


def pack_pdf(pack: EvidencePack, *, school: str, zone: ZoneInfo) -> bytes:
    """The pack as PDF bytes."""
    pdf = _Pdf()
    pdf.add_page()
    pdf.heading(f"{school}: web filtering annual review", 18)
    pdf.para(
        f"Evidence pack for {pack.day.strftime('%A')} {pack.day.day} "
        f"{pack.day.strftime('%B %Y')} (DfE filtering and monitoring standard 1). "
        f"Made on {_when(pack.made_at, zone)}. Policy: {pack.policy_name}."
    )
    pdf.heading("1. The policy in words")
    for line in pack.rules_in_words:
        pdf.para(f"- {line}")
    pdf.heading("2. Who may use what, through the day")
    pdf.para(pack.table_note)
    pdf.grid(pack.header, pack.rows, 7)
    pdf.heading("3. Live test through the gateway")
    pdf.para(
        f"{pack.gateway}. Passed {pack.passed}, failed {pack.failed}, "
        f"not tried {len(pack.checks) - pack.passed - pack.failed}."
    )
    pdf.grid(
        ["What", "Who", "Website", "Policy says", "Gateway did", "Result"],
        [
            [
                c.about,
                role_words(c.role),
                c.host,
                "blocked" if c.expected.value == "block" else "allowed",
                c.live,
                "pass" if c.passed else ("FAIL" if c.passed is False else "-"),
            ]
            for c in pack.checks
        ],
        widths=(52, 26, 32, 18, 36, 16),
    )
    pdf.para(pack.safesearch)
    pdf.heading("4. How fresh the lists are")
    if pack.lists:
        pdf.grid(
            ["Kind of website", "List", "Compiled", "Sites", "Check"],
            [
                [
                    f.category,
                    f.file,
                    _day(f.compiled) if f.compiled else "unknown",
                    str(f.domains),
                    "out of date" if f.stale else "fresh",
                ]
                for f in pack.lists
            ],
        )
    else:
        pdf.para(
            "The policy names no list files: its sites are written in the policy itself, "
            "so there is no compiled date to check."
        )
    counts = pack.counts
    pdf.heading("5. The year in numbers")
    pdf.para(
        f"From {_day(counts.first)} to {_day(counts.last)}: "
        f"{counts.blocked} websites blocked; {counts.requests} requests to unblock, "
        f"{counts.approved} approved, {counts.denied} not approved, {counts.pending} "
        "still waiting."
    )
    pdf.keep_together(75)  # the heading and the four signatures stay on one page
    pdf.heading("6. Sign-off")
    pdf.para("We have reviewed the filtering and monitoring above.")
    pdf.set_font(pdf.family, "", 10)
    with pdf.table(col_widths=(60, 45, 45, 30), line_height=12, text_align="LEFT") as table:
        row = table.row()
        for title in ("Role", "Name", "Signature", "Date"):
            row.cell(title)
        for who in (
            "Designated Safeguarding Lead",
            "IT technician or provider",
            "Governor responsible for filtering and monitoring",
            "Headteacher / SLT",
        ):
            row = table.row()
            for cell in (who, "", "", ""):
                row.cell(pdf.text_of(cell))
    return bytes(pdf.output())
