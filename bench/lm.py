"""Benchmark of the language-model runtime: load, first token (cold and cached), speed, memory, overhead.

Run: .venv/bin/python -m bench.lm [--models smollm2,qwen2.5-1.5b] [--no-write]

Each backend x model is measured in its own subprocess. The runtime is measured as the server runs it:
in its supervised worker process (lm.isolation = "process"; `--isolation thread` measures it in-process),
against the library called directly on a model loaded with the same settings in the bench process.
The results replace the "## Language-model runtime" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import benchmarks_md
from bot.models.base import GenerationParams
from bot.models.config import LmConfig
from bot.models.runtime import build_language_model
from bot.models.supervisor import SupervisedModel
from bot.settings import PROJECT_ROOT

log = logging.getLogger("bench.lm")
DATA_DIR = Path(os.environ.get("TANDEM_TEST_MODEL_DIR", PROJECT_ROOT / "data" / "test-models"))
SECTION = "## Language-model runtime"
STORY = (
    "Mira the fox lived at the edge of a quiet pine forest. Every evening she walked down to the river "
    "to watch the lights of the village across the water, and every evening she wondered what the "
    "people there were laughing about. Her grandmother had told her to keep away from the village, "
    "because the dogs there were loud and the farmers kept traps along the fences. "
) * 3 + "One cold night, when the river was covered in thin ice, Mira found"
NEW_TOKENS = 64


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _timed_stream(model, prompt, params, cache_key):
    """(time to first piece, seconds, pieces) of one generation through the runtime."""
    started = time.perf_counter()
    first = None
    pieces = 0
    async for _ in model.stream(prompt, params, cache_key=cache_key):
        if first is None:
            first = time.perf_counter() - started
        pieces += 1
    return first or 0.0, time.perf_counter() - started


def _direct_llama(llm, prompt: str, seed: int) -> tuple[int, float]:
    """The same generation straight through llama-cpp-python's public streaming API."""
    started = time.perf_counter()
    tokens = 0
    for _ in llm.create_completion(prompt, max_tokens=NEW_TOKENS, temperature=0.8, top_p=0.95, repeat_penalty=1.1,
                                   seed=seed, stream=True):
        tokens += 1
    return tokens, time.perf_counter() - started


def _direct_transformers(lm, prompt: str, seed: int) -> tuple[int, float]:
    import torch

    ids = torch.tensor([lm.encode_prompt(prompt)])
    torch.manual_seed(seed)
    started = time.perf_counter()
    with torch.inference_mode():
        out = lm._model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS,
                                 do_sample=True, temperature=0.8, top_p=0.95, top_k=0, repetition_penalty=1.1,
                                 pad_token_id=lm._tokenizer.eos_token_id)
    return out.shape[1] - ids.shape[1], time.perf_counter() - started


