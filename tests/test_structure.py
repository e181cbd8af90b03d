"""The code's shape, as its next maintainer needs it: no import circles, no test data or development
packages inside production code, states as enums, and settings read in one place."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ivr", "jobs", "storage", "transcription", "simulator", "console", "benchmarks")
PRODUCTION = ("ivr", "jobs", "storage", "transcription", "simulator", "console")
DEVELOPMENT_PACKAGES = ("jiwer", "pytest", "hypothesis", "selenium", "tests")


def project_modules(packages=PACKAGES) -> dict[str, Path]:
    """Every module of ours by dotted name: the top-level modules beside settings.py, and each package."""
    modules = {path.stem: path for path in ROOT.glob("*.py")}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported_names(name: str, path: Path) -> set[str]:
    """Every module an import statement names, anywhere in the file (inside functions too: an import
    deferred to call time is still a dependency, and still a circle)."""
    names: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            # `from pkg import submodule` names the submodule; `from pkg.module import name`, the module
            # (import_graph walks a name that is not a module back to the module holding it).
            names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph = {}
    for name, path in modules.items():
        edges = set()
        for imported in imported_names(name, path):
            while imported and imported not in modules:  # `from storage.models import Job` -> storage.models
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                edges.add(imported)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_among_the_project_s_modules():
    modules = project_modules()
    assert {"app", "cli", "settings", "jobs.dispatch", "jobs.celery_app", "console.keys"} <= modules.keys()
    assert cycles(import_graph(modules)) == []


def test_the_walk_finds_a_cycle_through_a_deferred_import(tmp_path):
    (tmp_path / "first.py").write_text("import second\n")
    (tmp_path / "second.py").write_text("def later():\n    from first import thing\n")
    modules = {"first": tmp_path / "first.py", "second": tmp_path / "second.py"}
    assert cycles(import_graph(modules)) == [["first", "second"]]


def test_the_dispatcher_announces_jobs_to_celery_by_name(monkeypatch, settings):
    """The web side needs the task's name, not the worker's code (which builds a whole workshop)."""
    from jobs import celery_app, dispatch
    from jobs.celery_app import run_job_task

    monkeypatch.setattr(celery_app, "worker_settings", lambda: settings)  # Celery reads its broker from them

    assert "jobs.celery_app" not in import_graph(project_modules())["jobs.dispatch"]
    sent = []
    dispatcher = dispatch.CeleryDispatcher("memory://")
    monkeypatch.setattr(dispatcher.client, "send_task", lambda name, args: sent.append((name, args)))
    dispatcher._announce([4, 7])
    assert sent == [(run_job_task.name, (4,)), (run_job_task.name, (7,))]


# --- test data and development packages stay out of production code ------------------------------

def test_production_code_imports_no_test_data_or_development_package():
    found = []
    for name, path in project_modules(PRODUCTION).items():
        for imported in imported_names(name, path):
            if imported.split(".")[0] in DEVELOPMENT_PACKAGES:
                found.append(f"{name} imports {imported}")
    assert found == []
    assert not (ROOT / "transcription" / "speech_corpus.py").exists()
    assert (ROOT / "tests" / "support" / "speech_corpus.py").is_file()


# --- states and kinds are enums ------------------------------------------------------------------

ENUM_COLUMNS = [  # (table class, column, enum, the VARCHAR length the migrations created)
    ("Recording", "decision", "TakeDecision", 16),
    ("Recording", "twilio_status", "TwilioRecordingStatus", 16),
    ("Recording", "transcription_status", "TranscriptionStatus", 16),
    ("Job", "kind", "JobKind", 32),
    ("Job", "state", "JobState", 16),
    ("Call", "status", "CallStatus", 16),
    ("Call", "purpose", "CallPurpose", 16),
    ("Question", "state", "QuestionState", 16),
]


@pytest.mark.parametrize("model, column, enum_name, length", ENUM_COLUMNS, ids=[f"{m}.{c}" for m, c, _, _ in ENUM_COLUMNS])
def test_states_and_kinds_are_enums_in_the_same_varchar(model, column, enum_name, length):
    from sqlalchemy import Enum

    from storage import models

    enum_class = getattr(models, enum_name)
    column_type = getattr(models, model).__table__.c[column].type
    assert isinstance(column_type, Enum) and column_type.enum_class is enum_class
    assert not column_type.native_enum and column_type.length == length  # no migration needed
    assert max(len(member.value) for member in enum_class) <= length
    assert all(isinstance(member, str) for member in enum_class)  # existing string comparisons still hold


def test_a_state_that_is_not_one_of_the_enum_s_is_refused(hotline):
    from sqlalchemy.exc import StatementError

    from storage.cases import open_case
    from storage.models import Recording

    with hotline.db.session() as session:
        case = open_case(session, anonymous=True)
        session.add(Recording(recording_sid="RE" + "1" * 32, call_sid="CA" + "1" * 32, case_id=case.id,
                              transcription_status="finished-ish"))
        with pytest.raises((StatementError, LookupError)):
            session.flush()


def test_a_stored_state_reads_back_as_its_enum(hotline):
    from storage.cases import open_case
    from storage.models import Recording, TakeDecision, TranscriptionStatus, TwilioRecordingStatus

    with hotline.db.session() as session:
        case = open_case(session, anonymous=True)
        session.add(Recording(recording_sid="RE" + "2" * 32, call_sid="CA" + "2" * 32, case_id=case.id))
        session.commit()
    with hotline.db.session() as session:
        recording = session.query(Recording).one()
        assert recording.decision is TakeDecision.KEEP and recording.decision == "keep"
        assert recording.twilio_status is TwilioRecordingStatus.PENDING
        assert recording.transcription_status is TranscriptionStatus.PENDING


# --- settings are read in settings.py --------------------------------------------------------------

# The key passphrase is typed or given only to the operator's commands, and never kept in a settings object.
ENVIRONMENT_READERS = {"settings", "console.settings"}
ALLOWED_READS = {("console.cli", "HOTLINE_KEY_PASSPHRASE"), ("storage.keygen", "HOTLINE_KEY_PASSPHRASE")}


def environment_reads(path: Path) -> list[tuple[int, str | None]]:
    """(line, variable) of each use of os.environ or os.getenv; the variable when it is a literal."""
    found = []
    tree = ast.parse(path.read_text())
    named = {}
    for node in ast.walk(tree):  # os.environ.get("X"), os.environ["X"], os.getenv("X")
        target, key = None, None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            target = node.func.value if node.func.attr == "get" else node.func
            key = node.args[0]
        elif isinstance(node, ast.Subscript):
            target, key = node.value, node.slice
        if target is not None and isinstance(key, ast.Constant) and isinstance(key.value, str):
            named[id(target)] = key.value
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb") \
                and isinstance(node.value, ast.Name) and node.value.id == "os":
            found.append((node.lineno, named.get(id(node))))
    return found


def test_settings_are_read_from_the_environment_only_in_settings_modules():
    found = [f"{name} line {line}: {variable or 'os.environ'}"
             for name, path in project_modules(PRODUCTION).items() if name not in ENVIRONMENT_READERS
             for line, variable in environment_reads(path) if (name, variable) not in ALLOWED_READS]
    assert found == []


def test_the_job_lease_and_sweep_have_their_defaults_in_settings_only(settings_env):
    from jobs import queue
    from settings import Settings

    for function in (queue.claim, queue.hold, queue.renew_lease):
        assert inspect.signature(function).parameters["lease"].default is inspect.Parameter.empty, function
    settings = Settings.from_env(dict(settings_env, HOTLINE_SWEEP_SECONDS="7", CELERY_BROKER_URL="redis://broker:6379/2"))
    assert settings.job_sweep_seconds == 7 and settings.broker_url == "redis://broker:6379/2"
    assert Settings.from_env(settings_env).job_sweep_seconds == 30


def test_the_model_command_takes_its_data_dir_from_the_settings(monkeypatch, tmp_path):
    from transcription import model

    fetched = []
    monkeypatch.setattr(model, "fetch_model", lambda data_dir, **_: fetched.append(data_dir))
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "data"))
    assert model.main([]) == 0
    assert fetched == [(tmp_path / "data").resolve()]
