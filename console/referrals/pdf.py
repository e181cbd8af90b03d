"""The referral's PDF, drawn with ReportLab into memory: what the force reads.

It is given text that is already redacted (redaction.redacted_text): the words a handler hid are not
passed in, so they cannot reach the page, the PDF's metadata or its text layer. It names the Hotline, not
the handler: the people a referral reports on may lean on whoever sent it.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from console.referrals.redaction import REDACTED

# DejaVu (Debian's fonts-dejavu-core, which Chromium's fonts bring) draws any letter a summary may hold;
# ReportLab's built-in Helvetica only Latin-1, so it is the fallback.
_DEJAVU = Path("/usr/share/fonts/truetype/dejavu")


def _fonts() -> tuple[str, str]:
    regular, bold = _DEJAVU / "DejaVuSans.ttf", _DEJAVU / "DejaVuSans-Bold.ttf"
    if regular.is_file() and bold.is_file():
        if "DejaVuSans" not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont("DejaVuSans", str(regular)))
            pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(bold)))
        return "DejaVuSans", "DejaVuSans-Bold"
    return "Helvetica", "Helvetica-Bold"


@dataclass(frozen=True)
class TakeText:
    number: int
    received_label: str
    version_label: str  # "machine transcript" or "corrected by a handler (version 3)"
    text: str | None  # redacted already; None: no transcript
    audio_note: str  # what the package holds of this take's audio


@dataclass(frozen=True)
class ReferralDocument:
    reference: str
    category_label: str
    received_label: str
    anonymous: bool
    force_name: str
    made_label: str
    summary: str
    takes: list[TakeText]
    redactions: int
    audio_label: str


def render(document: ReferralDocument) -> bytes:
    regular, bold = _fonts()
    base = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=base["BodyText"], fontName=regular, fontSize=10.5, leading=15)
    small = ParagraphStyle("small", parent=body, fontSize=8.5, leading=11, textColor=colors.HexColor("#444444"))
    heading = ParagraphStyle("heading", parent=base["Heading2"], fontName=bold, fontSize=13, spaceBefore=10)
    title = ParagraphStyle("title", parent=base["Title"], fontName=bold, fontSize=18, alignment=0)

    def para(text: str, style=body) -> Paragraph:
        # Paragraph reads a little markup: everything given is escaped, and line breaks kept.
        return Paragraph(escape(text).replace("\n", "<br/>"), style)

    story = [
        para("Referral to professional standards", title),
        para(f"From the Hotline to {document.force_name}", small),
        Spacer(1, 4 * mm),
    ]
    facts = [("Reference", document.reference), ("Category", document.category_label),
             ("Received", document.received_label),
             ("Caller", "Anonymous" if document.anonymous else "Named (contact details withheld)"),
             ("Takes", str(len(document.takes))), ("Audio", document.audio_label),
             ("Prepared", document.made_label)]
    table = Table([[para(label, small), para(value)] for label, value in facts], colWidths=[32 * mm, 138 * mm],
                  hAlign="LEFT")
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                               ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#cccccc"))]))
    story += [table, para("Summary", heading), para(document.summary), para("Transcripts", heading)]
    for take in document.takes:
        story.append(para(f"Take {take.number} · received {take.received_label} · {take.version_label}", small))
        if take.text is None:
            story.append(para("No transcript of this take.", body))
        else:
            # Each hidden passage as a black bar that still reads "[redacted]" in the text layer.
            marked = escape(take.text).replace(REDACTED, f'<font backColor="#111111" color="white">{REDACTED}</font>')
            story.append(Paragraph(marked, body))
        story.append(para(take.audio_note, small))
        story.append(Spacer(1, 3 * mm))
    note = ("Words shown as [redacted] were removed by the Hotline before sending, to protect the caller "
            "or others; any audio in this package is silent over the same stretches.")
    if document.redactions:
        note += f" {document.redactions} passage{'' if document.redactions == 1 else 's'} redacted."
    story += [Spacer(1, 4 * mm), para(note, small)]

    buffer = io.BytesIO()
    pdf = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=20 * mm, rightMargin=20 * mm, topMargin=18 * mm,
                            bottomMargin=18 * mm, title=f"Referral {document.reference}", author="Hotline",
                            subject="Referral to professional standards", creator="Hotline console",
                            # No creation time in the file's metadata: for an anonymous caller it would say,
                            # to the second, a moment soon after the call (see services.prepared_stamp).
                            invariant=True)
    pdf.build(story)
    return buffer.getvalue()
