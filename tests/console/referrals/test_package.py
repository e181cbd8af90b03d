"""A handler exports a referral: the words they hide are gone from the PDF and silent in the audio, an
anonymous caller's voice goes only when chosen and then disguised, and the SHA-256 of what was sent is
on the case and in the audit trail."""
from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from datetime import datetime

import pyrage
from pyrage import x25519
from pypdf import PdfReader
from sqlalchemy import select

from storage.models import AuditAction, AuditEntry, Referral
from tests.console.cases.helpers import texts_of_class
from tests.console.referrals.conftest import registered
from tests.console.referrals.support import exports, fundamental, pdf_text, rms_between, suggested_on_page
from console.referrals.redaction import PAD_SECONDS


def referrals(console) -> list[Referral]:
    with console.db.session() as session:
        return list(session.scalars(select(Referral)))


def exported_entries(console) -> list[dict]:
    with console.db.session() as session:
        return [json.loads(entry.detail) for entry in
                session.scalars(select(AuditEntry).where(AuditEntry.action == AuditAction.REFERRAL_EXPORTED))]


def test_two_hidden_words_are_gone_from_the_pdf_and_silent_in_the_audio(handler, console, force, spoken_case):
    reference, take, words, _ = spoken_case(anonymous=False)
    hidden = [words.index(next(w for w in words if w.text == "quillfeather")),
              words.index(next(w for w in words if w.text == "money"))]
    package = exports(handler, reference, force_id=force, redact=[(take, i) for i in hidden], audio=True)
    assert package.ok, package.response.get_data(as_text=True)[:500]

    files = package.files()
    assert sorted(files) == ["manifest.json", "referral.pdf", "take-1.wav"]
    text = pdf_text(files["referral.pdf"])
    assert "quillfeather" not in text.lower() and "money" not in text.lower()
    assert "that sergeant [redacted] took the [redacted]" in " ".join(text.split())
    assert reference in text and "collar" in text
    # Over each hidden word (and its padding) the audio is silent; either side, the voice is still there.
    audio = files["take-1.wav"]
    for index in hidden:
        word = words[index]
        assert rms_between(audio, word.start - PAD_SECONDS, word.end + PAD_SECONDS) == 0
    assert rms_between(audio, words[0].start, words[0].end) > 1000
    assert rms_between(audio, words[hidden[0] - 1].start, words[hidden[0] - 1].end - 0.1) > 1000

    [row] = referrals(console)
    sent = hashlib.sha256(package.body).hexdigest()
    assert (row.sha256, row.force_id, row.actor_id, row.with_audio, row.disguised, row.encrypted) == \
        (sent, force, handler.user_id, True, False, False)
    [entry] = exported_entries(console)
    assert entry["sha256"] == sent and entry["audio"] == "redacted" and entry["redacted_passages"] == 2
    manifest = json.loads(files["manifest.json"])
    assert {f["name"]: f["sha256"] for f in manifest["files"]}["referral.pdf"] == \
        hashlib.sha256(files["referral.pdf"]).hexdigest()

    # The case page lists the referral with what was sent's SHA-256.
    html = handler.get(f"/cases/{reference}").get_data(as_text=True)
    assert texts_of_class(html, "referral-sha256") == [sent]
    assert texts_of_class(html, "referral-force") == ["Marrowshire Police Professional Standards"]


def test_the_summary_typed_at_export_is_in_the_pdf_and_nowhere_in_the_database(handler, console, force, spoken_case):
    reference, *_ = spoken_case()
    package = exports(handler, reference, force_id=force, summary="Zanzibar-grade summary & <notes>")
    assert "Zanzibar-grade summary & <notes>" in pdf_text(package.files()["referral.pdf"])
    from tests.console.cases.test_notes_and_contact import every_stored_value

    assert b"Zanzibar" not in every_stored_value(console)


def test_an_anonymous_caller_s_package_is_text_only_unless_audio_is_chosen(handler, console, force, spoken_case):
    reference, *_ = spoken_case(anonymous=True)
    page = handler.get(f"/cases/{reference}/referral").get_data(as_text=True)
    assert 'id="anonymous-audio-warning"' in page and "disguise is not perfect" in page
    assert 'id="include-audio" checked' not in page  # not ticked for an anonymous caller

    text_only = exports(handler, reference, force_id=force)
    assert sorted(text_only.files()) == ["manifest.json", "referral.pdf"]
    assert text_only.manifest()["audio"] == "none"

    # Chosen: the voice goes disguised, whatever the form says about disguise.
    with_voice = exports(handler, reference, force_id=force, audio=True, disguise=False)
    assert "take-1.wav" in with_voice.files()
    assert with_voice.manifest()["audio"] == "redacted-and-disguised"
    assert [(r.with_audio, r.disguised) for r in sorted(referrals(console), key=lambda r: r.id)] == \
        [(False, False), (True, True)]


def test_a_disguised_voice_is_lower_in_pitch_measured(handler, console, force, spoken_case):
    reference, take, words, original = spoken_case(anonymous=True)
    name = next(i for i, w in enumerate(words) if w.text == "quillfeather")
    disguised = exports(handler, reference, force_id=force, audio=True, redact=[(take, name)]).files()["take-1.wav"]
    before, after = fundamental(original, 1.0, 1.3), fundamental(disguised, 1.0, 1.3)
    assert abs(before - 140) < 5
    # Four semitones down: 140 Hz * 2^(-4/12) is about 111 Hz.
    assert abs(after - 140 * 2 ** (-4 / 12)) < 6, (before, after)
    # The voice is still there, and the hidden word still silent after the shifters' smearing.
    assert rms_between(disguised, 1.0, 1.3) > 1000
    assert rms_between(disguised, words[name].start - PAD_SECONDS, words[name].end + PAD_SECONDS) == 0


