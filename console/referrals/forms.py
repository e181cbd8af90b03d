"""The referral page's and the forces page's forms, checked into small values before a service sees them.
Messages quote nothing typed: a summary is report content, and messages may travel in the session."""
from __future__ import annotations

import re
from dataclasses import dataclass

from werkzeug.datastructures import MultiDict

from console.cases.forms import FormError, _required_text, _text
from console.referrals.services import FORCE_NAME_MAX_CHARS, SUMMARY_MAX_CHARS, ExportChoices

_WORD = re.compile(r"^(\d{1,16}):(\d{1,6})$")  # "<take id>:<word index>", as the checkboxes send it
_VERSION_FIELD = re.compile(r"^version-(\d{1,16})$")
MAX_REDACTIONS = 20_000


def _flag(form: MultiDict, name: str) -> bool:
    return form.get(name, "") in ("1", "on", "yes", "true")


def _whole_number(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 16 else None


def parse_export_form(form: MultiDict) -> ExportChoices:
    force_id = _whole_number(form.get("force", ""))
    if force_id is None:
        raise FormError("Choose the force the referral goes to.")
    summary = _required_text(form, "summary", SUMMARY_MAX_CHARS, "Write a summary for the force first.",
                             f"A summary is at most {SUMMARY_MAX_CHARS:,} characters; nothing was exported.")
    chosen = form.getlist("redact")
    if len(chosen) > MAX_REDACTIONS:
        raise FormError(f"At most {MAX_REDACTIONS:,} words can be redacted in one package.")
    redact = set()
    for value in chosen:
        match = _WORD.match(value)
        if match is None:
            raise FormError("The form was not understood; reload the page and try again.")
        redact.add((int(match.group(1)), int(match.group(2))))
    versions = {}
    for name in form.keys():
        match = _VERSION_FIELD.match(name)
        if match:
            version = _whole_number(form.get(name, ""))
            if version is None:
                raise FormError("The form was not understood; reload the page and try again.")
            versions[int(match.group(1))] = version
    return ExportChoices(force_id, summary, frozenset(redact), versions, include_audio=_flag(form, "audio"),
                         disguise=_flag(form, "disguise"), encrypt=_flag(form, "encrypt"))


@dataclass(frozen=True)
class NewForce:
    name: str
    recipient: str | None  # checked by services.checked_recipient


def parse_force_form(form: MultiDict) -> NewForce:
    name = _required_text(form, "name", FORCE_NAME_MAX_CHARS, "Give the force's name.",
                          f"A force's name is at most {FORCE_NAME_MAX_CHARS} characters.")
    if "\n" in name:
        raise FormError("A force's name is one line.")
    recipient = _text(form, "recipient")
    return NewForce(name, recipient or None)


def choices_as_sent(form: MultiDict) -> ExportChoices:
    """What a refused form asked for, as far as it can be read, so the page shows it again as the handler
    left it (their ticks, their summary) rather than starting over."""
    matches = (_WORD.match(value) for value in form.getlist("redact")[:MAX_REDACTIONS])
    redact = frozenset((int(m.group(1)), int(m.group(2))) for m in matches if m)
    return ExportChoices(_whole_number(form.get("force", "")) or 0, _text(form, "summary")[:SUMMARY_MAX_CHARS], redact,
                         include_audio=_flag(form, "audio"), disguise=_flag(form, "disguise"),
                         encrypt=_flag(form, "encrypt"))
