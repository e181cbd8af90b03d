"""Signing in and out, enrolment by link, and a person's own account. (Skeleton: to be built.)"""
from __future__ import annotations

from flask import Blueprint

from console.access import public

bp = Blueprint("auth", __name__)


@bp.route("/sign-in", methods=["GET", "POST"])
@public
def sign_in():
    return "sign in"


@bp.post("/sign-out")
@public
def sign_out():
    return "signed out"


@bp.get("/account")
def account():
    return "account"
