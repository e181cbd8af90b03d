"""The sign-in, enrolment and account forms (Flask-WTF: each carries the CSRF token), and the small values
views hand to the services once a form has been checked."""
from __future__ import annotations

from dataclasses import dataclass

from flask import request
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from console.accounts.services import MIN_PASSWORD_LENGTH

LONGEST_PASSWORD = 1024


class ConsoleForm(FlaskForm):
    """A form that reads only posted form fields. Flask-WTF would also read a JSON body, where a list
    breaks it and an object puts non-strings into fields: garbage must get a message, not a 500.
    Other owners' forms can derive from this too."""

    def __init__(self, *args, **kwargs):
        if not args and "formdata" not in kwargs:
            kwargs["formdata"] = request.form if request.method in ("POST", "PUT", "PATCH", "DELETE") else None
        super().__init__(*args, **kwargs)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


class SignInForm(ConsoleForm):
    # No length hints in the messages: the page must say the same thing whatever was wrong.
    username = StringField("User name", validators=[DataRequired("Enter your user name."), Length(max=128)],
                           render_kw={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"})
    password = PasswordField("Password", validators=[DataRequired("Enter your password."),
                                                     Length(max=LONGEST_PASSWORD)],
                             render_kw={"autocomplete": "current-password"})

    def parsed(self) -> Credentials:
        return Credentials(self.username.data.strip(), self.password.data)


class CodeForm(ConsoleForm):
    code = StringField("Code from your authenticator app",
                       validators=[DataRequired("Enter the 6-digit code."), Length(max=16, message="A code has 6 digits.")],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9 ]*",
                                  "maxlength": "16"})

    def parsed(self) -> str:
        return self.code.data.strip()


_PASSWORD_RULE = f"At least {MIN_PASSWORD_LENGTH} characters, not containing your user name."


class EnrolForm(ConsoleForm):
    password = PasswordField("Choose a password", description=_PASSWORD_RULE,
                             validators=[DataRequired("Choose a password."),
                                         Length(max=LONGEST_PASSWORD, message="That password is too long.")],
                             render_kw={"autocomplete": "new-password"})
    confirm = PasswordField("The same password again",
                            validators=[DataRequired("Type the password a second time."),
                                        EqualTo("password", "The two passwords differ.")],
                            render_kw={"autocomplete": "new-password"})

    def parsed(self) -> str:
        return self.password.data


@dataclass(frozen=True)
class PasswordChange:
    current: str
    new: str


class ChangePasswordForm(ConsoleForm):
    current = PasswordField("Current password", validators=[DataRequired("Enter your current password."),
                                                            Length(max=LONGEST_PASSWORD)],
                            render_kw={"autocomplete": "current-password"})
    new = PasswordField("New password", description=_PASSWORD_RULE,
                        validators=[DataRequired("Choose a new password."),
                                    Length(max=LONGEST_PASSWORD, message="That password is too long.")],
                        render_kw={"autocomplete": "new-password"})
    confirm = PasswordField("The new password again",
                            validators=[DataRequired("Type the new password a second time."),
                                        EqualTo("new", "The two new passwords differ.")],
                            render_kw={"autocomplete": "new-password"})

    def parsed(self) -> PasswordChange:
        return PasswordChange(self.current.data, self.new.data)


class ConfirmForm(ConsoleForm):
    """A button that changes something: only the CSRF token (sign-out, removing a key)."""


LONGEST_KEY_LABEL = 64


def parse_key_label(value) -> str | None:
    """A security key's label from the JSON body: 1 to 64 printable characters, else None."""
    if not isinstance(value, str):
        return None
    label = " ".join(value.split())
    if not label or len(label) > LONGEST_KEY_LABEL or not label.isprintable():
        return None
    return label
