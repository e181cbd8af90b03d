"""The console's URL map as test cells: every rule (but static files) with each of its methods, its URL
built from real argument values, so a route added later is covered by the matrix tests at once."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from flask import Flask
from werkzeug.routing import IntegerConverter, Rule

IGNORED_METHODS = {"HEAD", "OPTIONS"}
UNKNOWN_INT, UNKNOWN_TEXT = 987654, "unknown-value"


@dataclass(frozen=True)
class Route:
    endpoint: str
    method: str
    path: str
    rule: str

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.endpoint})"


def console_routes(app: Flask, values: Mapping[str, object]) -> list[Route]:
    """Every route, with `values` for the arguments it names (a real case reference, recording id,
    user id); an argument with no real value gets an unknown one, whose answer is checked all the same."""
    adapter = app.url_map.bind("localhost")
    routes = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        if rule.endpoint == "static":
            continue
        arguments = {name: values.get(name, _unknown(rule, name)) for name in rule.arguments}
        for method in sorted(rule.methods - IGNORED_METHODS):
            path = adapter.build(rule.endpoint, arguments, method=method)
            routes.append(Route(rule.endpoint, method, path, rule.rule))
    return routes


def _unknown(rule: Rule, name: str) -> object:
    return UNKNOWN_INT if isinstance(rule._converters[name], IntegerConverter) else UNKNOWN_TEXT
