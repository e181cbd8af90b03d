"""What handlers send about cases, checked and turned into small values before any service sees it.

Each parser takes the raw query string or form (a MultiDict) and returns a dataclass, or raises
FormError with a message fit to show. Nothing here quotes what was typed back into a message: a note
or a reason is report content, and messages travel in the session.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from werkzeug.datastructures import MultiDict

from console.cases.services import (
    CATEGORY_LABELS,
    NOTE_MAX_CHARS,
    REASON_MAX_CHARS,
    Anonymity,
    AssigneeChoice,
    CaseStatus,
    InboxQuery,
    InboxSort,
)

MAX_PAGE = 100_000
SEARCH_MAX_CHARS = 200
SEARCH_MAX_WORDS = 12
NO_CATEGORY = "none"  # the filter value for cases whose caller chose no category


class FormError(ValueError):
    """The message is safe to show and quotes nothing the person typed."""


def _text(form: MultiDict, name: str) -> str:
    value = form.get(name, "")
    # Browsers send CRLF; a lone NUL or other control character is never meant.
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(ch for ch in value if ch in "\n\t" or ch >= " ").strip()


def _required_text(form: MultiDict, name: str, longest: int, missing: str, too_long: str) -> str:
    """A field that must be filled, up to `longest` characters; otherwise the form's own message."""
    value = _text(form, name)
    if not value:
        raise FormError(missing)
    if len(value) > longest:
        raise FormError(too_long)
    return value


def _choice(raw: str, enum_class, problems: list[str], what: str):
    if not raw:
        return None
    try:
        return enum_class(raw)
    except ValueError:
        problems.append(f"Unknown {what} ignored.")
        return None


# --- the inbox's filters (a GET: they carry no report content) ---------------------------------------

@dataclass(frozen=True)
class ParsedInbox:
    query: InboxQuery
    problems: list[str]


def parse_inbox_query(args: MultiDict) -> ParsedInbox:
    problems: list[str] = []
    status = _choice(args.get("status", ""), CaseStatus, problems, "status")
    anonymity = _choice(args.get("anonymity", ""), Anonymity, problems, "caller type")
    sort = _choice(args.get("sort", ""), InboxSort, problems, "sort order") or InboxSort.NEWEST

    category: str | None = args.get("category", "") or None
    if category == NO_CATEGORY:
        category = ""
    elif category is not None and category not in CATEGORY_LABELS:
        problems.append("Unknown category ignored.")
        category = None

    assignee: AssigneeChoice | int | None = None
    raw_assignee = args.get("assignee", "")
    if raw_assignee in (AssigneeChoice.ME.value, AssigneeChoice.UNASSIGNED.value):
        assignee = AssigneeChoice(raw_assignee)
    elif raw_assignee:
        if raw_assignee.isascii() and raw_assignee.isdigit() and len(raw_assignee) <= 9:
            assignee = int(raw_assignee)
        else:
            problems.append("Unknown assignee ignored.")

    page = 1
    raw_page = args.get("page", "")
    if raw_page:
        if raw_page.isascii() and raw_page.isdigit() and 1 <= len(raw_page) <= 6:
            page = max(1, min(int(raw_page), MAX_PAGE))
        else:
            problems.append("That page number was not understood; showing the first page.")

    query = InboxQuery(
        status=status, category=category, anonymity=anonymity, assignee=assignee,
        urgent_only=_flag(args, "urgent"), new_only=_flag(args, "new"), sort=sort, page=page,
    )
    return ParsedInbox(query, problems)


def _flag(args: MultiDict, name: str) -> bool:
    return args.get(name, "") in ("1", "on", "true", "yes")


def inbox_args(query: InboxQuery, **changes) -> dict[str, str]:
    """The query string for the inbox with some values changed (for links: pages, status counts)."""
    query = replace(query, **changes)
    args: dict[str, str] = {}
    if query.status is not None:
        args["status"] = query.status.value
    if query.category is not None:
        args["category"] = query.category or NO_CATEGORY
    if query.anonymity is not None:
        args["anonymity"] = query.anonymity.value
    if query.assignee is not None:
        args["assignee"] = query.assignee.value if isinstance(query.assignee, AssigneeChoice) else str(query.assignee)
    if query.urgent_only:
        args["urgent"] = "1"
    if query.new_only:
        args["new"] = "1"
    if query.sort is not InboxSort.NEWEST:
        args["sort"] = query.sort.value
    if query.page != 1:
        args["page"] = str(query.page)
    return args


# --- triage ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StatusChange:
    status: CaseStatus
    reason: str | None
    expected: CaseStatus | None  # the status the form was shown with, to catch two people at once


def parse_status_form(form: MultiDict) -> StatusChange:
    raw = form.get("status", "")
    try:
        status = CaseStatus(raw)
    except ValueError:
        raise FormError("Choose a status from the list.") from None
    expected = None
    if form.get("current"):
        try:
            expected = CaseStatus(form.get("current"))
        except ValueError:
            raise FormError("The form was not understood; reload the page and try again.") from None
    reason = _text(form, "reason")
    if len(reason) > REASON_MAX_CHARS:
        raise FormError(f"A reason is at most {REASON_MAX_CHARS:,} characters.")
    return StatusChange(status, reason or None, expected)


def parse_assignment_form(form: MultiDict) -> int | None:
    """An account's id, or None for nobody."""
    raw = form.get("assignee", "")
    if raw in ("", "nobody"):
        return None
    if raw.isascii() and raw.isdigit() and len(raw) <= 9:
        return int(raw)
    raise FormError("Choose a person from the list.")


def parse_urgent_form(form: MultiDict) -> bool:
    raw = form.get("urgent", "")
    if raw in ("1", "true", "on"):
        return True
    if raw in ("0", "false", "off"):
        return False
    raise FormError("The form was not understood; reload the page and try again.")


def parse_note_form(form: MultiDict) -> str:
    return _required_text(form, "text", NOTE_MAX_CHARS, "Write something in the note first.",
                          f"A note is at most {NOTE_MAX_CHARS:,} characters; nothing was saved.")


def parse_reveal_form(form: MultiDict) -> str:
    return _required_text(form, "reason", REASON_MAX_CHARS, "Say why you need the contact number; it is recorded.",
                          f"A reason is at most {REASON_MAX_CHARS:,} characters.")


# --- search ---------------------------------------------------------------------------------------

def parse_search_form(form: MultiDict) -> str:
    """The words to look for (a POST, so they never sit in a URL or an access log)."""
    from console.search import words_of

    q = _required_text(form, "q", SEARCH_MAX_CHARS, "Type one or more words to search for.",
                       f"Search for at most {SEARCH_MAX_CHARS} characters.")
    words = words_of(q)
    if not words:
        raise FormError("Type one or more words (letters or digits) to search for.")
    if len(words) > SEARCH_MAX_WORDS:
        raise FormError(f"Search for at most {SEARCH_MAX_WORDS} words.")
    return q


def parse_hold_form(form: MultiDict) -> str:
    """Placing or lifting a legal hold: the reason is sealed and recorded."""
    return _required_text(form, "reason", REASON_MAX_CHARS, "Give the reason for the legal hold; it is recorded.",
                          f"A reason is at most {REASON_MAX_CHARS:,} characters.")
