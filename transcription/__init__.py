"""Offline transcription of callers' recordings with Vosk.

- model: fetch, locate and verify the speech model (ModelError)
- audio: decode a recording and bring it to the model's sample rate (AudioError)
- recognizer: Transcriber, Transcript, transcribe_recording

Test speech with known words lives with the tests (tests/support/speech_corpus.py), not here.
Nothing is imported here so that `import transcription.model` stays light (no Vosk, no pydub).
"""
