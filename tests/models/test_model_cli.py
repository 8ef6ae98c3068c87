"""`tandem model info|prepare|try` through the real `tandem` command, on the bundled SmolLM2."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from bot.cli import main

from .conftest import needs_llama_cpp, needs_smollm2


@pytest.fixture
def one_thread(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings in the test's data folder (the `settings` fixture), and one llama.cpp thread on a small machine."""
    monkeypatch.setenv("TANDEM_LM__N_THREADS", "1")


def test_the_model_group_has_its_three_commands() -> None:
    result = CliRunner().invoke(main, ["model", "--help"])
    assert result.exit_code == 0, result.output
    for command in ("prepare", "info", "try"):
        assert re.search(rf"^\s+{command}\s", result.output, re.MULTILINE), result.output


@needs_smollm2
def test_info_shows_the_configured_model_and_each_bundled_one(one_thread) -> None:
    result = CliRunner().invoke(main, ["model", "info"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("lm.model = bundled:qwen2.5-1.5b  (backend auto, threads 1,")
    assert "bundled:qwen2.5-1.5b" in result.output and "bundled:smollm2" in result.output
    assert re.search(r"ready: .+SmolLM2-135M-Instruct\.Q4_1\.gguf$", result.output, re.MULTILINE)


def test_an_unknown_model_is_an_error_message_not_a_traceback(one_thread) -> None:
    for command in (["model", "prepare"], ["model", "try", "hi"]):
        result = CliRunner().invoke(main, [*command, "--model", "bundled:nope"])
        assert result.exit_code == 1, command
        assert "unknown bundled model 'bundled:nope'" in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.slow
@needs_smollm2
@needs_llama_cpp
def test_prepare_loads_the_bundled_model(one_thread) -> None:
    result = CliRunner().invoke(main, ["model", "prepare", "--model", "bundled:smollm2"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^bundled:smollm2: ready \(LlamaCppModel, \d+\.\d s\)$", result.output, re.MULTILINE)


@pytest.mark.slow
@needs_smollm2
@needs_llama_cpp
def test_try_streams_a_raw_continuation_and_counts_its_pieces(one_thread) -> None:
    result = CliRunner().invoke(
        main, ["model", "try", "--model", "bundled:smollm2", "Once upon a time", "--raw", "--max-new-tokens", "8"]
    )
    assert result.exit_code == 0, result.output
    text, _, summary = result.output.rpartition("\n[")
    assert text.strip()
    found = re.fullmatch(r"first piece \d+ ms, (\d+) pieces in \d+\.\d s\]\n", summary)
    assert found and 1 <= int(found.group(1)) <= 8, summary