def _peak_rss_of(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def measure(backend: str, model_name: str, threads: int, isolation: str = "process",
                  weight_repack: str = "auto") -> dict:
    """One backend x model: the runtime (in its worker process, or in this one) against the library."""
    config = LmConfig(model=f"bundled:{model_name}", backend=backend, n_threads=threads, context_window=2048,
                      timeout_s=600, cache_slots=2, isolation=isolation, weight_repack=weight_repack)
    started = time.perf_counter()
    if isolation == "process":
        lm = SupervisedModel(config, DATA_DIR)
        await lm.start()
    else:
        lm = await asyncio.to_thread(build_language_model, config, DATA_DIR, progress=False)
        await lm.start()
    load_s = time.perf_counter() - started
    # The library's own model, loaded with the same settings (threads, context, weight repacking).
    direct = lm if isolation == "thread" else await asyncio.to_thread(build_language_model, config, DATA_DIR,
                                                                      progress=False)
    await direct.start()
    params = GenerationParams(max_new_tokens=NEW_TOKENS, seed=1)
    await lm.generate("Hello", GenerationParams(max_new_tokens=2))  # warm-up: first-call allocations

    ttft_cold, _ = await _timed_stream(lm, STORY, params, "story")
    previous = STORY + await lm.generate(STORY, params, cache_key="story")
    cached_prompt = previous + " Then she heard a small voice calling her name."
    ttft_cached, _ = await _timed_stream(lm, cached_prompt, GenerationParams(max_new_tokens=4, seed=2), "story")
    cached_tokens = lm.last_stats["cached_tokens"]

    # Runtime vs library, interleaved so drift in the machine's load hits both alike;
    # both runs start cold (a fresh key/prompt prefix), and rates are tokens over wall time.
    runtime_rates, direct_rates, decode_rates = [], [], []
    for round_ in range(3):
        prompt = f"Chapter {round_ + 7}. " + STORY
        t0 = time.perf_counter()
        await lm.generate(prompt, GenerationParams(max_new_tokens=NEW_TOKENS, seed=round_), cache_key=f"r{round_}")
        runtime_rates.append(lm.last_stats["new_tokens"] / (time.perf_counter() - t0))
        stats = lm.last_stats
        decode_rates.append((stats["new_tokens"] - 1) / max(1e-9, stats["total_s"] - stats["first_token_s"]))
        direct_prompt = f"Part {round_ + 3}. " + STORY
        if backend == "llama_cpp":
            llm = direct.pool._slots[0].llm
            n, seconds = await asyncio.to_thread(_direct_llama, llm, direct_prompt, round_)
        else:
            n, seconds = await asyncio.to_thread(_direct_transformers, direct, direct_prompt, round_)
        direct_rates.append(n / seconds)
    runtime_rate = statistics.median(runtime_rates)
    direct_rate = statistics.median(direct_rates)
    worker_rss = _peak_rss_of(lm.pid) if isolation == "process" and lm.pid else 0.0
    repack = getattr(direct, "weight_repack", None)
    await lm.close()
    if direct is not lm:
        await direct.close()
    return {
        "backend": backend,
        "model": model_name,
        "isolation": isolation,
        "repack": "-" if repack is None else ("on" if repack else "off"),
        "worker_rss_mb": round(worker_rss),
        "threads": threads,
        "load_s": round(load_s, 2),
        "ttft_cold_ms": round(ttft_cold * 1000),
        "prompt_tokens": lm.last_stats.get("prompt_tokens"),
        "ttft_cached_ms": round(ttft_cached * 1000),
        "cached_tokens": cached_tokens,
        "decode_tok_s": round(statistics.median(decode_rates), 1),
        "tok_s": round(runtime_rate, 1),
        "direct_tok_s": round(direct_rate, 1),
        "overhead_pct": round(100 * (direct_rate - runtime_rate) / direct_rate, 1),
        "peak_rss_mb": round(_rss_mb()),
    }


def encoder_load(stop_after_s: float) -> None:
    """Other CPU work beside generation: a small torch encoder on one thread, in a loop."""
    import torch

    torch.set_num_threads(1)
    layer = torch.nn.TransformerEncoderLayer(d_model=384, nhead=6, dim_feedforward=1536, batch_first=True)
    encoder = torch.nn.TransformerEncoder(layer, num_layers=6, enable_nested_tensor=False).eval()
    batch = torch.randn(8, 32, 384)
    deadline = time.monotonic() + stop_after_s
    calls = 0
    with torch.inference_mode():
        while time.monotonic() < deadline:
            encoder(batch)
            calls += 1
    print(json.dumps({"encoder_calls": calls}))


async def measure_sharing(model_name: str) -> list[dict]:
    """llama.cpp tokens/s alone and beside the encoder loop, with 2 threads and with 1."""
    rows = []
    for threads in (2, 1):
        config = LmConfig(model=f"bundled:{model_name}", n_threads=threads, context_window=1024, timeout_s=600)
        lm = SupervisedModel(config, DATA_DIR)
        await lm.start()
        await lm.generate("Hello", GenerationParams(max_new_tokens=2))
        for busy in (False, True):
            load = None
            if busy:
                load = subprocess.Popen([sys.executable, "-m", "bench.lm", "--encoder-load", "60"],
                                        stdout=subprocess.PIPE, cwd=PROJECT_ROOT)
                time.sleep(3)  # let the encoder warm up and take its core
            rates = []
            for round_ in range(2):
                t0 = time.perf_counter()
                await lm.generate(f"Part {round_}. " + STORY, GenerationParams(max_new_tokens=NEW_TOKENS, seed=round_),
                                  cache_key=f"s{round_}{busy}")
                rates.append(lm.last_stats["new_tokens"] / (time.perf_counter() - t0))
            if load is not None:
                load.terminate()
                load.wait()
            rows.append({"threads": threads, "encoder_beside": busy, "tok_s": round(statistics.median(rates), 1)})
        await lm.close()
    return rows


def _lscpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "lscpu unavailable"
    keep = ("Architecture", "Model name", "CPU(s)", "Thread(s) per core", "L3 cache")
    return "; ".join(line.split(":", 1)[0].strip() + ": " + line.split(":", 1)[1].strip()
                     for line in out.splitlines() if line.split(":", 1)[0].strip() in keep)


def _cpu_features() -> str:
    from bot.models.cpu import cpu_flags, llama_cpu_flags

    return "CPU flags: " + (" ".join(llama_cpu_flags(cpu_flags())) or "none that llama.cpp uses")


def _llama_build() -> str:
    flags = Path(sys.prefix, ".llama-cmake-args")
    try:
        import llama_cpp

        version = llama_cpp.__version__
    except ImportError:
        return "llama-cpp-python not installed"
    built = flags.read_text().strip() if flags.is_file() else "unknown flags"
    return f"llama-cpp-python {version} built with `{built or 'default flags'}`"


def _markdown(results: list[dict], sharing: list[dict]) -> str:
    load = os.getloadavg()
    lines = [
        SECTION,
        "",
        f"Command: `{' '.join(['.venv/bin/python -m bench.lm', *sys.argv[1:]])}` (each backend in its own process; "
        f"{NEW_TOKENS} new tokens a run; sampling temperature 0.8, top_p 0.95).",
        "",
        f"Machine: {_lscpu()}; {_cpu_features()}; {_llama_build()}; load average at the end {load[0]:.1f} "
        "(the machine is shared, so figures move with the neighbours' work).",
        "",
        "| backend | model | runs in | weight repack | threads | load s | TTFT cold ms (prompt tok) "
        "| TTFT cached prefix ms (cached tok) "
        "| decode tok/s | end-to-end tok/s: runtime / library direct | overhead | peak RSS MB (worker) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        where = "worker process" if r["isolation"] == "process" else "server process"
        lines.append(
            f"| {r['backend']} | {r['model']} | {where} | {r['repack']} | {r['threads']} | {r['load_s']} "
            f"| {r['ttft_cold_ms']} ({r['prompt_tokens']}) "
            f"| {r['ttft_cached_ms']} ({r['cached_tokens']}) | {r['decode_tok_s']} "
            f"| {r['tok_s']} / {r['direct_tok_s']} "
            f"| {r['overhead_pct']}% | {r['worker_rss_mb'] or r['peak_rss_mb']} |"
        )
    lines += [
        "",
        "Decode tok/s counts tokens after the first; end-to-end tok/s divides the new tokens by the whole "
        "call, prompt evaluation included, for the runtime and for the library called directly "
        "(llama.cpp: `Llama.create_completion(stream=True)`; transformers: `model.generate`) on a "
        "model loaded with the same settings in the bench process, alternating, median of 3. Goals: TTFT with a cached prefix < 400 ms; "
        "runtime overhead < 5% (negative: the runtime's token loop was faster than the library's).",
    ]
    if sharing:
        lines += [
            "",
            "Sharing the CPU (llama.cpp, SmolLM2; the encoder is a 6-layer torch encoder on 1 thread "
            "in another process, batch 8 x 32 tokens, in a loop):",
            "",
            "| llama.cpp threads | encoder beside | tok/s |",
            "|---|---|---|",
        ]
        lines += [f"| {r['threads']} | {'yes' if r['encoder_beside'] else 'no'} | {r['tok_s']} |" for r in sharing]
        lines += ["", "With an encoder busy beside it, give llama.cpp the cores that are left (`lm.n_threads`)."]
    return "\n".join(lines) + "\n"


def write_section(text: str, path: Path = PROJECT_ROOT / "BENCHMARKS.md") -> None:
    """Replace our section of BENCHMARKS.md (or add it), leaving the others' sections alone."""
    benchmarks_md.write_section(path, text, section=SECTION)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="smollm2", help="comma-separated bundled names")
    parser.add_argument("--backends", default="llama_cpp,transformers")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--no-sharing", action="store_true", help="skip the CPU-sharing measurement")
    parser.add_argument("--isolation", default="process", choices=["process", "thread"],
                        help="where the runtime runs: its worker process (as the server does) or in-process")
    parser.add_argument("--weight-repack", default="auto", choices=["auto", "on", "off"],
                        help="lm.weight_repack for both the runtime and the direct baseline")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # backend:model, run in this process
    parser.add_argument("--encoder-load", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.encoder_load:
        encoder_load(args.encoder_load)
        return
    if args.one:
        backend, model = args.one.split(":")
        print(json.dumps(asyncio.run(measure(backend, model, args.threads, args.isolation, args.weight_repack))))
        return
    results = []
    for model in args.models.split(","):
        for backend in args.backends.split(","):
            if backend == "llama_cpp" and importlib.util.find_spec("llama_cpp") is None:
                log.warning("skip llama_cpp: llama-cpp-python is not installed")
                continue
            if backend == "transformers" and model != "smollm2":
                continue  # the 1.5B dequantised to fp32 runs at ~2 tok/s: not worth the minutes
            proc = subprocess.run([sys.executable, "-m", "bench.lm", "--one", f"{backend}:{model}",
                                   "--threads", str(args.threads), "--isolation", args.isolation, "--weight-repack", args.weight_repack],
                                  capture_output=True, text=True, cwd=PROJECT_ROOT)
            if proc.returncode != 0:
                log.error("%s:%s failed:\n%s", backend, model, proc.stderr[-2000:])
                continue
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            log.info("measured %s", results[-1])
    sharing = []
    if not args.no_sharing and importlib.util.find_spec("llama_cpp") is not None:
        sharing = asyncio.run(measure_sharing("smollm2"))
        log.info("sharing %s", sharing)
    text = _markdown(results, sharing)
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