def test_a_package_encrypted_to_the_force_s_key_opens_with_its_identity_only(handler, admin, console, spoken_case):
    identity = x25519.Identity.generate()
    force_id = registered(console, admin, "Fenland Constabulary PSD", str(identity.to_public()))
    reference, take, words, _ = spoken_case()
    package = exports(handler, reference, force_id=force_id, encrypt=True, redact=[(take, 3)])
    assert package.ok
    assert package.body.startswith(b"age-encryption.org/v1\n")
    assert package.response.headers["Content-Disposition"].endswith('.zip.age"')
    assert "referral.pdf" in package.files(identity)
    try:
        pyrage.decrypt(package.body, [x25519.Identity.generate()])
        raise AssertionError("another key opened the package")
    except pyrage.DecryptError:
        pass
    [row] = referrals(console)
    assert row.encrypted and row.sha256 == hashlib.sha256(package.body).hexdigest()


def test_likely_identifiers_are_suggested_ticked(handler, force, spoken_case):
    reference, take, words, _ = spoken_case()
    collar = [i for i, w in enumerate(words) if w.text in ("four", "five", "six", "seven")]
    assert suggested_on_page(handler, reference) == [f"{take}:{i}" for i in collar]
    text = pdf_text(exports(handler, reference, force_id=force, keep_suggested=True).files()["referral.pdf"])
    assert "collar number is [redacted] and" in " ".join(text.split())


def test_a_transcript_corrected_after_the_page_was_opened_stops_the_export(handler, console, cases, force, spoken_case):
    reference, take, words, _ = spoken_case()
    stale = exports(handler, reference, force_id=force, redact=[(take, 0)], versions={f"version-{take}": "0"})
    assert stale.response.status_code == 409
    assert "changed after the page was opened" in stale.response.get_data(as_text=True)
    assert referrals(console) == [] and exported_entries(console) == []


def test_bad_choices_are_refused_with_a_message_and_nothing_recorded(handler, console, force, spoken_case):
    reference, take, words, _ = spoken_case()
    for choices, message in [
        ({"summary": ""}, "Write a summary for the force first."),
        ({"force_id": 987654}, "that one is not registered"),
        ({"encrypt": True}, "has no public key registered"),
        ({"redact": [(take, 999)]}, "not in this case&#39;s transcripts"),
        ({"redact": [(123, 0)]}, "not in this case&#39;s transcripts"),
    ]:
        response = exports(handler, reference, **{"force_id": force, **choices}).response
        assert response.status_code == 400 and message in response.get_data(as_text=True), (choices, response.status_code)
    assert referrals(console) == [] and exported_entries(console) == []


def test_an_anonymous_caller_s_package_says_when_it_was_made_to_the_day_only(handler, console, force, spoken_case):
    """A time soon after the call, to the minute, would narrow down the hour that is all we keep of it."""
    reference, *_ = spoken_case(anonymous=True)
    package = exports(handler, reference, force_id=force)
    files = package.files()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", package.manifest()["prepared"])
    assert re.search(r'filename="referral-\d{8}-\d{8}\.zip"', package.response.headers["Content-Disposition"])
    with zipfile.ZipFile(io.BytesIO(package.body)) as archive:
        assert {info.date_time[3:] for info in archive.infolist()} == {(0, 0, 0)}
    text = pdf_text(files["referral.pdf"])
    times = re.findall(r"\d{2}:\d{2}", text)
    assert times == [t for t in times if t.endswith(":00")]  # only the received hour, "14:00–15:00"
    metadata = PdfReader(io.BytesIO(files["referral.pdf"])).metadata
    assert str(datetime.now().year) not in str(metadata.get("/CreationDate", "")) + str(metadata.get("/ModDate", ""))


def test_without_sox_an_anonymous_voice_is_not_sent_undisguised(handler, console, force, spoken_case, monkeypatch):
    from console.referrals import audio

    monkeypatch.setattr(audio.shutil, "which", lambda name: None)
    reference, *_ = spoken_case(anonymous=True)
    response = exports(handler, reference, force_id=force, audio=True).response
    assert response.status_code == 400 and "voice disguise could not be applied" in response.get_data(as_text=True)
    assert referrals(console) == [] and exported_entries(console) == []


def test_a_refused_form_comes_back_as_the_handler_left_it(handler, force, spoken_case):
    reference, take, words, _ = spoken_case()
    response = exports(handler, reference, force_id=force, summary="", redact=[(take, 1)]).response
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert f'name="redact" value="{take}:1" checked' in page
    assert f'name="redact" value="{take}:6" checked' not in page  # a suggestion she had not kept: not put back


def test_a_take_whose_audio_is_not_its_own_stops_the_export_with_a_message(handler, console, force, spoken_case):
    from storage.models import Recording

    reference, take, *_ = spoken_case()
    _, other, *_ = spoken_case()
    with console.db.session() as session:  # someone with the database points the take at another's audio
        session.get(Recording, take).audio_item_id = session.get(Recording, other).audio_item_id
        session.commit()
    response = exports(handler, reference, force_id=force, audio=True).response
    assert response.status_code == 422 and "did not open" in response.get_data(as_text=True)
    assert referrals(console) == [] and exported_entries(console) == []
