"""What the response selector costs per turn: the same messages through Tandem with the selector on
(up to 3 candidates) and off (1, the baseline), in one run (off, on, on, off; means).

    .venv/bin/python -m bench.selector [--messages 300] [--seed 1]

Messages are CLINC150 test utterances (in scope for other bots, mostly out of scope for Tandem, so
many are the borderline cases the selector is for) plus Tandem's own kinds of message. Each turn runs
in-process on a fresh SQLite database with the shipped annotators, graphs and skills and the fake
language model, so what is measured is the dispatcher's own cost: CPU ms per turn, the share of
turns that had candidates, and how many extra generations the candidates asked the model for (each
costs one small-talk generation with a real model: see "Language-model runtime" for its speed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bot.app import build_app
from bot.core.messages import Incoming
from bot.models.fake import FakeLanguageModel
from bot.settings import load_settings

CLINC = Path(os.environ.get("TANDEM_CLINC", "/work/shared/data/clinc150/data_full.json"))
OWN = ["how are you?", "tell me something nice", "I'm bored", "what do you think about rain",
       "let's write a story", "help", "thanks", "who are you?", "привет", "как дела?"]


def messages(count: int, seed: int) -> list[str]:
    data = json.loads(CLINC.read_text(encoding="utf-8"))
    pool = [text for text, _ in data["test"] + data["oos_test"]]
    random.Random(seed).shuffle(pool)
    return (OWN * (1 + count // 10 // len(OWN)))[: count // 10] + pool[: count - count // 10]


async def run(texts: list[str], max_candidates: int) -> dict:
    with tempfile.TemporaryDirectory() as data_dir:
        os.environ["TANDEM_DATA_DIR"] = data_dir
        os.environ["TANDEM_DISPATCHER__MAX_CANDIDATES"] = str(max_candidates)
        model = FakeLanguageModel("That sounds interesting. Tell me more about it.")
        tandem = await build_app(load_settings(), language_model=model)
        try:
            # Warm-up: loads the encoder and classifier outside the measured turns.
            await tandem.handle_turn(Incoming("bench", "warm", "hello there")).reply()
            calls_before = len(model.calls)
            selected = 0
            cpu, wall = time.process_time(), time.perf_counter()
            for index, text in enumerate(texts):
                # One conversation per message: no graph or held skill from an earlier turn decides.
                reply = await tandem.handle_turn(Incoming("bench", f"u{index}", text)).reply()
                selected += bool(reply.status == "complete" and await _had_candidates(tandem, reply))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            return {"turns": len(texts), "cpu_ms_per_turn": 1000 * cpu / len(texts),
                    "wall_ms_per_turn": 1000 * wall / len(texts), "with_candidates": selected,
                    "generations": len(model.calls) - calls_before}
        finally:
            await tandem.close()


async def _had_candidates(tandem, reply) -> bool:
    from sqlalchemy import select

    from bot.storage.schema import Message

    async with tandem.db.transaction() as session:
        annotations = await session.scalar(select(Message.annotations).where(Message.id == reply.message_id))
    return bool(annotations and annotations.get("candidates"))


def _mean(a: dict, b: dict) -> dict:
    return {key: (a[key] + b[key]) / 2 for key in a}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    texts = messages(args.messages, args.seed)
    # Off, on, on, off: a run's position (warm caches, a neighbour's load) counts equally for both.
    runs = [await run(texts, n) for n in (1, 3, 3, 1)]
    base, on = _mean(runs[0], runs[3]), _mean(runs[1], runs[2])
    print(f"{'':<26}{'selector off (baseline)':>24}{'selector on (3)':>18}{'ratio':>8}")
    for key, label in (("cpu_ms_per_turn", "CPU ms per turn"), ("wall_ms_per_turn", "wall ms per turn")):
        print(f"{label:<26}{base[key]:>24.1f}{on[key]:>18.1f}{on[key] / base[key]:>8.2f}")
    print(f"{'turns with candidates':<26}{base['with_candidates']:>24g}{on['with_candidates']:>18g}")
    print(f"{'model generations':<26}{base['generations']:>24g}{on['generations']:>18g}"
          f"{on['generations'] / max(1, base['generations']):>8.2f}")
    print(f"({len(texts)} turns, {os.cpu_count()} CPUs, each figure the mean of two runs; the extra generations "
          "are the cost with a real model)")


if __name__ == "__main__":
    asyncio.run(main())
