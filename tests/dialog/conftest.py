"""Helpers for dialog graph tests: flow files written to a temporary folder, annotations by intent."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.core.annotations import Annotations, IntentGuess

WriteFlow = Callable[[str, str], Path]


@pytest.fixture
def graphs(tmp_path: Path) -> Path:
    folder = tmp_path / "dialog_graphs"
    folder.mkdir()
    return folder


@pytest.fixture
def write_flow(graphs: Path) -> WriteFlow:
    """write_flow("story", yaml) -> the path of dialog_graphs/story.yaml."""

    def write(flow_id: str, text: str) -> Path:
        path = graphs / f"{flow_id}.yaml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def annotated() -> Callable[..., Annotations]:
    """annotated("story"): Annotations as the NLU leaves them for a message of that intent (None: out of scope)."""

    def make(intent: str | None = None) -> Annotations:
        guess = IntentGuess(intent, 1.0, "test") if intent else None
        return Annotations(language="en", intent=guess, ranking=[guess] if guess else [])

    return make
