"""The voice disguise, measured on a real voiced sound (espeak-ng saying "aah"): sox moves the pitch and
the formants, the resonances that make a voice someone's, down by the same four semitones."""
from __future__ import annotations

import subprocess

from console.referrals.audio import DISGUISE_CENTS, Pcm, decode, disguise, wav
from tests.console.referrals.support import formants, fundamental
from transcription.audio import resample_pcm

RATIO = 2 ** (DISGUISE_CENTS / 1200)  # about 0.79


def a_vowel() -> Pcm:
    spoken = subprocess.run(["espeak-ng", "--stdout", "aaaaaaaaaaaa"], capture_output=True, check=True).stdout
    voice = decode(spoken)
    return Pcm(resample_pcm(voice.samples, voice.rate, 8000), 8000)  # a phone line's rate, as takes are


def test_the_disguise_lowers_pitch_and_formants_together():
    vowel = a_vowel()
    shifted = disguise(vowel)
    assert len(shifted.samples) == len(vowel.samples)
    middle = vowel.duration / 2
    before, after = fundamental(wav(vowel), middle, middle + 0.3), fundamental(wav(shifted), middle, middle + 0.3)
    assert 0.74 < after / before < 0.85, (before, after)
    first_before, first_after = formants(vowel.samples, 8000)[0], formants(shifted.samples, 8000)[0]
    assert 0.70 < first_after / first_before < 0.88, (first_before, first_after)
    assert abs(first_after / first_before - RATIO) < 0.09
