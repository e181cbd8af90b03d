"""Create the hotline's key pair: `python -m storage.keygen --dir instance/keys`.

Runs without the app (the app cannot start before a public key exists). The passphrase comes from
HOTLINE_KEY_PASSPHRASE or is asked for twice; it is needed later only to decrypt.
"""
from __future__ import annotations

import os
from pathlib import Path

import click

from storage.crypto import KeyFileError, load_public_key, public_key_fingerprint, write_key_pair


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for hotline.pub (give to web and workers) and hotline.key (console only).")
def main(directory: Path) -> None:
    passphrase = os.environ.get("HOTLINE_KEY_PASSPHRASE") or click.prompt(
        "Passphrase for the private key", hide_input=True, confirmation_prompt=True
    )
    try:
        public_path, private_path = write_key_pair(directory, passphrase)
    except KeyFileError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"public key:  {public_path}  (fingerprint {public_key_fingerprint(load_public_key(public_path))})")
    click.echo(f"private key: {private_path}  (wrapped with your passphrase; keep it off internet-facing machines)")


if __name__ == "__main__":
    main()
