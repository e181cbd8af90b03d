"""A tiny hotline-shaped Flask app for testing the simulator (not the real hotline).

Every route checks X-Twilio-Signature with twilio's RequestValidator against the PUBLIC URL
(never request.url), and keeps a log of what it received so tests can look at the parameters.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import requests
from flask import Flask, Response, request
from twilio.request_validator import RequestValidator

PUBLIC = "https://hotline.example.org"
WELCOME = (
    "Welcome to the hotline. If you are in immediate danger, hang up and call 999. "
    "Press 1 to make a report. Press 2 to hear about us."
)


@dataclass
class Received:
    path: str
    method: str
    params: dict[str, str]
    headers: dict[str, str]
    url: str  # request.url as the app saw it
    signature_ok: bool


@dataclass
class ToyState:
    public_base_url: str
    auth_token: str
    received: list[Received] = field(default_factory=list)
    documents: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # name -> (body, status, content type)
    api_results: list[tuple[str, int]] = field(default_factory=list)  # (what, status) of calls to Twilio's API

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    @property
    def bad_signatures(self) -> list[Received]:
        return [r for r in self.received if not r.signature_ok]

    def serve(self, name: str, body: str, status: int = 200, content_type: str = "text/xml") -> str:
        """Make /ivr/t/<name> answer with ``body``; returns the path."""
        self.documents[name] = (body, status, content_type)
        return f"/ivr/t/{name}"


def twiml(*verbs: str) -> Response:
    body = '<?xml version="1.0" encoding="UTF-8"?><Response>' + "".join(verbs) + "</Response>"
    return Response(body, content_type="text/xml")


def make_toy_app(public_base_url: str, account_sid: str, auth_token: str, *, twilio_api_base: str = "https://api.twilio.com", fetch_recordings: bool = False) -> Flask:
    app = Flask("toy_hotline")
    state = ToyState(public_base_url.rstrip("/"), auth_token)
    app.extensions["toy"] = state
    app.config["HOTLINE_SETTINGS"] = SimpleNamespace(
        public_base_url=public_base_url, twilio_account_sid=account_sid, twilio_auth_token=auth_token, twilio_api_base=twilio_api_base
    )

    @app.before_request
    def check_signature():
        query = request.query_string.decode()
        public_url = state.public_base_url + request.path + (f"?{query}" if query else "")
        params = request.form if request.method == "POST" else {}
        ok = RequestValidator(auth_token).validate(public_url, params, request.headers.get("X-Twilio-Signature", ""))
        merged = dict(request.args.items()) | dict(request.form.items())
        headers = {key: value for key, value in request.headers.items()}
        state.received.append(Received(request.path, request.method, merged, headers, request.url, ok))
        if not ok:
            return Response("bad signature", status=403)

    @app.route("/ivr/voice", methods=["POST"])
    def voice():
        if request.args.get("retry"):
            return twiml(f'<Gather numDigits="1" action="/ivr/menu" timeout="4"><Say>{WELCOME}</Say></Gather>', "<Say>Goodbye.</Say>")
        return twiml(
            f'<Gather numDigits="1" action="/ivr/menu" timeout="4"><Say voice="alice" language="en-GB">{WELCOME}</Say></Gather>',
            "<Say>We did not receive a choice.</Say>",
            "<Redirect>/ivr/voice?retry=1</Redirect>",
        )

    @app.route("/ivr/menu", methods=["POST"])
    def menu():
        choice = request.form.get("Digits")
        if choice == "1":
            return twiml(
                "<Say>Please describe what happened after the beep. Press hash when you are done.</Say>",
                '<Record action="/ivr/recorded" finishOnKey="#" maxLength="30" timeout="5" '
                'recordingStatusCallback="/ivr/recording-status" recordingStatusCallbackEvent="completed absent"/>',
                "<Say>We did not get a recording.</Say>",
                "<Redirect>/ivr/voice?retry=1</Redirect>",
            )
        if choice == "2":
            return twiml("<Say>We are an independent hotline.</Say>", '<Redirect method="GET">/ivr/about?lang=en</Redirect>')
        return twiml("<Say>Sorry, that is not an option.</Say>", "<Redirect>/ivr/voice</Redirect>")

    @app.route("/ivr/about", methods=["GET"])
    def about():
        return twiml('<Pause length="2"/>', "<Say>Thank you for calling. Goodbye.</Say>", "<Hangup/>")

    @app.route("/ivr/recorded", methods=["POST"])
    def recorded():
        return twiml("<Say>Thank you, your report is saved.</Say>", "<Hangup/>")

    @app.route("/ivr/recording-status", methods=["POST"])
    def recording_status():
        if fetch_recordings and request.form.get("RecordingStatus") == "completed":
            settings = app.config["HOTLINE_SETTINGS"]
            url = request.form["RecordingUrl"]
            assert url.startswith(settings.twilio_api_base), "only fetch recordings from Twilio's API"
            auth = (settings.twilio_account_sid, settings.twilio_auth_token)
            got = requests.get(url + ".wav", auth=auth, timeout=5)
            state.api_results.append(("download", got.status_code))
            if got.status_code == 200:
                gone = requests.delete(url + ".json", auth=auth, timeout=5)
                state.api_results.append(("delete", gone.status_code))
        return Response(status=204)

    @app.route("/ivr/status", methods=["POST"])
    def status():
        return Response(status=204)

    @app.route("/ivr/t/<name>", methods=["GET", "POST"])
    def served(name):
        body, status, content_type = state.documents[name]
        return Response(body, status=status, content_type=content_type)

    return app
