"""Inbox, search, the case page and triage. (Skeleton: to be built.)"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("cases", __name__)


@bp.get("/inbox")
def inbox():
    return "inbox"


@bp.route("/search", methods=["GET", "POST"])
def search():
    return "search"
