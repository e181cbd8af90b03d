"""A long run with call-backs and faults mixed in.  Run: python -m benchmarks.soak [--quick]

The line under gunicorn with the Procfile's settings (benchmarks/faultline.py), SQLite, the embedded
worker, transcribing with the real speech model when the test cache has it (HOTLINE_TEST_DATA or
~/.cache/hotline; else transcription is off and the table says so). Calls arrive on a schedule:
2,000 over an hour (100 over a minute with --quick), 1 s between key presses (0.1 s --quick). About
one call in five is a call-back: a caller gives an earlier report's reference and PIN and adds a take.
Every caller is anonymous and calls from the same distinctive number with a name and a town
(tests/functional/test_anonymity.py's), so the anonymity search can look for them afterwards; the
per-caller limit is raised for the run (one number makes every call).

Faults on the way, at fixed points of the schedule:
  20%  the embedded worker's process, running a store job, gets SIGKILL
  40%  Twilio's media answers 500 (x5), then twice past the line's Twilio timeout (3 s here)
  60%  Twilio refuses deletes of recordings and call records (400, error 20009) x5 each
  80%  gunicorn and its workers get SIGKILL (calls in flight are cut off), and the line is started again

Then, once the jobs are done: every finished report stored once (each take one row, one sealed audio),
transcribed once (one transcript per take), deleted at Twilio (no recording and no call record left
there: takes of calls cut off by the kill included, which the Twilio sweep takes in), no 5xx, and the
anonymity search at zero hits: the caller's number (in 13 spellings), name and town, and every CallSid
and RecordingSid of the run, in every value of every table, every file of the data directory and the
line's whole output (logs and access log), once the workers' maintenance has rewritten the SQLite tables
that held Twilio ids after the last erasure (every 5 s here, HOTLINE_COMPACT_SECONDS;
storage/compaction.py). Exit status 1 on any failure.
Two of the line's waits are shortened (benchmarks/faultline.py), and the sweep's 10-minute margin is 3 s.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import secrets
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

from benchmarks.faultline import (ACCOUNT_SID, Ledger, Line, call_back, new_report, running_job_owner_pid)
from benchmarks.faults import NOT_FINAL_BODY

CALL_BACK_SHARE = 0.2
COMPACT_SECONDS = 5  # how often the workers purge and, if ids were erased, rewrite the id tables (default 3600)
SID = re.compile(r"(?:CA|RE)[0-9a-f]{32}")


def model_dir() -> Path | None:
    try:
        from tests.conftest import _test_data_dir
        from transcription.model import check_model, pinned_model_dir

        path = pinned_model_dir(_test_data_dir())
        check_model(path)
        return path
    except Exception:
        return None


def short_takes(transcribing: bool) -> tuple[list[bytes], str]:
    """Real speech of 1-3.5 s when transcribing (the corpus the tests use), else a 2 s tone."""
    from simulator.audio import tone_wav

    if transcribing:
        try:
            from tests.support import speech_corpus

            takes = [speech_corpus.telephone_wav(u, "signed-integer") for u in speech_corpus.load_utterances()]
            takes = [take for take in takes if len(take) <= 16000 * 3.6]
            if takes:
                return takes, f"{len(takes)} real utterances of 1-3.5 s"
        except Exception:
            pass
    return [tone_wav(2.0)], "a 2 s tone"


class Soak:
    def __init__(self, quick: bool, calls: int | None, minutes: float | None, transcription: bool):
        self.quick = quick
        self.total = calls or (100 if quick else 2000)
        self.seconds = 60 * minutes if minutes else (60.0 if quick else 3600.0)
        self.pause = 0.1 if quick else 1.0
        self.callers = 8 if quick else 12
        self.model = model_dir() if transcription else None
        self.takes, self.take_kind = short_takes(self.model is not None)
        self.ledger = Ledger()
        self.counts = {"new": 0, "back": 0, "away": 0}
        self.lock = threading.Lock()
        self.events: list[str] = []
        self.started = 0.0
        self.keep: str | None = None

    def log(self, text: str) -> None:
        line = f"  {time.monotonic() - self.started:7.1f} s  {text}"
        self.events.append(line)
        print(line, flush=True)

    def run(self) -> int:
        from simulator.fake_twilio import FakeTwilio
        from tests.functional.test_anonymity import NUMBER, _identity_options

        token = secrets.token_hex(16)
        print(f"soak: {self.total} calls over {self.seconds:.0f} s, {self.callers} callers at most in flight, "
              f"{self.pause} s between key presses; takes: {self.take_kind}; transcription: "
              f"{'on (the real model)' if self.model else 'off' + ('' if self.model else ' (no speech model in the test cache)')}",
              flush=True)
        with tempfile.TemporaryDirectory(prefix="hotline-soak-") as folder, \
                FakeTwilio(ACCOUNT_SID, token, call_final_after=1.0) as fake:
            workspace = Path(folder)
            line = Line(workspace, "soak", token, fake, model=self.model, twilio_timeout=3.0, sweep_settle=3.0,
                        HOTLINE_CALLER_LIMIT="100000", HOTLINE_TWILIO_SWEEP_SECONDS="5",
                        HOTLINE_MAX_RECORDING_SECONDS="10",
                        # the workers' maintenance every 5 s, rewriting the id tables when ids were erased
                        HOTLINE_PURGE_SECONDS=str(COMPACT_SECONDS), HOTLINE_COMPACT_SECONDS=str(COMPACT_SECONDS))
            identity = _identity_options()
            self.started = time.monotonic()
            line.start()
            try:
                self._drive(line, fake, token, NUMBER, identity)
                self.log("all calls made; waiting for the jobs")
                waited, check = self.ledger.settle(line.database_url, fake, 600 if self.quick else 1800,
                                                   transcribing=self.model is not None)
                self.log("settled" if waited is not None else "NOT settled")
                compacted = self._wait_for_compaction(line, 12 * COMPACT_SECONDS)
                errors = line.server_errors()
            finally:
                line.stop()
            hits = self._anonymity_search(line, fake)
            if self.keep:
                import shutil

                shutil.copytree(workspace, self.keep, dirs_exist_ok=True)
                self.log(f"workspace kept in {self.keep}")
            return self._summary(check, waited, compacted, errors, hits, time.monotonic() - self.started)

    def _drive(self, line: Line, fake, token: str, number: str, identity: dict) -> None:
        interval = self.seconds / self.total
        faults = [(share, name) for share, name in ((0.2, "worker"), (0.4, "media"), (0.6, "deletes"), (0.8, "hotline"))]
        next_index = iter(range(self.total))
        index_lock = threading.Lock()
        restarting = threading.Event()
        deadline = self.started + self.seconds * 3 + 600  # bounded, whatever happens

        def caller(seed: int) -> None:
            rng = random.Random(seed)
            simulator = None
            while time.monotonic() < deadline:
                with index_lock:
                    index = next(next_index, None)
                if index is None:
                    return
                wait = self.started + index * interval - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                while restarting.is_set() and time.monotonic() < deadline:
                    time.sleep(0.1)
                simulator = line.simulator(fake, token)
                take = rng.choice(self.takes)
                earlier = self.ledger.pick(rng) if rng.random() < CALL_BACK_SHARE else None
                try:
                    if earlier is not None:
                        call_back(simulator, earlier, take, self.pause, **identity)
                        kind = "back"
                    else:
                        self.ledger.add(new_report(simulator, number, take, self.pause, **identity))
                        kind = "new"
                except Exception:
                    kind = "away"
                with self.lock:
                    self.counts[kind] += 1

        def faulter() -> None:
            # At its point of the schedule, mid-call (half an interval after a call began), whoever is in flight.
            for share, name in faults:
                wait = self.started + (int(self.total * share) + 0.5) * interval - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                self._fault(name, line, fake, restarting)

        threads = [threading.Thread(target=caller, args=(n,), daemon=True) for n in range(self.callers)]
        threads.append(threading.Thread(target=faulter, daemon=True))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(1.0, deadline - time.monotonic()))

    def _fault(self, name: str, line: Line, fake, restarting: threading.Event) -> None:
        if name == "worker":
            pid = None
            for _ in range(100):
                pid = running_job_owner_pid(line.database_url)
                if pid:
                    break
                time.sleep(0.05)
            if pid:
                os.kill(pid, signal.SIGKILL)
                self.log("fault: SIGKILL to the worker process running a store job")
            else:
                self.log("fault: no store job was running to kill (skipped)")
        elif name == "media":
            fake.fail_next("GET", "/Recordings/", 500, times=5)
            fake.delay_next("GET", "/Recordings/", 5.0, times=2)
            self.log("fault: Twilio's media answers 500 x5, then 2 past the timeout")
        elif name == "deletes":
            fake.fail_next("DELETE", "/Recordings/", 400, times=5, body=NOT_FINAL_BODY)
            fake.fail_next("DELETE", "/Calls/", 400, times=5, body=NOT_FINAL_BODY)
            self.log("fault: Twilio refuses deletes (20009) x5 each")
        elif name == "hotline":
            restarting.set()
            line.kill()
            self.log("fault: SIGKILL to gunicorn and its workers (calls in flight cut off)")
            try:
                took = line.start()
                self.log(f"line started again, answering after {took:.1f} s")
            finally:
                restarting.clear()

    def _wait_for_compaction(self, line: Line, timeout: float) -> float | None:
        """Seconds until the workers' maintenance had rewritten the tables that held Twilio ids after the
        last erasure (storage/compaction.py), None if it had not within `timeout`."""
        from storage.compaction import is_up_to_date
        from storage.db import Database

        db = Database(line.database_url)
        started = time.monotonic()
        try:
            while not is_up_to_date(db):
                if time.monotonic() - started > timeout:
                    self.log("the tables that held Twilio ids were NOT rewritten after the last erasure")
                    return None
                time.sleep(0.5)
        finally:
            db.dispose()
        self.log("the tables that held Twilio ids are rewritten since the last erasure")
        return time.monotonic() - started

    def _anonymity_search(self, line: Line, fake) -> dict[str, int]:
        from sqlalchemy import create_engine

        from tests.functional.test_anonymity import SECRETS, _database_text, _files_text

        engine = create_engine(line.database_url)
        try:
            database = _database_text(SimpleNamespace(db=SimpleNamespace(engine=engine)))
        finally:
            engine.dispose()
        texts = [("the database", database), ("the line's output", line.log_path.read_text(errors="replace"))]
        texts += [(f"data file {name}", text) for name, text in _files_text(line.data_dir)]
        ids = set(fake.calls) | set(fake.deleted)
        hits = {"caller data": 0, "Twilio ids": 0}
        for where, text in texts:
            for secret in SECRETS:
                if secret in text:
                    hits["caller data"] += 1
                    self.log(f"ANONYMITY: caller data found in {where}")
            found = set(SID.findall(text)) & ids
            if found:
                hits["Twilio ids"] += len(found)
                offsets = sorted(text.index(sid) for sid in found)
                self.log(f"ANONYMITY: {len(found)} Twilio ids of the run found in {where} (at bytes "
                         f"{', '.join(map(str, offsets[:6]))} of {len(text)})")
        hits["searched (MB)"] = round(sum(len(text) for _, text in texts) / 1e6, 1)
        hits["ids searched for"] = len(ids)
        return hits

    def _summary(self, check, waited, compacted, errors: dict[str, int], hits: dict, wall: float) -> int:
        transcribing = self.model is not None
        rows = [
            ("calls made", self.counts["new"] + self.counts["back"] + self.counts["away"], None),
            ("  new reports finished", self.counts["new"], None),
            ("  call-backs that added a take", self.counts["back"], None),
            ("  calls that did not finish (cut off by a fault)", self.counts["away"], None),
            ("takes the callers finished", check.takes, None),
            ("reports lost (not stored, sealed and deleted at Twilio)", check.lost, 0),
            ("takes stored more than once", check.duplicates, 0),
            ("transcripts" + ("" if transcribing else " (transcription off)"), check.transcripts,
             check.takes if transcribing else None),
            ("takes transcribed more than once", check.transcribed_twice, 0),
            ("takes of cut-off calls kept anyway (the sweep)", check.unfinished_takes, None),
            ("recordings left at Twilio", check.at_twilio, 0),
            ("call records left at Twilio", check.call_records_left, 0),
            ("jobs open / failed", f"{check.jobs_open} / {check.jobs_failed}", "0 / 0"),
            ("5xx answers", sum(errors.values()), 0),
            ("id tables rewritten after the last erasure", "no" if compacted is None else "yes", "yes"),
            ("anonymity search: caller data hits", hits["caller data"], 0),
            ("anonymity search: Twilio id hits", hits["Twilio ids"], 0),
            ("  (searched: MB of text / Twilio ids)", f"{hits['searched (MB)']} / {hits['ids searched for']}", None),
            ("settled after the last call (s)", "never" if waited is None else f"{waited:.1f}", None),
            ("whole run (s)", f"{wall:.0f}", None),
        ]
        failed = [label for label, value, want in rows if want is not None and value != want] + (
            ["not settled"] if waited is None else [])
        print(f"\n{'':58} {'value':>12} {'must be':>9}")
        for label, value, want in rows:
            mark = "" if want is None or value == want else "  FAILED"
            print(f"{label:58} {value!s:>12} {'' if want is None else want!s:>9}{mark}")
        for where, count in errors.items():
            print(f"  5xx: {count} x {where}")
        if check.examples:
            print("  e.g. " + "; ".join(check.examples))
        print(f"soak {'passed' if not failed else 'FAILED: ' + ', '.join(failed)}")
        return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 calls over a minute (the CI form)")
    parser.add_argument("--calls", type=int, help="instead of 2,000 (100 with --quick)")
    parser.add_argument("--minutes", type=float, help="the schedule's length, instead of 60 (1 with --quick)")
    parser.add_argument("--no-transcription", action="store_true", help="transcription off even with the model")
    parser.add_argument("--keep", metavar="DIR", help="copy the run's workspace (database, data, logs) here")
    arguments = parser.parse_args(argv)
    soak = Soak(arguments.quick, arguments.calls, arguments.minutes, not arguments.no_transcription)
    soak.keep = arguments.keep
    return soak.run()


if __name__ == "__main__":
    sys.exit(main())
