"""Who may reach which view. Deny by default: a view is for signed-in handlers and up unless it says
otherwise, and tests/console/test_authorisation.py checks every route in the URL map against this.

    @public                 anyone (sign-in, enrolment by link, the signed-out page)
    @second_factor_step     only between a right password and the second factor
    @requires(Role.X)       signed in, with role X or above
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable

from flask import current_app, g, session as browser_session

from storage.models import Role, User


class Audience(str, Enum):
    PUBLIC = "public"
    SECOND_FACTOR = "second-factor"
    SIGNED_IN = "signed-in"


@dataclass(frozen=True)
class Policy:
    audience: Audience
    role: Role | None = None

    def describe(self) -> str:
        return self.role.value if self.role else self.audience.value


DEFAULT_POLICY = Policy(Audience.SIGNED_IN, Role.HANDLER)


def public(view: Callable) -> Callable:
    view.access_policy = Policy(Audience.PUBLIC)
    return view


def second_factor_step(view: Callable) -> Callable:
    view.access_policy = Policy(Audience.SECOND_FACTOR)
    return view


def requires(role: Role) -> Callable[[Callable], Callable]:
    def mark(view: Callable) -> Callable:
        view.access_policy = Policy(Audience.SIGNED_IN, role)
        return view

    return mark


def policy_of(endpoint: str | None) -> Policy:
    if endpoint is None:
        return DEFAULT_POLICY
    if endpoint == "static":
        return Policy(Audience.PUBLIC)
    view = current_app.view_functions.get(endpoint)
    return getattr(view, "access_policy", DEFAULT_POLICY)


def current_user() -> User:
    """The signed-in account, loaded by the guard for this request."""
    return g.user


def current_opener():
    """This handler's power to open sealed items, unwrapped from their session for this request only."""
    from console.keys import Opener

    opener = g.get("opener")
    if opener is None:
        console = current_app.extensions["console"]
        opener = Opener(browser_session.private_key(), console.blobs, console.periods)
        g.opener = opener
    return opener
