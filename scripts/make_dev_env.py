"""Creates local development settings and keys on first run, and says where they are.

Development only: the key passphrase is written beside the key so the simulator and `decrypt` work
without typing it. A real deployment keeps the private key and its passphrase off this machine.
"""
from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage.crypto import write_key_pair  # noqa: E402


def main(data_dir: Path, port: str) -> None:
    env_file = data_dir / "dev.env"
    if env_file.exists():
        print(f"development settings: {env_file}")
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    passphrase = secrets.token_urlsafe(24)
    write_key_pair(data_dir / "keys", passphrase)
    values = {
        "HOTLINE_ENV": "development",
        "HOTLINE_DATA_DIR": str(data_dir),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "TWILIO_ACCOUNT_SID": "AC" + secrets.token_hex(16),
        "TWILIO_AUTH_TOKEN": secrets.token_hex(16),
        "HOTLINE_SECRET_KEY": secrets.token_urlsafe(48),
        "HOTLINE_KEY_PASSPHRASE": passphrase,
        "PORT": port,
    }
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.writelines(f"{name}={value}\n" for name, value in values.items())
    print(f"created development settings: {env_file}")
    print(f"created a key pair: {data_dir / 'keys'} (hotline.pub, hotline.key)")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), sys.argv[2] if len(sys.argv) > 2 else "5000")
