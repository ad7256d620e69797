"""The sweep on a PostgreSQL server: a ``postgresql://`` URL opens with the ``postgres``
extra's driver, and without it the sweep stops with one line naming the extra; a refused
connection is one line; on a real server (started here, marked extended), a database in
SQL_ASCII holds a study as a UTF-8 one does, two workers share the study, and a worker
killed with SIGKILL in the middle of a trial has its trial failed by its heartbeat and
retried with the same options, resuming its run, while the other worker brings the study
to exactly N complete trials."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import test_sweep
from conftest import need_real_data
from optuna.trial import TrialState
from test_cli import run_cli
from test_sweep import ROOT, poll_trials, stamps, started_trial, write_space

from finetune import rundir
from landscape.tune.explain_sweep import only_study
from landscape.tune.sweep import open_storage

source = test_sweep.source  # the fixture: test_sweep.py's tiny pre-trained run
TRIALS = 4
USER, DATABASE = "sweep", "sweeps"  # the server's superuser (trust authentication), the study's db
HOST = socket.gethostname()  # a worker is recorded as HOST:PID
SERVER_USER = "postgres"  # Debian's system user that runs the server when the tests run as root
BLOCKED_DRIVER = (
    "import runpy, sys; sys.modules['psycopg'] = None; runpy.run_module('cli', run_name='__main__')"
)


def test_a_postgresql_storage_without_its_driver_is_one_line_naming_the_extra(tmp_path, source):
    space = write_space(tmp_path, source)
    url = "postgresql://sweep:secret@127.0.0.1:1/sweeps"
    # `python -m cli sweep ...` where psycopg cannot be imported, as without the extra.
    command = [sys.executable, "-c", BLOCKED_DRIVER, "sweep", "--space", str(space),
               "--trials", "1", "--storage", url, "--out", str(tmp_path / "sweep")]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines() == [
        "error: --storage postgresql://sweep:***@127.0.0.1:1/sweeps needs the PostgreSQL "
        'driver: pip install -e ".[postgres]"'
    ]


def test_a_refused_connection_is_one_line(monkeypatch, capsys):
    need_real_data(importlib.util.find_spec("psycopg") is not None, 'pip install -e ".[postgres]"')
    url = f"postgresql://{USER}@127.0.0.1:{_free_port()}/{DATABASE}"
    code, stdout, stderr = run_cli(monkeypatch, capsys, "sweep", "--report", "--study", "s",
                                   "--storage", url)  # fmt: skip
    assert (code, stdout) == (1, "")
    (line,) = stderr.splitlines()
    assert line.startswith(f"error: cannot open the study storage {url}: ")
    assert "Connection refused" in line


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server of this test's own on 127.0.0.1 (a free port, trust
    authentication, fsync off) holding an empty database, by a URL without a driver as a
    user writes it; stopped and removed at the end."""
    bindir = _server_binaries()
    need_real_data(bindir is not None, "apt-get install postgresql")
    need_real_data(importlib.util.find_spec("psycopg") is not None, 'pip install -e ".[postgres]"')
    # Not tmp_path: under root the server runs as its own user, who cannot enter that.
    home = Path(tempfile.mkdtemp(prefix="landscape-pg-"))
    data, log, port = home / "data", home / "server.log", _free_port()
    try:
        if os.geteuid() == 0:
            shutil.chown(home, SERVER_USER)
        _server(bindir / "initdb", "-D", data, "-U", USER, "--auth=trust", "--no-locale",
                "--encoding=UTF8")  # fmt: skip
        options = f"-h 127.0.0.1 -p {port} -k {home} -F"
        _server(bindir / "pg_ctl", "start", "-w", "-t", "30", "-D", data, "-l", log, "-o", options,
                log=log)  # fmt: skip
        _create_database(port)
        yield f"postgresql://{USER}@127.0.0.1:{port}/{DATABASE}"
    finally:
        if (data / "postmaster.pid").exists():
            _server(bindir / "pg_ctl", "stop", "-m", "immediate", "-w", "-t", "30", "-D", data)
        shutil.rmtree(home, ignore_errors=True)


def _server_binaries() -> Path | None:
    """The folder of initdb and pg_ctl: on the PATH, else Debian's newest version; None
    without them (or, under root, without the server's system user)."""
    if os.geteuid() == 0 and SERVER_USER not in {user.pw_name for user in pwd.getpwall()}:
        return None
    found = shutil.which("initdb")
    if found is not None:
        return Path(found).resolve().parent
    debian = [p for p in Path("/usr/lib/postgresql").glob("*/bin/initdb") if p.parts[-3].isdigit()]
    return max(debian, key=lambda p: int(p.parts[-3])).parent if debian else None


def _server(*command: str | Path, log: Path | None = None) -> None:
    """Run a server command, as the server's system user under root; fail with its output
    (and the server's log) when it fails."""
    args = [str(a) for a in command]
    if os.geteuid() == 0:
        args = ["runuser", "-u", SERVER_USER, "--", *args]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    logged = log.read_text() if log is not None and log.exists() else ""
    assert done.returncode == 0, f"{' '.join(args)}: {done.stdout}{done.stderr}{logged}"


def _create_database(port: int, name: str = DATABASE, encoding: str = "UTF8") -> None:
    """An empty database ``name`` in ``encoding`` (by default the study's), made through
    the server's own ``postgres`` one."""
    import psycopg

    server = f"postgresql://{USER}@127.0.0.1:{port}/postgres"
    with psycopg.connect(server, autocommit=True, connect_timeout=30) as connection:
        connection.execute(f"create database {name} encoding '{encoding}' template template0")


