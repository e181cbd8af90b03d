"""How fast the console answers with 10,000 cases.  Run: python -m benchmarks.console [--quick] [--postgresql URL|auto]

Seeds a temporary database with 10,000 cases as the line leaves them (1 to 3 takes each, some of them
call-backs; sealed machine transcripts of realistic length, about 2.4 words a second of audio; sealed
notes on some cases; statuses, assignees and urgent flags), then measures, in the same run and through
the real app (Flask test client, a handler signed in through the real pages, every request passing the
guard, the session store and the audit log):

(a) inbox server time, over a mix of filters, sorts and pages, against the trivial GET /healthz;
(b) search over every transcript and note: the first search (which builds the in-memory index, opening
    every sealed item once) reported on its own, then warm searches (each refreshes incrementally);
(c) time from sign-in (password, then TOTP code) to the first page (the inbox), with the production
    argon2id cost;
(d) the supervisors' dashboard (issue 9), over 12 and 52 weeks, with the audit trail's first views,
    calls and call-backs, recording jobs and questions seeded beside the cases.

Targets (issue 7): inbox <= 300 ms p95; search <= 1 s p95; the dashboard is held to the inbox's.
Audio is not seeded: no page measured here opens it. With --postgresql the same run repeats on PostgreSQL (a URL to an empty database, or
"auto" for a throwaway server, as the tests start one).
"""
from __future__ import annotations

import argparse
import random
import re
import resource
import secrets
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable, Sequence

import pyotp
from sqlalchemy import insert, text

from storage.blobs import new_blob_key
from storage.cases import event_owner, take_owner
from storage.crypto import SealContext, load_public_key, seal, write_key_pair
from storage.migrate import upgrade_all
from storage.audit import entry_hash
from storage.models import (AuditAction, AuditEntry, AuditHead, BlobRow, Call, CallPurpose, Case, CaseEvent, CaseEventKind,
                            CaseStatus, Job, JobKind, JobState, Question, QuestionState, Recording, Role, SealedItem,
                            utcnow)
from storage.questions import question_owner
from storage.references import CaseReference
from transcription.recognizer import Transcript, Word

INBOX_TARGET_MS, SEARCH_TARGET_MS = 300.0, 1000.0
DASHBOARD_TARGET_MS = INBOX_TARGET_MS
CATEGORIES = ("bribery-corruption", "sexual-misconduct", "domestic-abuse", "discrimination", "other", None)
STATUSES = ((CaseStatus.NEW, 30), (CaseStatus.IN_REVIEW, 25), (CaseStatus.REFERRED, 15),
            (CaseStatus.NO_FURTHER_ACTION, 10), (CaseStatus.CLOSED, 20))
CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')
PASSPHRASE = "benchmark passphrase, not a secret"

# Common words of spoken English in rough frequency order (a Zipf draw over them reads like speech to
# an index: a few words everywhere, a long tail of rare ones), then words a report would carry.
COMMON = """the i and to a he was it that of you in me my said they we so but his him on then there
what just like know with at her she had for be this not were do all out up when one about go if get
them no would could did got went back as have from because told car time officer police said right
home house phone came really think now want didn't don't see an or by going over me door night asked
people called again away take took around never thing something two day our into night before after
still only well very much last man station custody sergeant constable inspector arrest arrested cell
report complaint statement evidence threatened hit pushed money cash paid favour bribe messages texts
partner husband wife boyfriend girlfriend children kids mother father family friend neighbour street
road van uniform badge number warrant search searched stopped stop handcuffs hurt injury hospital
scared afraid frightened angry shouting shouted laughed name names photo photos video camera footage
threat threats drugs knife weapon court case lawyer solicitor week weeks month months year years""".split()
RARE_STEMS = "mar quil fen brock holt ash wick thorn cal dun lin pen ros tre wyn bel car dor gar hal".split()
RARE_ENDS = "by ton ford ley wood field ham stead worth mere gate well ridge croft moor".split()


def _vocabulary(rng: random.Random) -> tuple[list[str], list[float]]:
    rare = sorted({stem + end for stem in RARE_STEMS for end in RARE_ENDS})
    surnames = sorted({rng.choice(RARE_STEMS).title() + rng.choice(("son", "er", "ley", "ett", "ings")) for _ in range(400)})
    words = COMMON + rare + [name.lower() for name in surnames]
    weights = [1.0 / (rank + 1) ** 1.05 for rank in range(len(words))]
    return words, weights


@dataclass
class Seeded:
    cases: int
    takes: int
    transcripts: int
    notes: int
    transcript_bytes: int
    seconds: float
    users: list[tuple[str, str, str, int]]  # username, password, TOTP secret, id (the handlers who sign in)
    supervisor: tuple[str, str, str, int] | None = None  # who opens the dashboard


