"""Signing in and out, enrolment by link, and a person's own account (password, security keys).

Each view checks, parses, asks console/auth/services.py and renders. The session store changes the
session's privilege (a new token at each step); the view commits once, after the audit entries.
"""
from __future__ import annotations

from enum import Enum

from flask import Blueprint, Response, current_app, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms import ValidationError

from console import db_session
from console.access import current_user, public, second_factor_step
from console.accounts.services import AccountError, find_invitation
from console.auth import services, totp, webauthn
from console.auth.forms import ChangePasswordForm, CodeForm, ConfirmForm, EnrolForm, SignInForm, parse_key_label
from console.auth.services import AlreadySetUp, PasswordAccepted, Refused
from console.auth.webauthn import Challenge, RelyingParty, WebAuthnRefused
from console.keys import KeyUnwrapError
from storage.models import User

bp = Blueprint("auth", __name__)

# The same words whatever went wrong, so the page cannot tell anyone which user names exist.
SIGN_IN_REFUSED = ("That user name and password did not work. After several wrong tries an account is "
                   "paused for a while; if you are stuck, ask an admin.")
WRONG_CODE = "That code did not work. Codes change every 30 seconds, and each one works only once."
# Keys of the server-side session dict.
SIGN_IN_CHALLENGE = "webauthn_sign_in"
REGISTER_CHALLENGE = "webauthn_register"
SETUP_SECRET = "totp_setup"


class Notice(str, Enum):
    """Why someone was sent back to the sign-in page (a query value: the session is gone by then)."""

    SIGNED_OUT = "signed-out"
    STOPPED = "stopped"


NOTICES = {
    Notice.SIGNED_OUT: "You have signed out.",
    Notice.STOPPED: "Too many wrong tries: sign-in was stopped. Try again later.",
}


@bp.record_once
def _sign_out_checks_its_own_token(state):
    # Signing out after the session ran out must show "signed out", not a CSRF error: the view checks
    # the token itself whenever there is a live session to end.
    state.app.extensions["csrf"].exempt(f"{__name__}.sign_out")


def _notice() -> str | None:
    try:
        return NOTICES[Notice(request.args.get("notice", ""))]
    except ValueError:
        return None


def _settings():
    return current_app.config["CONSOLE_SETTINGS"]


def _store():
    return current_app.extensions["console_sessions"]


def _rp() -> RelyingParty:
    return RelyingParty.from_settings(_settings())


def _json_error(message: str, status: int = 400):
    return jsonify(error=message), status


def _first_error(form) -> str | None:
    for errors in form.errors.values():
        if errors:
            return errors[0]
    return None


# --- the password step -------------------------------------------------------------------------------

@bp.route("/sign-in", methods=["GET", "POST"])
@public
def sign_in():
    if request.method == "GET" and session.is_signed_in:
        return redirect(url_for("cases.inbox"))
    form = SignInForm()
    if request.method == "GET":
        return render_template("console/auth/sign_in.html", form=form, notice=_notice())
    if not form.validate_on_submit():
        return render_template("console/auth/sign_in.html", form=form, error=_first_error(form)), 400
    credentials = form.parsed()
    db = db_session()
    outcome = services.check_password(db, credentials.username, credentials.password, _settings().kdf,
                                      current_app.extensions["console"].periods)
    if isinstance(outcome, Refused):
        db.commit()  # the failure's audit entry and the account's counter
        form.password.data = ""
        return render_template("console/auth/sign_in.html", form=form, error=SIGN_IN_REFUSED)
    return _password_accepted(db, outcome)


def _password_accepted(db, outcome: PasswordAccepted):
    _store().password_accepted(db, session, outcome.user, outcome.private_key)
    db.commit()
    if outcome.next_step is services.NextStep.SET_UP_SECOND_FACTOR:
        return redirect(url_for("auth.set_up_second_factor"))
    return redirect(url_for("auth.second_factor"))


def _signed_in(db) -> bool:
    """Complete the session after an accepted second factor. False if the password step had been
    replaced meanwhile (another tab signed in or out): nothing is committed then."""
    try:
        _store().second_factor_accepted(db, session)
    except PermissionError:
        db.rollback()
        return False
    db.commit()
    return True


def _stop_pending_sign_in(db):
    """The account locked during the second factor: the password has to be given again, later."""
    _store().sign_out(db, session)
    db.commit()
    return url_for("auth.sign_in", notice=Notice.STOPPED.value)


# --- the second factor ----------------------------------------------------------------------------

