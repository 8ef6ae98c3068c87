"""Drawing a flow: SVG and PNG pictures with node names and condition labels, and Graphviz text."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import pytest

from bot.dialog.draw import draw_flow, to_dot
from bot.dialog.flows import Flow, FlowRegistry

FLOW = """
    start: welcome
    fallback: not_understood
    triggers:
      - when: {intent: greeting}
    global_transitions:
      - when: {intent: cancel}
        to: goodbye
        priority: 100
    nodes:
      welcome:
        transitions:
          - when: {intent: story}
            to: story_intro
          - when: {text: "Help me"}
            to: welcome
          - when: {regex: "other"}
            to: elsewhere.far_node
      story_intro:
        actions: {skill: story}
      not_understood:
        transitions:
          - when: {always: true}
            to: welcome
      goodbye:
        actions: {end: true}
"""


@pytest.fixture
def flow(graphs, write_flow) -> Flow:
    write_flow("onboarding", FLOW)
    write_flow("elsewhere", "start: far_node\nnodes:\n  far_node: {actions: {end: true}}\n")
    return FlowRegistry.load(graphs).flows["onboarding"]


def test_svg_shows_node_names_and_condition_labels(flow, tmp_path):
    path = tmp_path / "flow.svg"
    draw_flow(flow, path)
    svg = path.read_text(encoding="utf-8")
    ElementTree.fromstring(svg)  # well-formed XML
    texts = " ".join(svg.split())
    for name in ("welcome", "story_intro", "not_understood", "goodbye", "elsewhere.far_node"):
        assert name in texts
    for label in ("intent: story", "intent: cancel", "intent: greeting", "regex: other", "no match"):
        assert label in texts
    assert "stroke-dasharray" in svg  # triggers and global transitions are dashed


def test_png_is_a_png(flow, tmp_path):
    path = tmp_path / "flow.png"
    draw_flow(flow, path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_dot_lists_nodes_and_labelled_edges(flow, tmp_path):
    path = tmp_path / "flow.dot"
    draw_flow(flow, path)
    dot = path.read_text(encoding="utf-8")
    assert dot == to_dot(flow)
    assert dot.startswith('digraph "onboarding" {')
    assert '"onboarding.welcome" -> "onboarding.story_intro" [label="intent: story", style=solid' in dot
    assert '"onboarding.<any>" -> "onboarding.goodbye" [label="intent: cancel  [priority 100]", style=dashed' in dot
    assert '[label="text: \\"Help me\\""' in dot


def test_unknown_format_is_refused(flow, tmp_path):
    with pytest.raises(ValueError, match="use one of .svg, .png, .dot"):
        draw_flow(flow, tmp_path / "flow.jpg")
    assert not Path(tmp_path / "flow.jpg").exists()
