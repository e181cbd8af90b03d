"""Decrypted audio (with Range) and transcripts, from memory only. (Skeleton: to be built.)"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("media", __name__, url_prefix="/media")
