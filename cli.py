"""Operators' commands: `flask --app app <command>`."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click
from flask import Flask, current_app
from sqlalchemy import func, select

from storage.cases import find_case, open_item
from storage.crypto import KeyFileError, SealError, load_private_key
from storage.migrate import upgrade
from storage.models import Job


def _hotline():
    return current_app.extensions["hotline"]


def register_commands(app: Flask) -> None:
    @app.cli.group("db")
    def db_group():
        """The database schema."""

    @db_group.command("upgrade")
    def db_upgrade():
        """Apply every migration not yet applied."""
        upgrade(_hotline().settings.database_url)
        click.echo("database is up to date")

    @app.cli.command("decrypt")
    @click.argument("reference")
    @click.option("--key", "key_path", type=click.Path(dir_okay=False, path_type=Path),
                  help="The wrapped private key (default: hotline.key beside the public key).")
    @click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
                  help="Folder to write the case's decrypted items into.")
    def decrypt(reference: str, key_path: Path | None, out_dir: Path):
        """Decrypt everything kept for one case (operators only; needs the private key)."""
        hotline = _hotline()
        key_path = key_path or hotline.settings.public_key_path.with_name("hotline.key")
        passphrase = os.environ.get("HOTLINE_KEY_PASSPHRASE") or click.prompt("Private key passphrase", hide_input=True)
        try:
            private_key = load_private_key(key_path, passphrase)
        except KeyFileError as error:
            raise click.ClickException(str(error)) from None
        with hotline.db.session() as session:
            case = find_case(session, reference)
            if case is None:
                raise click.ClickException("no case with that reference")
            out_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(out_dir, 0o700)
            summary = {"reference": case.reference, "anonymous": case.anonymous, "category": case.category,
                       "created_at": case.created_at.isoformat(), "items": []}
            for item in case.items:
                try:
                    data = open_item(session, private_key, hotline.blobs, item)
                except SealError as error:
                    raise click.ClickException(f"item {item.id} ({item.kind}): {error}") from None
                name = f"{item.id:06d}-{item.kind}" + {"recording": ".wav", "transcript": ".json", "contact": ".json"}.get(item.kind, "")
                (out_dir / name).write_bytes(data)
                summary["items"].append({"file": name, "kind": item.kind, "created_at": item.created_at.isoformat()})
            (out_dir / "case.json").write_text(json.dumps(summary, indent=2))
        click.echo(f"wrote {len(summary['items'])} items for case {reference} to {out_dir}")

    @app.cli.group("jobs")
    def jobs_group():
        """Background jobs."""

    @jobs_group.command("run")
    def jobs_run():
        """Run every due job now, in this process."""
        from jobs.worker import run_until_idle

        click.echo(f"ran {run_until_idle(_hotline().workshop)} jobs")

    @jobs_group.command("status")
    def jobs_status():
        """Count jobs by kind and state."""
        with _hotline().db.session() as session:
            rows = session.execute(select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state)).all()
        for kind, state, count in rows:
            click.echo(f"{kind:20} {state:10} {count}")