def _batched(rows: list[dict], size: int = 2000):
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def seed(console, private_key, case_count: int, sign_ins: int, rng: random.Random) -> Seeded:
    """Cases, takes, sealed transcripts and notes, written in bulk (as fast as the database allows)."""
    from console.accounts.services import complete_enrolment, invite
    from console.auth import totp

    started = time.perf_counter()
    public_key = load_public_key(console.settings.public_key_path)
    words, weights = _vocabulary(rng)
    users = []
    with console.db.session() as session:
        people = []
        for n in range(max(sign_ins, 1) + 4):
            username, password, secret = f"handler{n}", "benchmark-pw-" + secrets.token_urlsafe(9), totp.new_secret()
            invitation = invite(session, private_key, username, f"Handler {n}", Role.HANDLER, None, timedelta(hours=1))
            complete_enrolment(session, invitation.user, invitation.token, password, console.settings.kdf)
            totp.set_secret(invitation.user, secret, console.settings.secret_key)
            people.append((username, password, secret, invitation.user))
        username, password, secret = "supervisor", "benchmark-pw-" + secrets.token_urlsafe(9), totp.new_secret()
        invitation = invite(session, private_key, username, "Supervisor", Role.SUPERVISOR, None, timedelta(hours=1))
        complete_enrolment(session, invitation.user, invitation.token, password, console.settings.kdf)
        totp.set_secret(invitation.user, secret, console.settings.secret_key)
        session.commit()
        users = [(u, p, s, user.id) for u, p, s, user in people]
        supervisor = (username, password, secret, invitation.user.id)
    assignees = [user_id for *_, user_id in users] + [None] * 6

    now = utcnow()
    references: set[str] = set()
    case_rows, recording_rows, item_rows, blob_rows, event_rows = [], [], [], [], []
    call_rows, job_rows, question_rows, views = [], [], [], []  # views: (reference, when) for the audit trail
    item_id = recording_id = event_id = call_id = job_id = question_id = 0
    transcript_bytes = transcripts = notes = 0

    def sealed(case_id: int, reference: str, kind: str, plaintext: bytes, created_at, owner: str) -> int:
        nonlocal item_id
        item_id += 1
        key = new_blob_key(kind.replace("-", ""))
        data = seal(public_key, plaintext, SealContext(reference, kind, key, owner))
        blob_rows.append({"key": key, "data": data})
        item_rows.append({"id": item_id, "case_id": case_id, "kind": kind, "blob_key": key, "size": len(data),
                          "note": None, "created_at": created_at})
        return item_id

    def flush(session) -> None:
        for model, rows in ((Case, case_rows), (SealedItem, item_rows), (BlobRow, blob_rows),
                            (Recording, recording_rows), (CaseEvent, event_rows), (Call, call_rows),
                            (Job, job_rows), (Question, question_rows)):
            for batch in _batched(rows):
                session.execute(insert(model), batch)
            rows.clear()
        session.commit()

    with console.db.session() as session:
        for case_id in range(1, case_count + 1):
            reference = CaseReference.generate().digits
            while reference in references:
                reference = CaseReference.generate().digits
            references.add(reference)
            received = now - timedelta(seconds=rng.randrange(365 * 24 * 3600))
            anonymous = rng.random() < 0.7
            status = rng.choices([s for s, _ in STATUSES], [w for _, w in STATUSES])[0]
            case_rows.append({"id": case_id, "reference": reference, "anonymous": anonymous,
                              "category": rng.choice(CATEGORIES), "status": status, "urgent": rng.random() < 0.02,
                              "assignee_id": rng.choice(assignees), "created_at": received, "updated_at": received})
            first_call = "CA" + secrets.token_hex(16)
            call_id += 1
            call_rows.append(_call_row(call_id, case_id, CallPurpose.REPORT, received))
            if rng.random() < 0.03:  # a call-back whose PIN was wrong: it reached no case
                call_id += 1
                call_rows.append(_call_row(call_id, None, CallPurpose.ADD, received + timedelta(days=rng.uniform(1, 9))))
            take_count = rng.choices((1, 2, 3), (80, 15, 5))[0]
            for take in range(take_count):
                recording_id += 1
                seconds = int(min(900, max(15, rng.lognormvariate(4.5, 0.6))))  # median ~90 s
                at = received + timedelta(minutes=take * rng.choice((2, 3, 60 * 24 * 3)))
                state = rng.choices(("done", "pending", "failed"), (92, 4, 4))[0]
                transcript_id = None
                if state == "done":
                    spoken = rng.choices(words, weights, k=int(seconds * 2.4))
                    transcript = Transcript(" ".join(spoken), [
                        Word(w, round(i / 2.4, 2), round(i / 2.4 + 0.35, 2), round(rng.uniform(0.4, 1.0), 2))
                        for i, w in enumerate(spoken)], "vosk-model-small-en-us", "0.15", seconds / 10, float(seconds))
                    plaintext = transcript.to_json()
                    transcript_bytes += len(plaintext)
                    transcripts += 1
                    transcript_id = sealed(case_id, reference, "transcript", plaintext, at, take_owner(recording_id))
                call_sid = first_call if take == 0 or rng.random() < 0.5 else "CA" + secrets.token_hex(16)
                if call_sid != first_call:  # left on a call-back
                    call_id += 1
                    call_rows.append(_call_row(call_id, case_id, CallPurpose.ADD, at))
                if state == "pending":
                    job_id += 1
                    job_rows.append({"id": job_id, "kind": JobKind.STORE_RECORDING, "recording_id": recording_id,
                                     "call_id": None, "state": rng.choice((JobState.QUEUED, JobState.FAILED)),
                                     "attempts": 1, "run_after": at, "created_at": at, "updated_at": at})
                recording_rows.append({
                    "id": recording_id, "recording_sid": "RE" + secrets.token_hex(16),
                    "call_sid": call_sid,
                    "case_id": case_id, "position": take + 1, "decision": "keep", "twilio_status": "completed", "recording_url": None,
                    "duration_seconds": seconds, "audio_item_id": None, "transcript_item_id": transcript_id,
                    "transcription_status": state, "transcription_error": None, "transcription_attempts": 1,
                    "deleted_at_twilio": True, "created_at": at})
            for _ in range(rng.choices((0, 1, 2), (80, 15, 5))[0]):
                event_id += 1
                written = received + timedelta(hours=rng.randrange(1, 200))
                note = " ".join(rng.choices(words, weights, k=rng.randrange(20, 120)))
                note_item = sealed(case_id, reference, "note", note.encode(), written, event_owner(event_id))
                event_rows.append({"id": event_id, "case_id": case_id, "kind": CaseEventKind.NOTE,
                                   "actor_id": rng.choice(assignees[:4]), "old_value": None, "new_value": None,
                                   "item_id": note_item, "recording_id": None, "created_at": written})
                notes += 1
            if rng.random() < 0.9:  # opened by a handler, some more than once (the first one counts)
                first = received + timedelta(seconds=rng.lognormvariate(9.5, 1.2))
                views += [(reference, first + timedelta(hours=hour)) for hour in range(rng.choice((1, 1, 2, 3)))
                          if first + timedelta(hours=hour) < now]
            if rng.random() < 0.05:
                question_id += 1
                asked = received + timedelta(hours=rng.randrange(1, 100))
                state = rng.choice(tuple(QuestionState))
                question_item = sealed(case_id, reference, "question", b"Which station was it?", asked,
                                       question_owner(question_id))
                question_rows.append({
                    "id": question_id, "case_id": case_id, "position": 1, "state": state,
                    "author_id": rng.choice(assignees[:4]), "line_sealed": b"sealed to the case's question key",
                    "item_id": question_item, "created_at": asked,
                    "heard_at": asked + timedelta(days=2) if state in (QuestionState.HEARD, QuestionState.ANSWERED) else None,
                    "answered_at": asked + timedelta(days=2) if state is QuestionState.ANSWERED else None,
                    "withdrawn_at": asked + timedelta(hours=3) if state is QuestionState.WITHDRAWN else None,
                    "withdrawn_by_id": None})
            if len(case_rows) >= 1000:
                flush(session)
        flush(session)
        _append_views(session, views, users[0])
        if console.db.url.startswith("postgresql"):
            for table in ("cases", "recordings", "sealed_items", "case_events"):
                session.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
            session.commit()
        session.execute(text("ANALYZE"))  # fresh statistics, as a live database would have
        session.commit()
    return Seeded(case_count, recording_id, transcripts, notes, transcript_bytes, time.perf_counter() - started,
                  users[:max(sign_ins, 1)], supervisor)


