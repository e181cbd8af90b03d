"""Gunicorn's settings for the line (Procfile, scripts/run: `--config gunicorn.conf.py`).

The access log names the method, the path and the status, never the query string: the line's menu URLs
carry one (`?take=RE...`, a Twilio RecordingSid; `?try=2`), and no log of ours may hold a Twilio id of
an anonymous call (storage/anonymity.py). The path is logged as it arrived, still percent-encoded, so
`/ivr/x%0A...` cannot forge a second log line. No referer either (it would carry a query string too).

Gunicorn also reads this file by default from the directory it starts in, so the console's gunicorn
(started beside the line's by the Procfile and scripts/run) logs its requests the same way.
"""
from gunicorn.glogging import Logger


class AccessLogWithoutQuery(Logger):
    """Gunicorn's logger, with the request line (%(r)s) and the path (%(U)s) cut before any query string."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        path = (environ.get("RAW_URI") or "").split("?", 1)[0].split("#", 1)[0] or "-"
        atoms["r"] = f"{environ.get('REQUEST_METHOD')} {path} {environ.get('SERVER_PROTOCOL')}"
        atoms["U"], atoms["q"], atoms["f"] = path, "-", "-"
        return atoms


logger_class = AccessLogWithoutQuery
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(a)s"'
