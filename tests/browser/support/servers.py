"""A WSGI app served over real HTTP on 127.0.0.1, in a thread of the test process."""
from __future__ import annotations

import threading

from werkzeug.serving import WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # pytest shows what matters; every GET would drown it
        pass


class LiveServer:
    """`with LiveServer(app, port) as server:` serves until the block ends. Threaded, because a page and
    its audio's Range requests arrive at once."""

    def __init__(self, app, port: int, host: str = "127.0.0.1"):
        self.server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"live-server-{self.port}", daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
