"""The workers purge on their own: a worker started with the hotline deletes a due case without anyone
asking, and the schedule's interval is a setting."""
from __future__ import annotations

import time

from sqlalchemy import select

from jobs.worker import InProcessWorker
from settings import Settings
from storage.models import AuditAction, AuditEntry, Case, CaseStatus
from tests.storage.test_retention import MARCH
from tests.support.retention import a_worked_case


def test_a_running_worker_purges_a_due_case_by_itself(hotline):
    reference = a_worked_case(hotline, MARCH, CaseStatus.NO_FURTHER_ACTION, 120)
    worker = InProcessWorker(hotline.workshop, sweep_seconds=0, purge_seconds=0.2)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with hotline.db.session() as session:
                if session.scalar(select(Case.id).where(Case.reference == reference)) is None:
                    break
            time.sleep(0.1)
    finally:
        worker.stop()
    with hotline.db.session() as session:
        assert session.scalar(select(Case.id).where(Case.reference == reference)) is None
        assert session.scalar(select(AuditEntry.action).where(AuditEntry.case_reference == reference)) \
            is AuditAction.CASE_PURGED


def test_the_purge_interval_and_the_periods_are_settings(settings_env):
    settings = Settings.from_env(dict(settings_env, HOTLINE_PURGE_SECONDS="0", HOTLINE_RETAIN_REFERRED_DAYS="730",
                                      HOTLINE_RETAIN_NO_FURTHER_ACTION_DAYS="30"))
    assert settings.purge_seconds == 0
    assert (settings.retention.referred_days, settings.retention.no_further_action_days) == (730, 30)
    defaults = Settings.from_env(settings_env)
    assert defaults.purge_seconds == 3600 and defaults.retention.after_hold_days == 30
