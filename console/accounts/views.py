"""Admins' pages: the accounts table, invitations, disabling and enabling, second-factor resets, ending
sessions, roles. Every change is a POST with the CSRF token; console/accounts/services.py does the work
and writes the audit entry, and the view commits once."""
from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, current_app, flash, redirect, render_template, session, url_for
from sqlalchemy.exc import IntegrityError

from console import db_session
from console.access import current_opener, current_user, requires
from console.accounts import services
from console.accounts.forms import ROLE_LABELS, InviteForm, RoleForm
from console.accounts.services import AccountError, Invitation
from console.auth.forms import ConfirmForm
from storage.models import Role, User

bp = Blueprint("accounts", __name__, url_prefix="/accounts")


def _settings():
    return current_app.config["CONSOLE_SETTINGS"]


def _store():
    return current_app.extensions["console_sessions"]


def _valid_for() -> timedelta:
    return timedelta(hours=_settings().invite_hours)


def _first_error(form) -> str | None:
    return next((errors[0] for errors in form.errors.values() if errors), None)


def _index_page(invite_form: InviteForm | None = None, error: str | None = None, status: int = 200):
    settings = _settings()
    rows = services.list_accounts(db_session(), timedelta(minutes=settings.idle_minutes),
                                  timedelta(hours=settings.session_hours))
    return render_template("console/accounts/index.html", rows=rows, invite_form=invite_form or InviteForm(),
                           role_labels=ROLE_LABELS, error=error, me=current_user().id,
                           States=services.AccountState), status


def _link_page(invitation: Invitation, title: str):
    link = f"{_settings().public_url}/enrol/{invitation.token}"
    return render_template("console/accounts/link.html", title=title, user=invitation.user, link=link,
                           hours=_settings().invite_hours)


def _account(user_id: int) -> User:
    user = services.find_account(db_session(), user_id)
    if user is None:
        abort(404, description="There is no such account.")
    return user


def _confirmed() -> bool:
    # The global CSRF check has passed already; the form makes the intent explicit.
    return ConfirmForm().validate_on_submit()


@bp.get("/")
@requires(Role.ADMIN)
def index():
    return _index_page()


@bp.post("/invite")
@requires(Role.ADMIN)
def invite():
    form = InviteForm()
    if not form.validate_on_submit():
        return _index_page(form, _first_error(form), 400)
    new = form.parsed()
    db = db_session()
    try:
        invitation = services.invite_account(db, current_user(), current_opener().private_key, new.username,
                                             new.display_name, new.role, _valid_for())
        db.commit()
    except AccountError as error:
        db.rollback()
        return _index_page(form, str(error), 400)
    except IntegrityError:
        db.rollback()  # the same user name, invited by another admin a moment ago
        return _index_page(form, "That user name is taken.", 400)
    return _link_page(invitation, f"{invitation.user.display_name} is invited")


def _act(user_id: int, change, done: str):
    """Run one admin change on an account; a refusal is shown on the accounts page (400)."""
    if not _confirmed():
        return _index_page(error="Nothing was changed: reload the page and try again.", status=400)
    user = _account(user_id)
    db = db_session()
    try:
        result = change(db, user)
    except AccountError as error:
        db.rollback()
        return _index_page(error=str(error), status=400)
    db.commit()
    flash(done.format(user=user.username, result=result), "ok")
    return redirect(url_for("accounts.index"))


@bp.post("/<int:user_id>/disable")
@requires(Role.ADMIN)
def disable(user_id: int):
    return _act(user_id, lambda db, user: services.disable_account(db, current_user(), user, _store()),
                "{user} is disabled: their key copy is deleted and {result} session(s) ended.")


@bp.post("/<int:user_id>/enable")
@requires(Role.ADMIN)
def enable(user_id: int):
    if not _confirmed():
        return _index_page(error="Nothing was changed: reload the page and try again.", status=400)
    user = _account(user_id)
    db = db_session()
    was_disabled = user.disabled_at is not None
    try:
        invitation = services.enable_account(db, current_user(), user, current_opener().private_key, _valid_for())
    except AccountError as error:
        db.rollback()
        return _index_page(error=str(error), status=400)
    db.commit()
    return _link_page(invitation, f"{user.display_name} can enrol again" if was_disabled else
                      f"A new link for {user.display_name}")


@bp.post("/<int:user_id>/reset-second-factor")
@requires(Role.ADMIN)
def reset_second_factor(user_id: int):
    return _act(user_id, lambda db, user: services.reset_second_factor(db, current_user(), user, _store()),
                "{user}'s second factors are cleared; they set up a new one at their next sign-in. "
                "{result} session(s) ended.")


@bp.post("/<int:user_id>/end-sessions")
@requires(Role.ADMIN)
def end_sessions(user_id: int):
    return _act(user_id, lambda db, user: services.end_sessions(db, current_user(), user, _store(), session.row_id),
                "{result} session(s) of {user} ended.")


@bp.post("/<int:user_id>/role")
@requires(Role.ADMIN)
def role(user_id: int):
    form = RoleForm()
    if not form.validate_on_submit():
        return _index_page(error="Choose one of the roles.", status=400)
    new_role = form.parsed()
    return _act(user_id, lambda db, user: services.change_role(db, current_user(), user, new_role),
                "{user} is now " + new_role.value + ".")
