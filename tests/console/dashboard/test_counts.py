"""What the dashboard counts, from rows as the line, the workers and the console leave them: reports per
week by category, open cases by age, time to first review, the transcription backlog and call-backs."""
from __future__ import annotations

from datetime import timedelta

from console.dashboard.periods import weeks_up_to
from storage.models import CaseStatus, JobKind, JobState, QuestionState, utcnow
from tests.console.dashboard.support import table, take, text_of


def dashboard(person, query: str = "") -> str:
    response = person.get("/dashboard" + query)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def test_reports_are_counted_in_the_week_they_came_in_by_category(supervisor, line):
    weeks = weeks_up_to(utcnow(), 12)
    two_ago, three_ago, oldest = weeks[-3], weeks[-4], weeks[0]
    for category in ("bribery-corruption", "bribery-corruption", "domestic-abuse", None):
        line.case(category=category, received=two_ago.start + timedelta(hours=30))
    line.case(category="discrimination", anonymous=False, received=three_ago.end - timedelta(minutes=1))
    line.case(category="other", received=oldest.start)  # the first moment of the span counts
    line.case(category="other", received=oldest.start - timedelta(minutes=1))  # before it: not shown

    html = dashboard(supervisor)
    rows = table(html, "reports-chart-table")

    assert len(rows) == 13  # twelve weeks and the "All" row
    assert rows[two_ago.long_label] == {"bribery-corruption": 2, "sexual-misconduct": 0, "domestic-abuse": 1,
                                        "discrimination": 0, "other": 0, "none": 1, "total": 4}
    assert rows[three_ago.long_label]["discrimination"] == 1 and rows[three_ago.long_label]["total"] == 1
    assert rows[oldest.long_label]["other"] == 1 and rows[oldest.long_label]["total"] == 1
    assert rows["All"]["total"] == 6
    assert text_of(html, "reports-total") == "6"

    # Four weeks hold only the two newest weeks' cases of these.
    rows = table(dashboard(supervisor, "?weeks=4"), "reports-chart-table")
    assert rows["All"]["total"] == 5


def test_open_cases_are_counted_by_age_and_status_and_closed_ones_are_not(supervisor, line):
    now = utcnow()
    line.case(received=now - timedelta(hours=2))
    line.case(received=now - timedelta(hours=20), status=CaseStatus.IN_REVIEW)
    line.case(received=now - timedelta(days=3), status=CaseStatus.IN_REVIEW)
    line.case(received=now - timedelta(days=10), status=CaseStatus.REFERRED)
    line.case(received=now - timedelta(days=40), status=CaseStatus.NO_FURTHER_ACTION)
    line.case(received=now - timedelta(days=200))
    line.case(received=now - timedelta(days=5), status=CaseStatus.CLOSED)

    html = dashboard(supervisor)
    rows = table(html, "open-chart-table")

    assert rows["Under a day"] == {"new": 1, "in-review": 1, "referred": 0, "no-further-action": 0, "total": 2}
    assert rows["1 to 7 days"]["in-review"] == 1 and rows["1 to 7 days"]["total"] == 1  # the closed one is not here
    assert rows["1 to 4 weeks"]["referred"] == 1
    assert rows["4 to 13 weeks"]["no-further-action"] == 1
    assert rows["Over 13 weeks"]["new"] == 1
    assert rows["All"]["total"] == 6
    assert text_of(html, "open-total") == "6"


def test_time_to_first_review_runs_from_arrival_to_the_first_time_anyone_opened_the_case(supervisor, handler, line):
    now = utcnow()
    quick = line.case(anonymous=False, received=now - timedelta(minutes=30))
    same_day = line.case(anonymous=False, received=now - timedelta(hours=5))
    slow = line.case(anonymous=False, received=now - timedelta(days=2))
    line.case(anonymous=False, received=now - timedelta(days=1))  # nobody has opened it yet
    for reference in (quick, same_day, slow):
        assert handler.get(f"/cases/{reference}").status_code == 200
    assert supervisor.get(f"/cases/{quick}").status_code == 200  # a second look changes nothing

    html = dashboard(supervisor)
    rows = table(html, "review-chart-table")

    assert {label: row["total"] for label, row in rows.items()} == {
        "Under an hour": 1, "1 to 4 hours": 0, "4 to 24 hours": 1, "1 to 3 days": 1, "3 to 7 days": 0,
        "Over 7 days": 0}
    assert text_of(html, "review-median") == "5 hours"
    assert text_of(html, "review-p90") == "2 days"
    assert text_of(html, "review-waiting") == "1 of 4"