@bp.route("/sign-in/second-factor", methods=["GET", "POST"])
@second_factor_step
def second_factor():
    user: User = g.pending_user
    if not user.has_second_factor:
        return redirect(url_for("auth.set_up_second_factor"))
    form = CodeForm()
    status, error = 200, None
    if request.method == "POST":
        if not form.validate_on_submit():
            status, error = 400, _first_error(form)
        else:
            db = db_session()
            outcome = services.accept_totp(db, user.id, form.parsed(), _settings().secret_key)
            if isinstance(outcome, User):
                return redirect(url_for("cases.inbox") if _signed_in(db) else url_for("auth.sign_in"))
            db.commit()
            if outcome.locked:
                return redirect(_stop_pending_sign_in(db))
            error = WRONG_CODE
        form.code.data = ""
    return render_template("console/auth/second_factor.html", form=form, error=error, user=user,
                           has_security_keys=bool(user.credentials)), status


@bp.post("/sign-in/webauthn/options")
@second_factor_step
def webauthn_options():
    user: User = g.pending_user
    if not user.credentials:
        return _json_error("This account has no security key: use a code from your app.")
    options_json, challenge = webauthn.assertion_options(_rp(), user)
    session[SIGN_IN_CHALLENGE] = challenge.to_session()
    return Response(options_json, mimetype="application/json")


@bp.post("/sign-in/webauthn/verify")
@second_factor_step
def webauthn_verify():
    user: User = g.pending_user
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("credential"), dict):
        return _json_error("Send the security key's answer as JSON: {\"credential\": {...}}.")
    # Each challenge is good for one answer, right or wrong.
    challenge = Challenge.from_session(session.pop(SIGN_IN_CHALLENGE, None), user.id)
    if challenge is None:
        return _json_error("The request to your security key had expired. Try again.")
    db = db_session()
    outcome = services.accept_security_key(db, user.id, _rp(), challenge, body["credential"])
    if isinstance(outcome, User):
        if not _signed_in(db):
            return _json_error("Sign in again: this sign-in was replaced.", 409)
        return jsonify(redirect=url_for("cases.inbox"))
    db.commit()
    if outcome.locked:
        return jsonify(error=NOTICES[Notice.STOPPED], redirect=_stop_pending_sign_in(db)), 403
    return _json_error("Your security key was not accepted. Try again, or use a code from your app.")


@bp.route("/sign-in/set-up-second-factor", methods=["GET", "POST"])
@second_factor_step
def set_up_second_factor():
    user: User = g.pending_user
    if user.has_second_factor:
        # A password alone never replaces a second factor; only an admin's reset clears one.
        return redirect(url_for("auth.second_factor"))
    secret = _setup_secret(user)
    form = CodeForm()
    status, error = 200, None
    if request.method == "POST":
        if not form.validate_on_submit():
            status, error = 400, _first_error(form)
        else:
            db = db_session()
            try:
                outcome = services.set_up_totp(db, user.id, secret, form.parsed(), _settings().secret_key)
            except AlreadySetUp:
                db.rollback()
                return redirect(url_for("auth.second_factor"))
            if outcome is not None:
                session.pop(SETUP_SECRET, None)  # before the session row is copied at the next step
                return redirect(url_for("cases.inbox") if _signed_in(db) else url_for("auth.sign_in"))
            db.rollback()
            status, error = 400, "That code did not match. Check that the phone's clock is right, and try the newest code."
        form.code.data = ""
    qr = totp.qr_data_uri(totp.provisioning_uri(secret, user.username))
    return render_template("console/auth/set_up_second_factor.html", form=form, error=error, user=user,
                           secret=secret, qr=qr), status


def _setup_secret(user: User) -> str:
    """The secret being set up, kept in the server-side session until confirmed (so reloading the page
    does not change the code already scanned), and only for this account."""
    stored = session.get(SETUP_SECRET)
    if isinstance(stored, dict) and stored.get("user_id") == user.id and isinstance(stored.get("secret"), str):
        return stored["secret"]
    secret = totp.new_secret()
    session[SETUP_SECRET] = {"user_id": user.id, "secret": secret}
    return secret


# --- enrolment by link ----------------------------------------------------------------------------

def _link_gone():
    return render_template("console/error.html", title="Link not valid",
                           message="This link has expired or was already used. Ask an admin for a new one."), 404


