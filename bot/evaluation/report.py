"""The report of a conversation evaluation: pass rates overall and per tag, routes expected vs got,
and every failure with its transcript; as text for a terminal and as JSON."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.evaluation.conversations import ConversationResult


def _rate(passed: int, total: int) -> float:
    return passed / total if total else 0.0


@dataclass
class EvalReport:
    results: list[ConversationResult]
    model: str = ""
    # False: the fake model answered, and turns whose properties need the real one checked their route only.
    properties_of_model: bool = True
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def pass_rate(self) -> float:
        return _rate(self.passed, len(self.results))

    @property
    def turns(self) -> list:
        return [t for r in self.results for t in r.turns]

    @property
    def failures(self) -> list[ConversationResult]:
        return [r for r in self.results if not r.passed]

    def by_tag(self) -> dict[str, tuple[int, int]]:
        """tag -> (conversations passed, conversations), tags sorted by name."""
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for result in self.results:
            for tag in result.case.all_tags:
                counts[tag][0] += result.passed
                counts[tag][1] += 1
        return {tag: (passed, total) for tag, (passed, total) in sorted(counts.items())}

    def confusion(self) -> dict[str, Counter]:
        """Expected route ("a|b" for a choice) -> Counter of the routes that answered."""
        table: dict[str, Counter] = defaultdict(Counter)
        for turn in self.turns:
            if turn.expected.routes:
                table["|".join(turn.expected.routes)][turn.reply.skill] += 1
        return dict(sorted(table.items()))

    def to_json(self) -> dict[str, Any]:
        turns = self.turns
        return {
            "model": self.model,
            "properties_of_model": self.properties_of_model,
            "conversations": len(self.results),
            "passed": self.passed,
            "pass_rate": round(self.pass_rate, 4),
            "turns": len(turns),
            "turns_passed": sum(t.passed for t in turns),
            "turn_pass_rate": round(_rate(sum(t.passed for t in turns), len(turns)), 4),
            "route_only_turns": sum(not t.properties_checked for t in turns),
            "tags": {tag: {"passed": p, "conversations": n, "pass_rate": round(_rate(p, n), 4)}
                     for tag, (p, n) in self.by_tag().items()},
            "confusion": {expected: dict(got) for expected, got in self.confusion().items()},
            "warnings": self.warnings,
            "failures": [_failure_json(r) for r in self.failures],
        }


def _failure_json(result: ConversationResult) -> dict[str, Any]:
    return {
        "id": result.case.id,
        "source": result.case.source,
        "tags": list(result.case.all_tags),
        "error": result.error,
        "turns": [
            {"turn": t.number, "user": t.user, "route": t.reply.skill, "node": t.node, "intent": t.reply.intent,
             "confidence": t.reply.confidence, "reply": t.reply.text,
             "suggestions": list(t.reply.suggestions), "status": t.reply.status, "failures": t.failures}
            for t in result.turns if not t.passed
        ],
        "transcript": result.transcript,
    }


def _understood(reply) -> str:
    """What the NLU made of the message: why a turn went where it went."""
    if reply.intent is None:
        return "no intent"
    return f"intent {reply.intent} {reply.confidence:.2f}" if reply.confidence is not None else f"intent {reply.intent}"


def format_report(report: EvalReport, *, transcripts: bool = True) -> str:
    turns = report.turns
    turns_passed = sum(t.passed for t in turns)
    route_only = sum(not t.properties_checked for t in turns)
    lines = [(
        f"conversations: {report.passed}/{len(report.results)} passed ({report.pass_rate:.1%}); "
        f"turns: {turns_passed}/{len(turns)} ({_rate(turns_passed, len(turns)):.1%}); model: {report.model or '?'}"
    )]
    if route_only:
        lines.append(f"  ({route_only} turns need the real model for their properties: only their route was checked)")
    tags = report.by_tag()
    if tags:
        width = max(len(tag) for tag in tags)
        lines += ["", "by tag (conversations passed):"]
        lines += [f"  {tag:<{width}}  {p:>3}/{n:<3}  {_rate(p, n):6.1%}" for tag, (p, n) in tags.items()]
    confusion = report.confusion()
    if confusion:
        width = max(len(expected) for expected in confusion)
        lines += ["", "routes (expected: right/turns; wrong ones got):"]
        for expected, got in confusion.items():
            allowed = set(expected.split("|"))
            right = sum(n for route, n in got.items() if route in allowed)
            wrong = ", ".join(f"{route} {n}" for route, n in got.most_common() if route not in allowed)
            lines.append(f"  {expected:<{width}}  {right:>3}/{sum(got.values()):<3}" + (f"  {wrong}" if wrong else ""))
    if report.warnings:
        lines += ["", "warnings:"] + [f"  {w}" for w in report.warnings]
    failures = report.failures
    if failures:
        lines += ["", f"failures ({len(failures)}):"]
        for result in failures:
            case = result.case
            lines.append(f"- {case.id} [{', '.join(case.all_tags)}]" + (f": {case.about}" if case.about else ""))
            if result.error:
                lines.append(f"    error: {result.error}")
            for turn in result.turns:
                if turn.failures:
                    lines.append(f"    turn {turn.number} {turn.user!r} ({_understood(turn.reply)}):")
                    lines += [f"      {failure}" for failure in turn.failures]
            if transcripts:
                lines += ["    transcript:"] + [f"    {line}" for line in result.transcript.splitlines()]
    return "\n".join(lines)
