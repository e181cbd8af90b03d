"""Creates local development settings and keys on first run, and says where they are.

Development only: the key passphrase is written beside the key so the simulator, `decrypt` and the
console's `create-admin` work without typing it. A real deployment keeps the private key and its
passphrase off this machine.

    python scripts/make_dev_env.py DATA_DIR [PORT] [CONSOLE_PORT]

A dev.env written before the console existed gets the console's settings appended; nothing already
in it is changed.
"""
from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage.crypto import write_key_pair  # noqa: E402
from storage.files import private_directory  # noqa: E402


def console_values(console_port: str) -> dict[str, str]:
    return {
        # Its own secret, never the PIN key: the console refuses to start if they are the same.
        "CONSOLE_SECRET_KEY": secrets.token_urlsafe(48),
        "CONSOLE_PORT": console_port,
        # localhost, not 127.0.0.1: security keys (WebAuthn) need a host name.
        "CONSOLE_PUBLIC_URL": f"http://localhost:{console_port}",
    }


def _names_in(env_file: Path) -> set[str]:
    return {line.split("=", 1)[0].strip() for line in env_file.read_text().splitlines() if "=" in line}


def main(data_dir: Path, port: str, console_port: str) -> None:
    env_file = data_dir / "dev.env"
    if env_file.exists():
        missing = {name: value for name, value in console_values(console_port).items() if name not in _names_in(env_file)}
        if missing:
            ends_cleanly = env_file.read_bytes().endswith(b"\n") or env_file.stat().st_size == 0
            with env_file.open("a") as handle:
                if not ends_cleanly:
                    handle.write("\n")  # or the first name would run on from the file's last value
                handle.writelines(f"{name}={value}\n" for name, value in missing.items())
            print(f"added the console's settings ({', '.join(missing)}) to {env_file}")
        print(f"development settings: {env_file}")
        return
    private_directory(data_dir)  # 0700
    passphrase = secrets.token_urlsafe(24)
    write_key_pair(data_dir / "keys", passphrase)
    values = {
        "HOTLINE_ENV": "development",
        "HOTLINE_DATA_DIR": str(data_dir),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "TWILIO_ACCOUNT_SID": "AC" + secrets.token_hex(16),
        "TWILIO_AUTH_TOKEN": secrets.token_hex(16),
        "HOTLINE_PIN_KEY": secrets.token_urlsafe(48),  # the line's web process only
        "HOTLINE_KEY_PASSPHRASE": passphrase,
        "PORT": port,
        **console_values(console_port),
    }
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.writelines(f"{name}={value}\n" for name, value in values.items())
    print(f"created development settings: {env_file}")
    print(f"created a key pair: {data_dir / 'keys'} (hotline.pub, hotline.key)")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if not 1 <= len(arguments) <= 3:
        sys.exit("usage: make_dev_env.py DATA_DIR [PORT] [CONSOLE_PORT]")
    main(Path(arguments[0]).resolve(), arguments[1] if len(arguments) > 1 else "5000",
         arguments[2] if len(arguments) > 2 else "5001")
