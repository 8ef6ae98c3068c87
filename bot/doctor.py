"""`tandem doctor`: what the CPU offers llama.cpp, which model and backend are configured, how fast it generates."""

from __future__ import annotations

import asyncio
import importlib.metadata
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import click

from bot.cli_options import config_option, fail
from bot.core.errors import BotError, ConfigError
from bot.models.cpu import cpu_flags, cpu_model_name, has_amx, llama_cpu_flags, read_cpuinfo

# Distribution names, read from package metadata rather than by importing the package: importing
# llama_cpp loads its native library into this process, and the point here is to survive a bad build.
BACKEND_PACKAGES = {"llama_cpp": "llama-cpp-python", "transformers": "transformers"}

PROMPT = "Once upon a time, in a small village by the sea, there lived"
NEW_TOKENS = 32

HINT = ('hint: try lm.weight_repack = "off" in tandem.toml, or run on transformers '
        "(TANDEM_LM__BACKEND=transformers)")


def llama_build_flags(prefix: Path) -> str:
    """The CMake flags scripts/setup.sh built llama-cpp-python with, recorded beside the virtualenv."""
    try:
        return (prefix / ".llama-cmake-args").read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def backend_version(backend: str) -> str:
    package = BACKEND_PACKAGES.get(backend)
    if package is None:
        return "no local package (HTTP)"
    try:
        return f"{package} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{package} not installed"


def disk_size(path: Path) -> int:
    """Bytes of a model file, or of every file in a model folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@dataclass
class Measurement:
    """One short raw generation: what it wrote and how long it took."""

    text: str
    tokens: int
    first_piece_s: float
    total_s: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.total_s if self.total_s > 0 else 0.0


async def measure(model) -> Measurement:
    """Start `model`, stream NEW_TOKENS greedy tokens of PROMPT, close it again."""
    from bot.models.base import GenerationParams

    params = GenerationParams(max_new_tokens=NEW_TOKENS, temperature=0)
    try:
        await model.start()
        pieces: list[str] = []
        started = time.perf_counter()
        first_piece_s = 0.0
        async for piece in model.stream(PROMPT, params):
            if not pieces:
                first_piece_s = time.perf_counter() - started
            pieces.append(piece)
        total_s = time.perf_counter() - started
        text = "".join(pieces)
        return Measurement(text, model.count_tokens(text) if text else 0, first_piece_s, total_s)
    finally:
        await model.close()


@click.command("doctor")
@config_option
@click.option("--model", "model_name", default=None, help="override lm.model, e.g. bundled:smollm2")
def doctor(config: Path | None, model_name: str | None) -> None:
    """Show the CPU's llama.cpp flags, the model and backend in use, and measure its speed."""
    from bot.settings import load_settings

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        fail(exc)
    if model_name:
        settings = settings.model_copy(update={"lm": settings.lm.model_copy(update={"model": model_name})})

    cpuinfo = read_cpuinfo()
    flags = cpu_flags(cpuinfo)
    click.echo(f"cpu: {cpu_model_name(cpuinfo) or platform.processor() or 'unknown'}")
    click.echo(f"cpu flags for llama.cpp: {' '.join(llama_cpu_flags(flags)) or 'none found'}")
    click.echo(f"amx: {'yes' if has_amx(flags) else 'no'}")
    click.echo(f"llama.cpp build flags: {llama_build_flags(Path(sys.prefix))}")
    click.echo(f"lm.model: {settings.lm.model}")

    if not _describe_model(settings):
        sys.exit(1)

    from bot.app import build_language_model

    try:
        result = asyncio.run(measure(build_language_model(settings)))
    except BotError as exc:
        _generation_failed(str(exc))
    except Exception as exc:  # noqa: BLE001 - the doctor reports any failure in one line, never a traceback
        _generation_failed(f"{type(exc).__name__}: {exc}")
    click.echo(f"output: {result.text!r}")
    click.echo(f"speed: {result.tokens_per_s:.1f} tokens/s ({result.tokens} tokens in {result.total_s:.2f} s, "
               f"first piece after {1000 * result.first_piece_s:.0f} ms)")


def _describe_model(settings) -> bool:
    """Print the resolved backend, its package and the model's file; False when lm.model is unusable."""
    from bot.models.runtime import pick_backend, resolve_source

    try:
        source = resolve_source(settings.lm.model, Path(settings.data_dir), progress=True)
        backend = pick_backend(source, settings.lm.backend)
    except ConfigError as exc:
        click.echo(f"model: FAILED: {exc}")
        return False
    click.echo(f"backend: {backend} ({backend_version(backend)})")
    if source.kind == "url":
        click.echo(f"model server: {source.location}")
    else:
        click.echo(f"model file: {source.location} ({disk_size(source.path) / 2**20:.1f} MiB)")
    return True


def _generation_failed(reason: str) -> NoReturn:
    click.echo(f"generation: FAILED: {reason}")
    click.echo(HINT)
    sys.exit(1)
