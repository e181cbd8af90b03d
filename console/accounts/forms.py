"""The admins' forms: inviting someone, changing a role. Buttons that only confirm an action use
console.auth.forms.ConfirmForm (the CSRF token alone)."""
from __future__ import annotations

from dataclasses import dataclass

from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from console.auth.forms import ConsoleForm
from storage.models import Role

ROLE_LABELS = {Role.HANDLER: "Handler", Role.SUPERVISOR: "Supervisor", Role.ADMIN: "Admin"}
ROLE_HINTS = {Role.HANDLER: "Handler", Role.SUPERVISOR: "Supervisor (also reads the audit trail)",
              Role.ADMIN: "Admin (also manages accounts)"}


@dataclass(frozen=True)
class NewAccount:
    username: str
    display_name: str
    role: Role


class InviteForm(ConsoleForm):
    username = StringField("User name", description="2 to 32 lower-case letters, digits, dots, dashes or underscores.",
                           validators=[DataRequired("Give a user name."), Length(max=64, message="That user name is too long.")],
                           render_kw={"autocapitalize": "none", "spellcheck": "false", "autocomplete": "off"})
    display_name = StringField("Name", description="As other handlers will see it.",
                               validators=[DataRequired("Give the person's name."),
                                           Length(max=128, message="Up to 128 characters.")],
                               render_kw={"autocomplete": "off"})
    role = SelectField("Role", choices=[SelectChoice(role.value, label) for role, label in ROLE_HINTS.items()],
                       default=Role.HANDLER.value, validate_choice=True)

    def parsed(self) -> NewAccount:
        return NewAccount(self.username.data, self.display_name.data, Role(self.role.data))


class RoleForm(ConsoleForm):
    role = SelectField("Role", choices=[SelectChoice(role.value, label) for role, label in ROLE_LABELS.items()],
                       validate_choice=True)

    def parsed(self) -> Role:
        return Role(self.role.data)
