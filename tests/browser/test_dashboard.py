"""A supervisor opens the line at a glance in Chromium: the charts are drawn, the numbers beside them are
the line's, and the page keeps to the console's CSP (no inline style or script is needed to draw it).
With HOTLINE_SCREENSHOTS=1 it saves docs/screenshots/dashboard.png for the README."""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from selenium.webdriver.common.by import By

from console.audit.services import record
from console.dashboard.periods import weeks_up_to
from storage.models import AuditAction, CaseStatus, JobState, QuestionState, User, utcnow
from tests.browser.support.pages import element, wait_for
from tests.console.dashboard.support import LineRecords, take

CATEGORY_WEIGHTS = {"bribery-corruption": 3, "sexual-misconduct": 2, "domestic-abuse": 4, "discrimination": 2,
                    "other": 1, None: 1}


@dataclass(frozen=True)
class Seeded:
    reports: int
    open_cases: int


def twelve_weeks_of_the_line(console, reviewer_id: int, monkeypatch) -> Seeded:
    """About 130 cases over twelve weeks, as a busy line would have them: most opened within hours, older
    ones mostly closed, a few recent takes still waiting for the recogniser, some callers ringing back."""
    rng = random.Random(9)
    line, now = LineRecords(console), utcnow()
    weeks = weeks_up_to(now, 12)
    reports = open_cases = 0
    for number, week in enumerate(weeks):
        for _ in range(rng.randint(6, 16)):
            received = week.start + timedelta(seconds=rng.randrange(7 * 86400))
            if received > now - timedelta(minutes=5):
                continue
            age = now - received
            status = (rng.choice((CaseStatus.CLOSED, CaseStatus.CLOSED, CaseStatus.REFERRED, CaseStatus.NO_FURTHER_ACTION))
                      if age > timedelta(days=28) else rng.choice((CaseStatus.NEW, CaseStatus.IN_REVIEW, CaseStatus.IN_REVIEW)))
            recent = age < timedelta(days=2)
            state = rng.choice(("pending", "pending", "failed", "done")) if recent else "done"
            category = rng.choices(list(CATEGORY_WEIGHTS), list(CATEGORY_WEIGHTS.values()))[0]
            reference = line.case(category=category, received=received, status=status, anonymous=rng.random() < 0.7,
                                  takes=[take(seconds=rng.randrange(30, 400), status=state)])
            reports += 1
            open_cases += status is not CaseStatus.CLOSED
            if state == "pending":
                recording_id = line.takes_of(reference)[0]
                line.job(recording_id, rng.choice((JobState.QUEUED, JobState.RUNNING)))
            if rng.random() < 0.88 and not (recent and rng.random() < 0.5):
                seen = received + timedelta(seconds=min(age.total_seconds() - 60, rng.lognormvariate(9.6, 1.1)))
                _viewed_at(console, reviewer_id, reference, seen, monkeypatch)
            if rng.random() < 0.25:
                back = received + timedelta(days=rng.uniform(1, 10))
                if back < now:
                    line.call_back(back, reference if rng.random() < 0.8 else None)
            if rng.random() < 0.15 and age > timedelta(days=1):
                asked = received + timedelta(hours=rng.uniform(2, 20))
                answered = asked + timedelta(days=rng.uniform(0.5, 6))
                if answered < now and rng.random() < 0.6:
                    line.question(reference, asked, QuestionState.ANSWERED, answered=answered)
                else:
                    line.question(reference, asked, rng.choice((QuestionState.QUEUED, QuestionState.HEARD,
                                                                 QuestionState.WITHDRAWN)))
    return Seeded(reports, open_cases)


def _viewed_at(console, user_id: int, reference: str, at, monkeypatch) -> None:
    """A CASE_VIEWED entry as the case page writes it, in a sound hash chain, as if written at `at`."""
    with monkeypatch.context() as clock, console.db.session() as session:
        clock.setattr("storage.audit.utcnow", lambda: at)
        record(session, AuditAction.CASE_VIEWED, actor=session.get(User, user_id), case_reference=reference)
        session.commit()


def test_a_supervisor_sees_the_line_at_a_glance(people, at_console, console_app, screenshots, monkeypatch):
    console = console_app.extensions["console"]
    handler = people.handler("hana")
    seeded = twelve_weeks_of_the_line(console, handler.user_id, monkeypatch)

    sue = at_console(people.supervisor("sue"))
    sue.signs_in()
    element(sue.driver, ".mainnav a[href='/dashboard']").click()
    sue.is_at("/dashboard")
    sue.sees("The line at a glance")

    driver = sue.driver
    charts = driver.find_elements(By.CSS_SELECTOR, "figure.chart svg.chart-svg")
    assert len(charts) == 6  # reports, open cases, first review, backlog, call-backs, questions
    assert all(chart.size["width"] > 200 and chart.size["height"] > 80 for chart in charts)  # drawn, not collapsed
    assert len(driver.find_elements(By.CSS_SELECTOR, "#reports-chart rect")) >= 12 * 3
    assert element(driver, "#reports-total").text == str(seeded.reports)
    assert element(driver, "#open-total").text == str(seeded.open_cases)
    # The colours are presentation attributes, so the CSP (style-src 'self') leaves them be: a drawn bar
    # has its fill.
    bar = driver.find_element(By.CSS_SELECTOR, "#reports-chart rect")
    assert driver.execute_script("return getComputedStyle(arguments[0]).fill", bar) not in ("", "none", "rgb(0, 0, 0)")

    # The numbers behind a chart are a table a keyboard reaches.
    summary = element(driver, "#open-chart summary")
    summary.click()
    wait_for(driver, "the open cases' table", lambda d: d.find_element(By.ID, "open-chart-table").is_displayed())
    summary.click()

    # The whole page in one picture: the window as tall as the page.
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(height + 120, 4000))
    driver.execute_script("window.scrollTo(0, 0)")
    screenshots.take(sue, "dashboard")
