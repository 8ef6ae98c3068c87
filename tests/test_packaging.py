"""A real wheel: it carries the code and the data Tandem reads, and its installed copy runs from an empty folder."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from bot.resources import SHIPPED_FOLDERS
from bot.settings import PROJECT_ROOT
from tests.processes import terminate

# What the build reads: the project file, its readme, the packages and the folders mapped into bot/.
SOURCES = ("pyproject.toml", "README.md", "bot", "skills", *SHIPPED_FOLDERS)
# Run in a child: where its bot.resources is, then where it finds each shipped folder.
PRINT_FOLDERS = ("import bot.resources as r; print(r.__file__); "
                 "[print(r.shipped_folder(name)) for name in r.SHIPPED_FOLDERS]")


def _copy_sources(target: Path) -> Path:
    """The sources in a folder of their own, so that building leaves no build/ or egg-info in the checkout."""
    target.mkdir()
    for name in SOURCES:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target / name)
    return target


def _can_build() -> None:
    """Building needs pip and, without build isolation (no network), setuptools: skip without them."""
    for module in ("pip", "setuptools"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"cannot build a wheel here: {module} is not installed in {sys.executable}")


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False, **kwargs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _can_build()
    sources = _copy_sources(tmp_path_factory.mktemp("build") / "src")
    out = sources.parent / "wheel"
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), "."],
                 cwd=sources)
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = out.glob("tandem-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    done = _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "--target", str(site),
                 str(wheel)])
    assert done.returncode == 0, done.stdout + done.stderr
    return site


@pytest.fixture
def user(tmp_path: Path, installed: Path, subprocess_env: dict[str, str]) -> dict:
    """An empty working folder and an environment whose `bot` is the installed copy's, with the user's
    data folder ($XDG_DATA_HOME/tandem, the installed default) under tmp_path."""
    cwd = tmp_path / "empty"
    cwd.mkdir()
    env = {**subprocess_env, "PYTHONPATH": str(installed), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    return {"cwd": cwd, "env": env, "data": tmp_path / "xdg" / "tandem"}


def _tandem(user: dict, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "bot.cli", *args], cwd=user["cwd"], env=user["env"], **kwargs)


def _files(names: list[str], prefix: str) -> set[str]:
    return {name[len(prefix):] for name in names if name.startswith(prefix) and not name.endswith("/")}


def _checkout_files(folder: str) -> set[str]:
    root = PROJECT_ROOT / folder
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def test_the_wheel_carries_the_migrations_intents_and_dialog_graphs(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    migrations = _files(names, "bot/migrations/")
    assert {"env.py", "script.py.mako"} <= migrations
    versions = {p.name for p in (PROJECT_ROOT / "migrations" / "versions").glob("*.py")}
    assert versions and {f"versions/{name}" for name in versions} <= migrations
    intents = {p.name for p in (PROJECT_ROOT / "intents").glob("*.yaml")}
    assert intents and _files(names, "bot/intents/") == intents
    graphs = {p.name for p in (PROJECT_ROOT / "dialog_graphs").glob("*.yaml")}
    assert graphs and _files(names, "bot/dialog_graphs/") == graphs


@pytest.mark.parametrize("folder, inside", [("bot", "bot/"), ("skills", "skills/"),
                                            *((name, f"bot/{name}/") for name in SHIPPED_FOLDERS)])
def test_every_file_of_the_checkout_is_in_the_wheel(wheel: Path, folder: str, inside: str) -> None:
    """A new package (pyproject.toml lists them by name) or a new kind of data file fails here."""
    missing = _checkout_files(folder) - _files(zipfile.ZipFile(wheel).namelist(), inside)
    assert not missing, f"not in the wheel (add to [tool.setuptools] in pyproject.toml): {sorted(missing)}"


def test_the_installed_copy_migrates_checks_and_reports_from_an_empty_folder(user: dict, installed: Path) -> None:
    # The commands below run the installed bot, not the checkout's, and its shipped folders.
    probe = _run([sys.executable, "-c", PRINT_FOLDERS], cwd=user["cwd"], env=user["env"])
    assert probe.stdout.split() == [str(installed / "bot" / "resources.py"),
                                    *(str(installed / "bot" / name) for name in SHIPPED_FOLDERS)], probe.stderr

    database = user["data"] / "tandem.sqlite3"
    before = _tandem(user, "feedback", "report")
    assert before.returncode == 2, before.stdout + before.stderr
    assert f"database: sqlite+aiosqlite:///{database}" in before.stderr
    assert f"no database at {database}" in before.stderr
    assert not user["data"].exists()  # reading a report makes no database

    migrated = _tandem(user, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert f"database up to date: sqlite+aiosqlite:///{database}" in migrated.stdout
    assert database.is_file()

    checked = _tandem(user, "graph", "check")
    graphs = len(list((PROJECT_ROOT / "dialog_graphs").glob("*.yaml")))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"ok: {graphs} flows, ")

    report = _tandem(user, "feedback", "report")
    assert report.returncode == 0, report.stderr
    assert report.stdout.startswith("Tandem feedback report") and "conversations 0" in report.stdout
    assert f"database: sqlite+aiosqlite:///{database}" in report.stderr
    assert "Traceback" not in before.stderr + migrated.stderr + checked.stderr + report.stderr
    assert list(user["cwd"].iterdir()) == []  # nothing written into the working folder


def test_an_editable_install_finds_the_folders_in_the_checkout(tmp_path: Path) -> None:
    """The other way Tandem is installed (`pip install -e .`, make run): the folders stay where they are."""
    _can_build()
    sources = _copy_sources(tmp_path / "src")
    build = "import sys; from setuptools import build_meta as b; print(b.build_editable(sys.argv[1]))"
    built = _run([sys.executable, "-c", build, str(tmp_path / "wheel")], cwd=sources)
    assert built.returncode == 0, built.stdout + built.stderr
    site = tmp_path / "site"
    (editable,) = (tmp_path / "wheel").glob("tandem-*.whl")
    done = _run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(editable)])
    assert done.returncode == 0, done.stdout + done.stderr
    # -I -S: neither the checkout nor this virtualenv's own editable install; only the new one's finder.
    probe = _run([sys.executable, "-I", "-S", "-c", f"import site, sys; site.addsitedir(sys.argv[1]); {PRINT_FOLDERS}",
                  str(site)], cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [str(sources / "bot" / "resources.py"),
                                    *(str(sources / name) for name in SHIPPED_FOLDERS)]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


@pytest.mark.slow
def test_the_installed_copy_serves_and_chats_from_an_empty_folder(user: dict) -> None:
    """`tandem run` and `tandem chat` with the real encoder and the small bundled model (~15 s each)."""
    process = subprocess.Popen([sys.executable, "-m", "bot.cli", "run", "--port", "0"], cwd=user["cwd"],
                               env=user["env"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        base, lines, deadline = None, [], time.monotonic() + 180
        while base is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            if found := re.search(r"running at (http://127\.0\.0\.1:\d+)/", line):
                base = found.group(1)
        assert base, "".join(lines)
        assert b'"ok"' in _get(f"{base}/healthz")
        assert _get(f"{base}/widget.js") == (PROJECT_ROOT / "bot" / "web" / "static" / "widget.js").read_bytes()
    finally:
        try:
            terminate(process)
        finally:
            process.stderr.close()
    assert process.returncode == 0
    assert (user["data"] / "tandem.sqlite3").is_file()

    chat = _tandem(user, "chat", "--user", "ann", input="help\n")
    assert chat.returncode == 0, chat.stderr
    assert "what I can do" in chat.stdout and "Traceback" not in chat.stderr
    assert list(user["cwd"].iterdir()) == []
