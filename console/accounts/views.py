"""Admins' pages: invite, disable, reset second factors, end sessions. (Skeleton: to be built.)"""
from __future__ import annotations

from flask import Blueprint

from console.access import requires
from storage.models import Role

bp = Blueprint("accounts", __name__, url_prefix="/accounts")


@bp.get("/")
@requires(Role.ADMIN)
def index():
    return "accounts"
