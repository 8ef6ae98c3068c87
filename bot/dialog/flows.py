"""Loading dialog graph files into flows, with every error named by file, node and field."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import yaml
from pydantic import ValidationError

from bot.core.errors import GraphError
from bot.dialog.schema import NAME, Condition, FlowFile, Node, Transition, Trigger

# Pseudo-nodes of Flow.graph; the angle brackets keep them apart from real node names.
ENTRY = "<entry>"  # no flow is active: the source of trigger edges
ANY_NODE = "<any>"  # whichever node is current: the source of global transition and fallback edges


@dataclass
class Flow:
    """One validated flow. `graph` has nodes "flow.node" (plus pseudo-nodes and other flows'
    targets, told apart by the `kind` attribute) and edges with `label`, `priority` and `kind`
    (transition, global, trigger, fallback)."""

    id: str
    file: Path
    description: str
    start: str
    fallback: str | None
    nodes: dict[str, Node]
    triggers: tuple[Trigger, ...]
    global_transitions: tuple[Transition, ...]
    graph: nx.DiGraph = field(repr=False)

    def resolve(self, target: str) -> tuple[str, str]:
        """("flow", "node") for a target written "node" (this flow) or "flow.node"."""
        flow, _, node = target.rpartition(".")
        return flow or self.id, node

    def trigger_target(self, trigger: Trigger) -> tuple[str, str]:
        return self.resolve(trigger.to or self.start)


class FlowRegistry:
    """All flows by id; load() is the one place graph files are read."""

    def __init__(self, flows: dict[str, Flow]) -> None:
        self.flows = flows

    def __contains__(self, flow_id: object) -> bool:
        return flow_id in self.flows

    def __len__(self) -> int:
        return len(self.flows)

    @property
    def node_count(self) -> int:
        return sum(len(f.nodes) for f in self.flows.values())

    def node(self, flow_id: str | None, node_name: str | None) -> Node | None:
        flow = self.flows.get(flow_id) if flow_id else None
        return flow.nodes.get(node_name) if flow and node_name else None

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        known_intents: set[str] | None = None,
        known_skills: set[str] | None = None,
    ) -> FlowRegistry:
        """Load one file or every *.yaml/*.yml of a folder; raise one GraphError listing every problem.

        `known_intents` / `known_skills` of None skip that check (e.g. drawing a graph).
        """
        path = Path(path)
        if not path.exists():
            raise GraphError(f"{_shown(path)}: no such file or folder")
        files = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")) if path.is_dir() else [path]
        loader = _Loader(known_intents, known_skills)
        for file in files:
            loader.read(file)
        return cls(loader.finish())


class _Loader:
    """Reads files one by one, then checks what needs all flows (targets, reachability)."""

    def __init__(self, known_intents: set[str] | None, known_skills: set[str] | None) -> None:
        self.known_intents = known_intents
        self.known_skills = known_skills
        self.parsed: dict[str, tuple[Path, FlowFile]] = {}
        self.errors: dict[str, list[str]] = {}  # by shown file name, in file order
        # Node names and targets of every flow, broken ones included (best effort), so that one
        # broken file does not make other flows' targets into it look unknown or unreachable.
        self.node_names: dict[str, set[str]] = {}
        self.raw_targets: list[str] = []

    def error(self, file: Path, message: str, node: str | None = None, where: str | None = None) -> None:
        parts = [_shown(file)] + ([f"node {node!r}"] if node is not None else []) + ([where] if where else [])
        self.errors.setdefault(_shown(file), []).append(": ".join(parts + [message]))

    def read(self, file: Path) -> None:
        flow_id = file.stem
        self.errors.setdefault(_shown(file), [])
        if not NAME.match(flow_id):
            self.error(file, f"flow id (the file stem) {flow_id!r} must be a letter or _ then letters, digits or _")
            return
        if flow_id in self.node_names:
            self.error(file, f"flow {flow_id!r} is defined twice (another file has the same stem)")
            return
        try:
            raw = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            self.node_names[flow_id] = set()
            self.error(file, f"cannot read: {exc}")
            return
        if not isinstance(raw, dict):
            self.node_names[flow_id] = set()
            self.error(file, "expected a mapping with `start:` and `nodes:`")
            return
        raw_nodes = raw.get("nodes")
        self.node_names[flow_id] = {str(n) for n in raw_nodes} if isinstance(raw_nodes, dict) else set()
        try:
            self.parsed[flow_id] = (file, FlowFile.model_validate(raw))
        except ValidationError as exc:
            self.raw_targets.extend(_raw_targets(raw, flow_id))
            for err in exc.errors():
                self._schema_error(file, err)

    def _schema_error(self, file: Path, err: Any) -> None:
        loc = tuple(err["loc"])
        node = None
        if loc[:1] == ("nodes",) and len(loc) >= 2:
            node, loc = str(loc[1]), loc[2:]
        if err["type"] == "extra_forbidden":
            message, loc = f"unknown key {loc[-1]!r}", loc[:-1]
        elif err["type"] == "missing" and loc == ("start",):
            message = "missing start node (`start:` is required)"
        elif err["type"] == "missing":
            message = "required"
        elif err["type"] == "value_error":
            message = str(err["ctx"]["error"])
        else:
            message = err["msg"]
        self.error(file, message, node, _field_path(loc))

    def finish(self) -> dict[str, Flow]:
        flows = {flow_id: self._check(flow_id, file, spec) for flow_id, (file, spec) in self.parsed.items()}
        self._check_reachable(flows)
        problems = [line for lines in self.errors.values() for line in lines]
        if problems:
            raise GraphError("\n".join(problems))
        return flows

    def _check(self, flow_id: str, file: Path, spec: FlowFile) -> Flow:
        flow = Flow(
            id=flow_id,
            file=file,
            description=spec.description,
            start=spec.start,
            fallback=spec.fallback,
            nodes=spec.nodes,
            triggers=spec.triggers,
            global_transitions=spec.global_transitions,
            graph=nx.DiGraph(),
        )
        if spec.start not in spec.nodes:
            self.error(file, f"unknown start node {spec.start!r}", where="start")
        if spec.fallback is not None and spec.fallback not in spec.nodes:
            self.error(file, f"unknown fallback node {spec.fallback!r}", where="fallback")
        for i, trigger in enumerate(spec.triggers):
            self._check_condition(file, None, f"triggers[{i}].when", trigger.when)
            if trigger.to is not None:
                self._check_target(file, flow, None, f"triggers[{i}].to", trigger.to)
        for i, transition in enumerate(spec.global_transitions):
            self._check_condition(file, None, f"global_transitions[{i}].when", transition.when)
            self._check_target(file, flow, None, f"global_transitions[{i}].to", transition.to)
        for name, node in spec.nodes.items():
            self._check_node(file, flow, name, node)
        _build_graph(flow, self.node_names)
        return flow

    def _check_node(self, file: Path, flow: Flow, name: str, node: Node) -> None:
        for i, transition in enumerate(node.transitions):
            self._check_condition(file, name, f"transitions[{i}].when", transition.when)
            self._check_target(file, flow, name, f"transitions[{i}].to", transition.to)
        skill = node.actions.skill
        if skill is not None and self.known_skills is not None and skill not in self.known_skills:
            known = ", ".join(sorted(self.known_skills)) or "none"
            self.error(file, f"unknown skill {skill!r} (known: {known})", name, "actions.skill")
        if not node.transitions and not node.actions.terminal:
            self.error(file, "non-terminal node has no exits (add transitions, or actions.end / actions.skill)",
                       name, "transitions")
        if node.transitions and node.actions.terminal:
            # The flow is left after a terminal node, so its own transitions could never be taken.
            self.error(file, "a node with actions.end or actions.skill is terminal; its transitions never run",
                       name, "transitions")

    def _check_condition(self, file: Path, node: str | None, where: str, condition: Condition) -> None:
        if self.known_intents is None:
            return
        for part, part_where in _walk(condition, where):
            for intent in part.intent or ():
                if intent not in self.known_intents:
                    self.error(file, f"unknown intent {intent!r}", node, f"{part_where}.intent")

    def _check_target(self, file: Path, flow: Flow, node: str | None, where: str, target: str) -> None:
        target_flow, target_node = flow.resolve(target)
        if target_flow not in self.node_names:
            self.error(file, f"unknown flow {target_flow!r} in target {target!r}", node, where)
        elif target_node not in self.node_names[target_flow]:
            self.error(file, f"unknown target {target!r}", node, where)

    def _check_reachable(self, flows: dict[str, Flow]) -> None:
        """A node is reachable from its flow's entries (start, triggers, fallback, global
        transitions) or from any node of another flow, following transitions."""
        combined = nx.DiGraph()
        roots: set[str] = set(self.raw_targets)
        for flow in flows.values():
            combined.update(flow.graph)
            roots.add(f"{flow.id}.{flow.start}")
            roots.update(flow.graph.successors(f"{flow.id}.{ENTRY}"))
            roots.update(flow.graph.successors(f"{flow.id}.{ANY_NODE}"))
            roots.update(v for u, v in flow.graph.edges if u.split(".")[0] != v.split(".")[0])
        reached = set(roots)
        for root in roots & set(combined):
            reached |= nx.descendants(combined, root)
        for flow in flows.values():
            for name in flow.nodes:
                if f"{flow.id}.{name}" not in reached:
                    self.error(flow.file, "unreachable: no path from start, triggers, fallback, global "
                               "transitions or another flow", name)


def _build_graph(flow: Flow, node_names: dict[str, set[str]]) -> None:
    """Fill flow.graph; edges to unknown targets are left out (they are reported as errors)."""
    graph = flow.graph
    graph.graph.update(flow=flow.id, description=flow.description)
    for name, node in flow.nodes.items():
        graph.add_node(
            f"{flow.id}.{name}", kind="node", flow=flow.id, name=name,
            start=name == flow.start, fallback=name == flow.fallback,
            end=node.actions.end, skill=node.actions.skill,
        )
    graph.add_node(f"{flow.id}.{ENTRY}", kind="entry", flow=flow.id, name=ENTRY)
    graph.add_node(f"{flow.id}.{ANY_NODE}", kind="any", flow=flow.id, name=ANY_NODE)

    def add_edge(source: str, target: str, label: str, priority: int, kind: str) -> None:
        target_flow, target_node = flow.resolve(target)
        if target_node not in node_names.get(target_flow, ()):
            return
        head = f"{target_flow}.{target_node}"
        if head not in graph:
            graph.add_node(head, kind="external", flow=target_flow, name=target_node)
        tail = f"{flow.id}.{source}"
        if graph.has_edge(tail, head):
            # A DiGraph keeps one edge per pair: join the conditions, keep the highest priority.
            edge = graph.edges[tail, head]
            edge["label"] += f"\nor {label}"
            edge["priority"] = max(edge["priority"], priority)
        else:
            graph.add_edge(tail, head, label=label, priority=priority, kind=kind)

    for trigger in flow.triggers:
        add_edge(ENTRY, trigger.to or flow.start, trigger.when.label(), trigger.priority, "trigger")
    for transition in flow.global_transitions:
        add_edge(ANY_NODE, transition.to, transition.when.label(), transition.priority, "global")
    if flow.fallback is not None:
        add_edge(ANY_NODE, flow.fallback, "no match", 0, "fallback")
    for name, node in flow.nodes.items():
        for transition in node.transitions:
            add_edge(name, transition.to, transition.when.label(), transition.priority, "transition")


def _walk(condition: Condition, where: str) -> Iterator[tuple[Condition, str]]:
    """The condition and all conditions nested in it, each with its field path."""
    yield condition, where
    for key, children in (("any", condition.any_of), ("all", condition.all_of)):
        for i, child in enumerate(children or ()):
            yield from _walk(child, f"{where}.{key}[{i}]")
    if condition.negated is not None:
        yield from _walk(condition.negated, f"{where}.not")


def _raw_targets(raw: dict[str, Any], flow_id: str) -> Iterator[str]:
    """Targets of a file that failed validation, read defensively, as "flow.node"."""
    nodes = raw.get("nodes")
    sections = [raw.get("triggers"), raw.get("global_transitions")]
    if isinstance(nodes, dict):
        sections += [body.get("transitions") for body in nodes.values() if isinstance(body, dict)]
    for section in sections:
        for item in section if isinstance(section, list) else ():
            target = item.get("to") if isinstance(item, dict) else None
            if isinstance(target, str):
                yield target if "." in target else f"{flow_id}.{target}"
    for key in ("start", "fallback"):
        if isinstance(raw.get(key), str):
            yield f"{flow_id}.{raw[key]}"


def _field_path(loc: tuple[Any, ...]) -> str:
    """("transitions", 1, "to") -> "transitions[1].to"."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _shown(file: Path) -> str:
    """The file as a person typed it: relative to the working folder when it lies below it."""
    try:
        return os.path.relpath(file) if Path(file).resolve().is_relative_to(Path.cwd()) else str(file)
    except (OSError, ValueError):
        return str(file)
