"""Debian's headless Chromium through its own chromedriver, and its virtual WebAuthn authenticator."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # tests may run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # nothing but our own servers on the wire
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",  # play() from a test's click is enough either way
    "--window-size=1400,1000",
    # WebAuthn needs a host name, so the console is addressed as localhost; pin it to the IPv4 address
    # the servers listen on rather than let Chromium try ::1 first.
    "--host-resolver-rules=MAP localhost 127.0.0.1",
)


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for binary, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not binary.exists():
            return f"{binary} is missing: `scripts/setup --test` installs it (apt-get install {package})"
    return None


class Browser:
    """One person's Chromium, with a fresh profile of its own that is removed when it closes."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="hotline-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        self.driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
        self.driver.set_page_load_timeout(30)
        self.authenticator_id: str | None = None

    def add_security_key(self) -> str:
        """A virtual USB security key (CTAP2, resident keys, user verification that always succeeds)."""
        self.driver.execute_cdp_cmd("WebAuthn.enable", {})
        result = self.driver.execute_cdp_cmd("WebAuthn.addVirtualAuthenticator", {"options": {
            "protocol": "ctap2",
            "transport": "usb",
            "hasResidentKey": True,
            "hasUserVerification": True,
            "isUserVerified": True,
        }})
        self.authenticator_id = result["authenticatorId"]
        return self.authenticator_id

    def credentials(self) -> list[dict]:
        """What the virtual key holds (one entry per registered credential)."""
        assert self.authenticator_id, "no virtual security key in this browser"
        result = self.driver.execute_cdp_cmd("WebAuthn.getCredentials", {"authenticatorId": self.authenticator_id})
        return result["credentials"]

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)
