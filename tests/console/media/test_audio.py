"""A handler plays a take: the decrypted audio, streamed from memory in byte ranges, audited once."""
from __future__ import annotations

import audioop
import io
import struct
import wave

from storage.models import AuditAction, Recording
from tests.console.media.support import a_sealed_take, audit_entries
from tests.support.audio import phone_wav
from tests.support.takes import recorded_take


def test_without_a_range_the_handler_gets_the_whole_decrypted_take(handler, take):
    response = handler.get(take.audio_url)
    assert response.status_code == 200
    assert response.data == take.wav
    assert response.headers["Content-Type"] == "audio/wav"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Length"] == str(len(take.wav))
    assert response.headers["Cache-Control"] == "no-store"


RANGES = [  # the header, and the slice of the decrypted bytes it names
    ("bytes=0-99", slice(0, 100)),
    ("bytes=1000-", slice(1000, None)),
    ("bytes=-300", slice(-300, None)),
    ("bytes=44-999999", slice(44, None)),
]


def test_a_range_is_the_same_slice_of_the_decrypted_bytes(handler, take):
    size = len(take.wav)
    for header, part in RANGES:
        expected = take.wav[part]
        first = range(size)[part][0]

        response = handler.get(take.audio_url, headers={"Range": header})

        assert response.status_code == 206, header
        assert response.data == expected, header
        assert response.headers["Content-Range"] == f"bytes {first}-{first + len(expected) - 1}/{size}"
        assert response.headers["Content-Length"] == str(len(expected))
        assert response.headers["Accept-Ranges"] == "bytes"
        assert response.headers["Cache-Control"] == "no-store"


def test_a_range_past_the_end_is_unsatisfiable(handler, take):
    response = handler.get(take.audio_url, headers={"Range": f"bytes={len(take.wav)}-"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(take.wav)}"
    assert response.data == b""


def test_a_malformed_range_gets_the_whole_take_not_an_error(handler, take):
    for header in ("bytes=nonsense", "bytes=9-3", "lines=1-2", "bytes=0-1,4-5", "bytes=--1"):
        response = handler.get(take.audio_url, headers={"Range": header})
        assert response.status_code == 200, header
        assert response.data == take.wav, header


def test_one_play_of_several_range_requests_leaves_one_audit_entry(handler, take):
    # What Chromium does: metadata first, then ranges as it plays and seeks.
    for header in ("bytes=0-", "bytes=0-", "bytes=16000-", "bytes=2000-", None):
        assert handler.get(take.audio_url, headers={"Range": header} if header else {}).status_code in (200, 206)

    played = audit_entries(handler.app.extensions["console"], AuditAction.AUDIO_PLAYED)
    assert played == [{"actor_id": handler.user_id, "case": take.reference, "detail": {"take": take.recording_id}}]


def test_another_session_playing_the_same_take_is_another_entry(people, take):
    first, second = people.handler(), people.handler()
    first.signs_in()
    second.signs_in()
    first.get(take.audio_url)
    second.get(take.audio_url, headers={"Range": "bytes=0-"})
    first.get(take.audio_url, headers={"Range": "bytes=100-"})

    played = audit_entries(first.app.extensions["console"], AuditAction.AUDIO_PLAYED)
    assert [entry["actor_id"] for entry in played] == [first.user_id, second.user_id]


def test_a_refused_range_is_no_play(handler, take):
    handler.get(take.audio_url, headers={"Range": "bytes=99999999-"})
    assert audit_entries(handler.app.extensions["console"], AuditAction.AUDIO_PLAYED) == []


def test_someone_not_signed_in_gets_401_and_no_audio(console_app, take):
    response = console_app.test_client().get(take.audio_url, headers={"Range": "bytes=0-99"})
    assert response.status_code == 401
    assert take.wav[44:100] not in response.data


def test_a_take_that_does_not_exist_is_404(handler):
    assert handler.get("/media/takes/999999/audio").status_code == 404


def test_a_take_not_yet_fetched_from_twilio_has_no_audio(handler, hotline, fake_twilio):
    recording_id, _ = recorded_take(hotline, fake_twilio, phone_wav(0.5))  # the job has not run
    assert handler.get(f"/media/takes/{recording_id}/audio").status_code == 404


def test_a_discarded_take_is_404(handler, hotline, take):
    with hotline.db.session() as session:
        session.get(Recording, take.recording_id).decision = "discard"
        session.commit()
    assert handler.get(take.audio_url).status_code == 404
    assert handler.get(take.transcript_url).status_code == 404


def _wav(format_tag: int, bits: int, frames: bytes, rate: int = 8000) -> bytes:
    fmt = struct.pack("<HHIIHH", format_tag, 1, rate, rate * bits // 8, bits // 8, bits)
    body = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(frames)) + frames
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def _pcm_frames(wav: bytes) -> bytes:
    with wave.open(io.BytesIO(wav)) as reader:
        return reader.readframes(reader.getnframes())


def test_mu_law_as_twilio_may_send_it_is_served_as_it_was_sealed(handler, hotline, fake_twilio):
    # Debian's Chromium plays 8 kHz mu-law WAV (checked by hand), so it needs no conversion.
    mu_law = _wav(7, 8, audioop.lin2ulaw(_pcm_frames(phone_wav(1.0)), 2))
    take = a_sealed_take(hotline, fake_twilio, mu_law)
    assert handler.get(take.audio_url).data == mu_law
    assert handler.get(take.audio_url, headers={"Range": "bytes=10-20"}).data == mu_law[10:21]


def test_audio_in_a_form_a_browser_may_not_play_is_served_as_16_bit_pcm_the_same_for_every_range(
        handler, hotline, fake_twilio):
    samples = _pcm_frames(phone_wav(0.5))
    as_float = b"".join(struct.pack("<f", value / 32768) for (value,) in struct.iter_unpack("<h", samples))
    take = a_sealed_take(hotline, fake_twilio, _wav(3, 32, as_float))  # IEEE float WAV

    whole = handler.get(take.audio_url).data
    with wave.open(io.BytesIO(whole)) as reader:
        assert (reader.getsampwidth(), reader.getnchannels(), reader.getframerate()) == (2, 1, 8000)
        assert reader.getnframes() == len(samples) // 2
    ranges = [handler.get(take.audio_url, headers={"Range": f"bytes={a}-{b}"}).data
              for a, b in ((0, 499), (500, 2999), (3000, len(whole) - 1))]
    assert b"".join(ranges) == whole
