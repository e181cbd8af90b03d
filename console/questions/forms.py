"""The question form, checked before any service sees it. Messages quote nothing typed."""
from __future__ import annotations

from werkzeug.datastructures import MultiDict

from console.cases.forms import FormError, _required_text
from console.questions.services import MAX_CHARS


def parse_question_form(form: MultiDict) -> str:
    return _required_text(form, "text", MAX_CHARS, "Write the question to ask the caller.",
                          f"A question is at most {MAX_CHARS} characters: the caller hears it, they cannot read it.")


__all__ = ["FormError", "parse_question_form"]