@pytest.mark.extended
def test_a_sql_ascii_database_holds_a_study_as_a_utf8_one_does(postgres_url):
    # SQL_ASCII is initdb's encoding under the C locale; psycopg would read its text as
    # bytes, which SQLAlchemy cannot parse (it failed on the server's version string).
    import psycopg

    port = int(postgres_url.rsplit(":", 1)[1].split("/")[0])
    _create_database(port, "ascii", "SQL_ASCII")
    url = postgres_url.rsplit("/", 1)[0] + "/ascii"
    with psycopg.connect(url) as connection:
        (encoding,) = connection.execute("show server_encoding").fetchone()
    assert encoding in ("SQL_ASCII", b"SQL_ASCII")
    optuna.create_study(study_name="s", storage=open_storage(url)).set_user_attr("run", "λ/0")
    study = optuna.load_study(study_name="s", storage=open_storage(url))
    assert study.user_attrs == {"run": "λ/0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _parent(pid: int) -> int:
    """The parent process of ``pid`` (Linux's /proc: the field after the name's ')')."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _kill_a_worker(
    sweep: subprocess.Popen, url: str
) -> tuple[int, int, dict[int, Path], list[int]] | None:
    """SIGKILL the worker process (a child of ``sweep``) of a trial in the middle of its
    training, once another trial is complete. Returns the trial's number, the worker's pid,
    every trial's run directory then and the complete trials then; None when the sweep
    ended or a minute passed first."""
    import psycopg

    deadline = time.monotonic() + 60
    with psycopg.connect(url, autocommit=True) as connection:
        while time.monotonic() < deadline and sweep.poll() is None:
            time.sleep(0.05)
            try:
                trials, attrs = poll_trials(connection)
            except psycopg.errors.UndefinedTable:  # the study's tables are not made yet
                continue
            runs = {n: Path(a["run"]) for n, a in attrs.items() if "run" in a}
            number = started_trial(trials, runs)
            if number is not None:
                pid = int(attrs[number]["worker"].rsplit(":", 1)[1])
                assert _parent(pid) == sweep.pid
                os.kill(pid, signal.SIGKILL)
                return number, pid, runs, [n for n, s in trials if s == "COMPLETE"]
    return None


@contextlib.contextmanager
def _sweep(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """The sweep command running in a session of its own, its stderr in ``log``; whatever
    of it still runs at the end is killed, its workers included."""
    with open(log, "w") as err:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                   stderr=err, start_new_session=True)  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _with_psycopg(url: str) -> str:
    """The SQLAlchemy URL that names psycopg, for reading the study with Optuna itself."""
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.mark.extended
def test_a_worker_killed_on_postgresql_has_its_trial_retried(tmp_path, source, postgres_url):
    space = write_space(tmp_path, source, per_class=8, epochs=5)
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "cli", "sweep", "--space", str(space), "--trials",
               str(TRIALS), "--workers", "2", "--storage", postgres_url, "--out", str(out),
               "--heartbeat", "1", "--no-prune"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = tmp_path / "first.log"
    with _sweep(command, env, log) as first:
        found = _kill_a_worker(first, postgres_url)
        assert found is not None, log.read_text()
        killed, pid, runs, done = found
        before = {n: stamps(runs[n]) for n in done}
        interrupted = runs[killed]
        init_stamp = (interrupted / rundir.INIT).stat().st_mtime_ns
        # The other worker goes on: it fails the killed trial once its heartbeat is stale
        # and retries it.
        first.wait(timeout=90)
    # The study is complete: the command says that a worker died, and succeeds.
    assert first.returncode == 0, log.read_text()
    assert "a sweep worker exited with code -9; the others finished its trials" in log.read_text()

    study = optuna.load_study(study_name="space", storage=_with_psycopg(postgres_url))
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == TRIALS
    assert [t.number for t in trials if t.state == TrialState.FAIL] == [killed]
    assert len(trials) == TRIALS + 1  # nothing waiting, running or pruned, and no extra trial
    assert len({t.user_attrs["run"] for t in complete}) == TRIALS
    assert len({tuple(sorted(t.params.items())) for t in complete}) == TRIALS
    retry = [t for t in complete if t.system_attrs.get("failed_trial") == killed]
    assert len(retry) == 1 and retry[0].params == trials[killed].params
    assert trials[killed].user_attrs["worker"] == f"{HOST}:{pid}"
    assert retry[0].user_attrs["worker"] != f"{HOST}:{pid}"  # the other worker retried it
    assert Path(retry[0].user_attrs["run"]) == interrupted
    # Resumed, not trained again from scratch: the initial weights were written once.
    assert (interrupted / rundir.INIT).stat().st_mtime_ns == init_stamp
    assert rundir.read_status(interrupted)[0] == "completed"
    assert {n: stamps(runs[n]) for n in done} == before
    assert only_study(out, postgres_url) == "space"

    # Run again, the study stays as it is: no trial is added and no run trained again.
    finished = {t.number: stamps(Path(t.user_attrs["run"])) for t in complete}
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=90)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert f"study space: {TRIALS} complete, 1 fail;" in again.stdout
    states = [(t.number, t.state) for t in trials]
    assert [(t.number, t.state) for t in study.get_trials()] == states
    assert {t.number: stamps(Path(t.user_attrs["run"])) for t in complete} == finished
