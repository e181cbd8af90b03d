"""Supervisors read the audit trail of a case or of a person. (Skeleton: to be built.)"""
from __future__ import annotations

from flask import Blueprint

from console.access import requires
from storage.models import Role

bp = Blueprint("audit", __name__, url_prefix="/audit")


@bp.get("/")
@requires(Role.SUPERVISOR)
def trail():
    return "audit"