@bp.route("/enrol/<token>", methods=["GET", "POST"])
@public
def enrol(token: str):
    db = db_session()
    if request.method == "GET":
        user = find_invitation(db, token)
        return _link_gone() if user is None else render_template("console/auth/enrol.html", form=EnrolForm(), user=user)
    user = services.open_invitation(db, token)
    if user is None:
        return _link_gone()
    form = EnrolForm()
    if not form.validate_on_submit():
        return render_template("console/auth/enrol.html", form=form, user=user, error=_first_error(form)), 400
    try:
        private_key = services.enrol(db, user, token, form.parsed(), _settings().kdf,
                                     current_app.extensions["console"].periods)
    except AccountError as error:
        db.rollback()
        return render_template("console/auth/enrol.html", form=form, user=user, error=str(error)), 400
    except KeyUnwrapError:
        db.rollback()
        return _link_gone()
    _store().password_accepted(db, session, user, private_key)
    db.commit()
    return redirect(url_for("auth.set_up_second_factor"))


# --- signing out -----------------------------------------------------------------------------------

@bp.post("/sign-out")
@public
def sign_out():
    if session.token is None:
        # No live session (never one, or it ran out): nothing to end, and no token to check.
        session.drop_cookie = True
        return redirect(url_for("auth.sign_in", notice=Notice.SIGNED_OUT.value))
    try:
        validate_csrf(request.form.get("csrf_token") or request.headers.get("X-CSRFToken"))
    except ValidationError as error:
        raise CSRFError(str(error)) from None
    db = db_session()
    if session.is_signed_in:
        services.signed_out(db, session.user_id)
    _store().sign_out(db, session)
    db.commit()
    return redirect(url_for("auth.sign_in", notice=Notice.SIGNED_OUT.value))


# --- a person's own account -----------------------------------------------------------------------

def _account_page(password_form: ChangePasswordForm | None = None, error: str | None = None, status: int = 200):
    user = current_user()
    return render_template("console/auth/account.html", user=user, password_form=password_form or ChangePasswordForm(),
                           confirm_form=ConfirmForm(), error=error, keys=user.credentials,
                           has_totp=user.totp_secret_sealed is not None), status


@bp.get("/account")
def account():
    return _account_page()


@bp.post("/account/password")
def change_password():
    form = ChangePasswordForm()
    if not form.validate_on_submit():
        return _account_page(form, _first_error(form), 400)
    change = form.parsed()
    db = db_session()
    try:
        ended = services.change_own_password(db, current_user(), change.current, change.new, _settings().kdf,
                                             _store(), keep_row_id=session.row_id)
    except AccountError as error:
        db.rollback()
        return _account_page(form, str(error), 400)
    db.commit()
    others = f" {ended} other session{'s' if ended != 1 else ''} ended." if ended else ""
    flash("Your password was changed." + others, "ok")
    return redirect(url_for("auth.account"))


@bp.post("/account/security-keys/<int:key_id>/remove")
def remove_security_key(key_id: int):
    db = db_session()
    try:
        services.remove_security_key(db, current_user(), key_id)
    except AccountError as error:
        db.rollback()
        flash(str(error), "error")
        return redirect(url_for("auth.account"))
    db.commit()
    flash("The security key was removed.", "ok")
    return redirect(url_for("auth.account"))


@bp.post("/account/webauthn/register/options")
def webauthn_register_options():
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or parse_key_label(body.get("label")) is None:
        return _json_error("Give the key a name of up to 64 characters, e.g. \"Blue key\".")
    options_json, challenge = webauthn.attestation_options(_rp(), current_user(), _settings().secret_key)
    session[REGISTER_CHALLENGE] = challenge.to_session()
    return Response(options_json, mimetype="application/json")


@bp.post("/account/webauthn/register/verify")
def webauthn_register_verify():
    user = current_user()
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("credential"), dict):
        return _json_error("Send the security key's answer as JSON: {\"label\": ..., \"credential\": {...}}.")
    label = parse_key_label(body.get("label"))
    if label is None:
        return _json_error("Give the key a name of up to 64 characters, e.g. \"Blue key\".")
    challenge = Challenge.from_session(session.pop(REGISTER_CHALLENGE, None), user.id)
    if challenge is None:
        return _json_error("The request to your security key had expired. Try again.")
    db = db_session()
    try:
        services.add_security_key(db, user, _rp(), challenge, body["credential"], label)
    except WebAuthnRefused as error:
        db.rollback()
        return _json_error(str(error))
    db.commit()
    flash(f"Security key \u201c{label}\u201d added. You can use it to sign in.", "ok")
    return jsonify(redirect=url_for("auth.account"))