def _call_row(call_id: int, case_id: int | None, purpose: CallPurpose, at) -> dict:
    return {"id": call_id, "call_sid": None, "case_id": case_id, "purpose": purpose, "pending_reference": None,
            "failed_unlocks": 0 if case_id else 1, "status": "completed", "started_at": at.replace(minute=0, second=0, microsecond=0),
            "ended_at": None, "deleted_at_twilio": True}


def _append_views(session, views: list[tuple[str, object]], viewer: tuple[str, str, str, int]) -> None:
    """CASE_VIEWED entries in a sound hash chain after whatever the accounts' set-up wrote, as the case
    page would have appended them over the year (storage/audit.py), in bulk."""
    username, *_, user_id = viewer
    head = session.get(AuditHead, 1)
    seq, previous = head.seq, head.hash
    rows = []
    for reference, at in sorted(views, key=lambda view: view[1]):
        seq += 1
        digest = entry_hash(seq, at, user_id, username, AuditAction.CASE_VIEWED.value, reference, None, "{}", previous)
        rows.append({"id": seq, "created_at": at, "actor_id": user_id, "actor": username,
                     "action": AuditAction.CASE_VIEWED, "case_reference": reference, "target_user_id": None,
                     "detail": "{}", "prev_hash": previous, "hash": digest})
        previous = digest
    for batch in _batched(rows):
        session.execute(insert(AuditEntry), batch)
    head.seq, head.hash = seq, previous
    session.commit()