def test_the_backlog_counts_kept_takes_not_yet_transcribed_and_the_recording_jobs_behind_them(supervisor, line):
    reference = line.case(takes=[take(seconds=30), take(seconds=90), take(spoken="all done", seconds=20),
                                 take(seconds=40, status="failed"), take(seconds=600, decision="discard")])
    waiting_for_audio, stored, done, failed, discarded = line.takes_of(reference)
    line.case(takes=[take(seconds=60)])  # another case's take, its audio not fetched yet either
    line.audio_stored(stored)
    line.job(waiting_for_audio, JobState.QUEUED)
    line.job(stored, JobState.RUNNING)
    line.job(failed, JobState.FAILED)
    line.job(done, JobState.DONE)
    line.job(discarded, JobState.QUEUED, kind=JobKind.DISCARD_RECORDING)  # not a recording job

    html = dashboard(supervisor)
    rows = table(html, "backlog-chart-table")

    assert {label: row["total"] for label, row in rows.items()} == {
        "Audio not stored yet": 2, "Waiting for transcription": 1, "Transcription failed": 1,
        "Jobs queued": 1, "Jobs running": 1, "Jobs failed": 1}
    assert text_of(html, "backlog-waiting") == "3"
    assert text_of(html, "backlog-minutes") == "3 minutes"  # 30 + 90 + 60 seconds


def test_call_backs_are_counted_by_week_with_those_that_reached_their_case(supervisor, line):
    weeks = weeks_up_to(utcnow(), 12)
    two_ago, three_ago = weeks[-3], weeks[-4]
    reference = line.case(received=three_ago.start)
    line.report_call(three_ago.start, reference)  # the first call: a report, not a call-back
    line.call_back(two_ago.start + timedelta(days=2), reference)
    line.call_back(two_ago.start + timedelta(days=3), reference)
    line.call_back(two_ago.start + timedelta(days=3))  # a wrong PIN: no case
    line.call_back(three_ago.start + timedelta(hours=1), reference)
    line.call_back(weeks[0].start - timedelta(hours=1), reference)  # before the span

    html = dashboard(supervisor)
    rows = table(html, "callbacks-chart-table")

    assert rows[two_ago.long_label] == {"unlocked": 2, "not-unlocked": 1, "total": 3}
    assert rows[three_ago.long_label] == {"unlocked": 1, "not-unlocked": 0, "total": 1}
    assert rows["All"]["total"] == 4
    assert (text_of(html, "callbacks-total"), text_of(html, "callbacks-unlocked")) == ("4", "3")


def test_questions_are_counted_by_the_week_written_with_where_each_is_now(supervisor, line):
    weeks = weeks_up_to(utcnow(), 12)
    two_ago, three_ago = weeks[-3], weeks[-4]
    reference = line.case(received=three_ago.start)
    line.question(reference, three_ago.start + timedelta(hours=2), QuestionState.ANSWERED,
                  answered=two_ago.start + timedelta(hours=5))
    line.question(reference, three_ago.start + timedelta(hours=3), QuestionState.WITHDRAWN)
    line.question(reference, two_ago.start + timedelta(hours=1), QuestionState.ANSWERED,
                  answered=two_ago.start + timedelta(hours=9))
    line.question(reference, two_ago.start + timedelta(hours=2), QuestionState.HEARD)
    line.question(reference, two_ago.start + timedelta(hours=3))  # queued: not asked yet
    line.question(reference, weeks[0].start - timedelta(days=3))  # written before the span, still queued

    html = dashboard(supervisor)
    rows = table(html, "questions-chart-table")

    assert rows[three_ago.long_label] == {"answered": 1, "heard": 0, "queued": 0, "withdrawn": 1, "total": 2}
    assert rows[two_ago.long_label] == {"answered": 1, "heard": 1, "queued": 1, "withdrawn": 0, "total": 3}
    assert rows["All"]["total"] == 5
    assert text_of(html, "questions-answered") == "2"  # both answered within the span
    assert text_of(html, "questions-waiting") == "2"  # whenever written


def test_every_week_of_a_year_gets_its_own_reports(supervisor, line):
    weeks = weeks_up_to(utcnow(), 52)
    for number, week in enumerate(weeks[:-1]):  # this week may have only just begun
        line.case(received=week.start if number % 2 else week.end - timedelta(seconds=1))

    rows = table(dashboard(supervisor, "?weeks=52"), "reports-chart-table")

    assert [rows[week.long_label]["total"] for week in weeks] == [1] * 51 + [0]
