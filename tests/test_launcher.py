"""`./fk`, the fresh-machine launcher, driven by a stand-in interpreter so the test needs no
network and no real install: it creates the environment once, installs again only when the
pinned files change, passes arguments through from any folder, runs the tests from the
repository, and refuses a Python older than 3.10 in one clear line."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# A `python3` that does what fk asks of one, and logs it: the version check (FAKE_VERSION),
# `-V`, `-m venv DIR` (a venv whose python is this script and whose `flowkit` echoes its
# arguments and folder), `-m pip ...` and `-m pytest ...` (echoed with the folder).
FAKE_PYTHON = r"""#!/bin/sh
log="${FAKE_LOG:?}"
case "$1" in
  -V) echo "Python ${FAKE_VERSION:-3.12.1}" ;;
  -c) case "${FAKE_VERSION:-3.12.1}" in 3.[0-9].*) exit 1 ;; *) exit 0 ;; esac ;;
  -m)
    case "$2" in
      venv) mkdir -p "$3/bin" && cp "$0" "$3/bin/python"
            printf '#!/bin/sh\necho "flowkit in $(pwd)"\nprintf "[%%s]\\n" "$@"\n' > "$3/bin/flowkit"
            chmod +x "$3/bin/flowkit"; echo venv >> "$log" ;;
      pip) shift 2; echo "pip $*" >> "$log"; [ -z "${FAKE_PIP_FAILS:-}" ] ;;
      pytest) shift 2; echo "pytest in $(pwd)"; printf '[%s]\n' "$@" ;;
    esac ;;
esac
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "flowkit checkout"  # a space in the path, as on many laptops
    root.mkdir()
    for name in ("fk", "pyproject.toml", "constraints.txt"):
        shutil.copy2(REPO / name, root / name)
    return root


@pytest.fixture
def python(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "python3"
    path.parent.mkdir()
    path.write_text(FAKE_PYTHON)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def fk(checkout: Path, python: Path, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    log = python.parent / "log"
    environment = {**os.environ, "PYTHON": str(python), "FAKE_LOG": str(log), **env}
    return subprocess.run([str(checkout / "fk"), *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=60, check=False)


def installs(python: Path) -> list[str]:
    log = python.parent / "log"
    return log.read_text().splitlines() if log.exists() else []


def test_first_use_installs_then_runs_flowkit_with_the_arguments(checkout: Path, python: Path,
                                                                 tmp_path: Path) -> None:
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    done = fk(checkout, python, "run", "firm one.yaml", "--set", "a.b=c d", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"flowkit in {elsewhere}", "[run]", "[firm one.yaml]",
                                        "[--set]", "[a.b=c d]"]
    assert installs(python) == [
        "venv", f"pip install -q -c {checkout}/constraints.txt -e {checkout}[test]"]
    assert "fk: installing flowkit into" in done.stderr
    # Once installed, nothing is installed again...
    done = fk(checkout, python, "--version", cwd=checkout)
    assert done.returncode == 0 and done.stdout.splitlines()[1:] == ["[--version]"]
    assert len(installs(python)) == 2 and done.stderr == ""
    # ...until the pinned versions change: then pip runs again, into the same venv.
    with (checkout / "constraints.txt").open("a") as f:
        f.write("extra-pin==1.0\n")
    done = fk(checkout, python, "validate", "x.yaml", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert installs(python)[2:] == [f"pip install -q -c {checkout}/constraints.txt -e {checkout}[test]"]


def test_test_runs_pytest_from_the_repository(checkout: Path, python: Path, tmp_path: Path) -> None:
    done = fk(checkout, python, "test", "-k", "not slow", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"pytest in {checkout}", "[-k]", "[not slow]", "[-q]"]


def test_an_old_python_is_refused_in_one_line(checkout: Path, python: Path, tmp_path: Path) -> None:
    done = fk(checkout, python, "run", "x.yaml", cwd=tmp_path, FAKE_VERSION="3.9.18")
    assert done.returncode == 1
    assert done.stderr == ("fk: flowkit needs Python 3.10 or newer; "
                           f"{python} is Python 3.9.18 (set PYTHON=/path/to/python3.10+)\n")
    assert not (checkout / ".venv").exists() and installs(python) == []


def test_a_missing_python_is_named(checkout: Path, python: Path, tmp_path: Path) -> None:
    done = fk(checkout, python, "run", cwd=tmp_path, PYTHON=str(tmp_path / "no-python"))
    assert done.returncode == 1 and done.stderr.startswith(f"fk: no {tmp_path / 'no-python'} on PATH")


def test_a_failed_install_is_retried_next_time(checkout: Path, python: Path, tmp_path: Path) -> None:
    done = fk(checkout, python, "run", cwd=tmp_path, FAKE_PIP_FAILS="1")
    assert done.returncode == 1 and "fk: pip install failed" in done.stderr
    assert "flowkit in" not in done.stdout
    done = fk(checkout, python, "run", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("flowkit in")
    assert [line.split()[0] for line in installs(python)] == ["venv", "pip", "pip"]
