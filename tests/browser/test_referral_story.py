"""A handler refers a case to a force's professional standards department, in headless Chromium: she
opens the referral page from the case, clicks two words to hide them, writes a summary and exports. The
package her browser downloads has a PDF whose text lacks the two words and a WAV that is silent (RMS 0)
over them; the case page then lists the referral with the SHA-256 of exactly the file she got."""
from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

from selenium.webdriver.common.by import By

from console.referrals.redaction import PAD_SECONDS
from tests.browser.conftest import SCREENSHOTS
from tests.browser.support.pages import element, fill, wait_for
from tests.console.cases.helpers import CaseFiles, Take
from tests.console.referrals.support import (
    fundamental,
    pdf_text,
    rms_between,
    seal_take_audio,
    seal_transcript,
    voiced_wav,
    words_every,
)

SPOKEN = "the officer who stopped me was sergeant quillfeather and he took forty pounds from my wallet"
HIDDEN = ("quillfeather", "wallet")
FORCE = "Marrowshire Police Professional Standards"


def a_named_case_with_a_spoken_take(console) -> tuple[str, list]:
    words = words_every(SPOKEN)
    cases = CaseFiles(console)
    reference = cases.case(anonymous=False, contact="+447700900123", takes=[Take(seconds=int(words[-1].end) + 1)])
    [recording_id] = cases.takes_of(reference)
    seal_take_audio(console, recording_id, voiced_wav(words[-1].end + 0.5))
    seal_transcript(console, recording_id, words)
    return reference, words


def downloaded(folder: Path, timeout: float = 15) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [path for path in folder.glob("referral-*.zip") if path.is_file()]
        if done and not list(folder.glob("*.crdownload")):
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no package was downloaded into {folder}: {sorted(p.name for p in folder.iterdir())}")


def test_a_handler_hides_two_words_and_exports_a_referral(people, console_app, at_console, tmp_path, screenshots):
    console = console_app.extensions["console"]
    reference, words = a_named_case_with_a_spoken_take(console)
    admin = people.admin("ada")
    admin.signs_in()
    assert admin.post_form("/referrals/forces", {"name": FORCE}).status_code == 302

    hana = at_console(people.handler("hana"))
    hana.signs_in()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    hana.driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})

    # From the case page to the referral page.
    hana.opens_case(reference)
    assert element(hana.driver, "#no-referrals").text == "Not referred yet."
    element(hana.driver, "#build-referral").click()
    hana.is_at(f"/cases/{reference}/referral")

    # She clicks the two words; each turns into a black bar, and the count says two.
    indices = [words.index(next(w for w in words if w.text == text)) for text in HIDDEN]
    for index in indices:
        word = element(hana.driver, f"#redact-take-1 label.redact-word[data-index='{index}']")
        word.click()
        box = word.find_element(By.TAG_NAME, "input")
        wait_for(hana.driver, f"word {index} to be ticked", lambda d: box.is_selected())
    assert element(hana.driver, "#redact-count").text == "2 words hidden"
    fill(element(hana.driver, "#summary"), "The caller reports that a sergeant took cash from them at a stop.")
    assert element(hana.driver, "#include-audio").is_selected()  # a named caller: audio goes unless unticked
    assert not element(hana.driver, "#encrypt").is_selected()  # this force gave no key: a plain zip
    screenshots.take(hana, "referral-page")
    element(hana.driver, "#export-referral").click()

    package = downloaded(downloads)
    sent = package.read_bytes()
    with zipfile.ZipFile(io.BytesIO(sent)) as archive:
        pdf, audio = archive.read("referral.pdf"), archive.read("take-1.wav")
    text = " ".join(pdf_text(pdf).split())
    assert "quillfeather" not in text and "wallet" not in text
    assert "sergeant [redacted] and he took forty pounds from my [redacted]" in text
    for index in indices:
        assert rms_between(audio, words[index].start - PAD_SECONDS, words[index].end + PAD_SECONDS) == 0
    assert rms_between(audio, words[0].start, words[0].end) > 1000

    # The case page lists the referral, with the SHA-256 of the very file downloaded.
    hana.opens_case(reference)
    assert element(hana.driver, ".referral-sha256").text == hashlib.sha256(sent).hexdigest()
    assert element(hana.driver, ".referral-force").text == FORCE

    if screenshots.folder is not None and shutil.which("pdftoppm"):
        (tmp_path / "referral.pdf").write_bytes(pdf)
        subprocess.run(["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile",
                        str(tmp_path / "referral.pdf"), str(tmp_path / "referral")], check=True)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / "referral.png", SCREENSHOTS / "referral.png")


def test_an_anonymous_caller_s_voice_goes_only_when_chosen_and_then_disguised(people, console_app, at_console,
                                                                             tmp_path):
    console = console_app.extensions["console"]
    words = words_every(SPOKEN)
    cases = CaseFiles(console)
    reference = cases.case(anonymous=True, takes=[Take(seconds=int(words[-1].end) + 1)])
    [recording_id] = cases.takes_of(reference)
    original = voiced_wav(words[-1].end + 0.5)
    seal_take_audio(console, recording_id, original)
    seal_transcript(console, recording_id, words)
    admin = people.admin("ada")
    admin.signs_in()
    assert admin.post_form("/referrals/forces", {"name": FORCE}).status_code == 302
    hana = at_console(people.handler("hana"))
    hana.signs_in()

    def exports(folder_name: str, with_voice: bool) -> dict[str, bytes]:
        folder = tmp_path / folder_name
        folder.mkdir()
        hana.driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder)})
        hana.opens_case(reference)
        element(hana.driver, "#build-referral").click()
        hana.is_at(f"/cases/{reference}/referral")
        assert "disguise is not perfect" in element(hana.driver, "#anonymous-audio-warning").text
        voice = element(hana.driver, "#include-audio")
        assert not voice.is_selected()  # an anonymous caller: text only unless the handler decides
        if with_voice:
            voice.click()
        fill(element(hana.driver, "#summary"), "An anonymous caller reports a sergeant taking cash.")
        element(hana.driver, "#export-referral").click()
        with zipfile.ZipFile(downloaded(folder)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}

    text_only = exports("text-only", with_voice=False)
    assert not [name for name in text_only if name.endswith(".wav")]
    with_voice = exports("with-voice", with_voice=True)
    disguised = with_voice["take-1.wav"]
    word = words[2]  # "who": not redacted, so its voice is there to measure
    before, after = fundamental(original, word.start, word.end), fundamental(disguised, word.start, word.end)
    assert after < 0.9 * before, (before, after)  # measured: about 0.79, four semitones down
    assert rms_between(disguised, word.start, word.end) > 1000
