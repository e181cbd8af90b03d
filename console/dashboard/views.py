"""The line at a glance, for supervisors: counts and ages, no report content.

One GET: parse the span asked for (weeks, from a fixed list), count (services.py), audit the look,
render the charts (charts.py) beside their tables. Handlers are refused (403): the page says nothing
about any one case, but how the line's work is going is for the people who run it.
"""
from __future__ import annotations

from flask import Blueprint, render_template, request

from console import db_session
from console.access import current_user, requires
from console.audit.services import record
from console.dashboard import charts, services
from console.dashboard.periods import DEFAULT_WEEKS, WEEK_CHOICES, duration_label
from console.cases.services import moment_label, received_label
from storage.models import AuditAction, Role, utcnow

bp = Blueprint("dashboard", __name__)

BAD_WEEKS = "Choose how many weeks to show from the list: " + ", ".join(map(str, WEEK_CHOICES)) + "."


def parse_weeks(text: str | None) -> int | None:
    """The number of weeks asked for, or None if it is not one of the choices."""
    if text is None or text == "":
        return DEFAULT_WEEKS
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or int(text) not in WEEK_CHOICES:
        return None
    return int(text)


@bp.get("/dashboard")
@requires(Role.SUPERVISOR)
def dashboard():
    weeks = parse_weeks(request.args.get("weeks"))
    if weeks is None:
        return render_template("console/dashboard/dashboard.html", title="The line at a glance", board=None,
                               weeks=DEFAULT_WEEKS, week_choices=WEEK_CHOICES, problem=BAD_WEEKS), 400
    session = db_session()
    board = services.dashboard(session, utcnow(), weeks)
    record(session, AuditAction.DASHBOARD_VIEWED, actor=current_user(), detail={"weeks": weeks})
    session.commit()
    return render_template(
        "console/dashboard/dashboard.html", title="The line at a glance", board=board, weeks=weeks,
        week_choices=WEEK_CHOICES, problem=None, duration=duration_label, moment=moment_label,
        oldest_label=(received_label(board.backlog.oldest_waiting, anonymous=True)
                      if board.backlog.oldest_waiting else None),
        charts={
            "reports": charts.column_chart(board.reports, width=960, height=240, what="Week of "),
            "open_cases": charts.row_chart(board.open_cases),
            "first_review": charts.row_chart(board.first_review.delays),
            "backlog": charts.row_chart(board.backlog.chart),
            "call_backs": charts.column_chart(board.call_backs, what="Week of "),
            "questions": charts.column_chart(board.questions.written, what="Week of "),
        },
    )