# --- measuring -------------------------------------------------------------------------------------

def _csrf(html: str) -> str:
    match = CSRF.search(html)
    if not match:
        raise RuntimeError("no CSRF token on the page")
    return match.group(1)


def sign_in(app, username: str, password: str, secret: str):
    """Sign in through the real pages; returns (client, seconds from posting the password to the inbox)."""
    client = app.test_client()
    token = _csrf(client.get("/sign-in").get_data(as_text=True))
    started = time.perf_counter()
    response = client.post("/sign-in", data={"csrf_token": token, "username": username, "password": password})
    if response.status_code != 302:
        raise RuntimeError(f"sign-in answered {response.status_code}")
    second = client.get(response.headers["Location"])
    response = client.post(response.headers["Location"],
                           data={"csrf_token": _csrf(second.get_data(as_text=True)), "code": pyotp.TOTP(secret).now()})
    if response.status_code != 302:
        raise RuntimeError(f"the second factor answered {response.status_code}")
    first_page = client.get("/inbox")
    elapsed = time.perf_counter() - started
    if first_page.status_code != 200:
        raise RuntimeError(f"the inbox answered {first_page.status_code}")
    return client, elapsed


def timed(call: Callable[[], object], repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def p95(samples: Sequence[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


INBOX_QUERIES = ("", "?page=2", "?page=120", "?status=in-review", "?new=1", "?assignee=me", "?sort=oldest",
                 "?category=domestic-abuse&anonymity=anonymous", "?urgent=1", "?sort=status&page=40",
                 "?assignee=unassigned&status=new", "?new=1&sort=oldest&page=3")
SEARCHES = ("custody", "sergeant car", "threatened knife", "the officer", "marby", "quil", "phone messages home",
            "hospital injury", "station", "wickford", "partner threat", "bribe money paid")


def measure(app, seeded: Seeded, repeats: int, sign_ins: int) -> list[tuple[str, list[float], float | None]]:
    rows: list[tuple[str, list[float], float | None]] = []
    sign_in_samples = []
    client = None
    for username, password, secret, _ in seeded.users[:sign_ins]:
        signed_in, seconds = sign_in(app, username, password, secret)
        client = client or signed_in
        sign_in_samples.append(seconds * 1000)

    def get(url: str) -> None:
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")

    for _ in range(3):  # warm the caches (templates, statements) before timing anything
        get("/healthz")
        get("/inbox")
    rows.append(("GET /healthz (baseline)", timed(lambda: get("/healthz"), repeats * len(INBOX_QUERIES) // 2), None))
    queries = iter(INBOX_QUERIES * repeats)
    rows.append((f"GET /inbox, {len(INBOX_QUERIES)} filter/sort/page mixes",
                 timed(lambda: get("/inbox" + next(queries)), repeats * len(INBOX_QUERIES)), INBOX_TARGET_MS))
    rows.append(("GET /inbox, plain first page", timed(lambda: get("/inbox"), repeats * 3), INBOX_TARGET_MS))

    token = _csrf(client.get("/search").get_data(as_text=True))

    def search(q: str) -> None:
        response = client.post("/search", data={"csrf_token": token, "q": q})
        if response.status_code != 200:
            raise RuntimeError(f"search answered {response.status_code}")

    rows.append(("POST /search, first (builds the index)", timed(lambda: search("custody"), 1), None))
    words = iter(SEARCHES * repeats)
    rows.append((f"POST /search, warm, {len(SEARCHES)} queries", timed(lambda: search(next(words)), repeats * len(SEARCHES)),
                 SEARCH_TARGET_MS))
    rows.append(("sign-in (password + TOTP) to first page", sign_in_samples, None))

    if seeded.supervisor is not None:
        supervisor, _ = sign_in(app, *seeded.supervisor[:3])

        def dashboard(weeks: int) -> None:
            response = supervisor.get(f"/dashboard?weeks={weeks}")
            if response.status_code != 200:
                raise RuntimeError(f"the dashboard answered {response.status_code}")

        dashboard(12)  # warm its templates
        rows.append(("GET /dashboard (supervisor), 12 weeks", timed(lambda: dashboard(12), repeats * 5), DASHBOARD_TARGET_MS))
        rows.append(("GET /dashboard (supervisor), 52 weeks", timed(lambda: dashboard(52), repeats * 5), DASHBOARD_TARGET_MS))
    return rows


def print_table(title: str, rows: list[tuple[str, list[float], float | None]]) -> None:
    baseline = statistics.median(rows[0][1])
    baseline_p95 = p95(rows[0][1])
    print(f"\n{title}")
    print(f"    {'measured':46} {'n':>4} {'median ms':>10} {'p95 ms':>9} {'x healthz':>10} {'p95 x':>8}  target")
    for name, samples, target in rows:
        median, high = statistics.median(samples), p95(samples)
        verdict = "" if target is None else (f"p95 <= {target:.0f} ms " + ("ok" if high <= target else "MISSED"))
        print(f"    {name:46} {len(samples):>4} {median:10.1f} {high:9.1f} {median / baseline:10.1f} "
              f"{high / baseline_p95:8.1f}  {verdict}")


def run(database_url: str, label: str, workspace: Path, case_count: int, repeats: int, sign_ins: int) -> None:
    from console import create_app
    from console.keys import load_private_key
    from console.settings import ConsoleSettings
    from console.search import EXTENSION_KEY

    data_dir = workspace / label
    data_dir.mkdir()
    write_key_pair(data_dir / "keys", PASSPHRASE)
    private_key = load_private_key(data_dir / "keys" / "hotline.key", PASSPHRASE)
    settings = ConsoleSettings.from_env({
        "HOTLINE_ENV": "development",  # the production argon2id cost; cookies without Secure for http
        "HOTLINE_DATA_DIR": str(data_dir), "DATABASE_URL": database_url,
        "CONSOLE_SECRET_KEY": secrets.token_urlsafe(48),
    })
    upgrade_all(database_url, settings.key_store_url)  # the release step
    app = create_app(settings)
    console = app.extensions["console"]
    rng = random.Random(7)
    print(f"\n[{label}] seeding {case_count:,} cases ...", flush=True)
    seeded = seed(console, private_key, case_count, sign_ins, rng)
    print(f"[{label}] seeded {seeded.cases:,} cases, {seeded.takes:,} takes, {seeded.transcripts:,} sealed transcripts "
          f"({seeded.transcript_bytes / seeded.transcripts / 1024:.1f} KiB JSON each, "
          f"{seeded.transcript_bytes / 2**20:.0f} MiB in all), {seeded.notes:,} sealed notes in {seeded.seconds:.0f} s",
          flush=True)
    rows = measure(app, seeded, repeats, sign_ins)
    index = app.extensions[EXTENSION_KEY]
    print_table(f"[{label}] {case_count:,} cases, console on one process, Flask test client "
                f"(server time, no network)", rows)
    print(f"    the search index holds {index.documents:,} transcripts and notes, {index.words:,} distinct words; "
          f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    index.clear()
    console.db.dispose()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.console", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and sign-ins (same 10,000 cases)")
    parser.add_argument("--cases", type=int, default=10_000, help="how many cases to seed (default 10,000)")
    parser.add_argument("--postgresql", metavar="URL|auto",
                        help="also run on PostgreSQL: an empty database's URL, or 'auto' for a throwaway server")
    arguments = parser.parse_args(argv)
    repeats, sign_ins = (3, 2) if arguments.quick else (10, 4)
    with tempfile.TemporaryDirectory(prefix="hotline-console-bench-") as workspace:
        run(f"sqlite:///{workspace}/hotline.db", "sqlite", Path(workspace), arguments.cases, repeats, sign_ins)
        if arguments.postgresql:
            server = None
            url = arguments.postgresql
            if url == "auto":
                from tests.support.postgres import PostgresServer

                server = PostgresServer().start()
                url = server.new_database()
            try:
                run(url, "postgresql", Path(workspace), arguments.cases, repeats, sign_ins)
            finally:
                if server is not None:
                    server.stop()


if __name__ == "__main__":
    main()
