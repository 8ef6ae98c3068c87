"""What this machine's CPU offers llama.cpp: its name, its instruction-set flags, and whether it has AMX."""

from __future__ import annotations

from pathlib import Path

# The instruction-set extensions llama.cpp has kernels for, in the order they were added.
LLAMA_CPU_FLAGS = (
    "avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni",
    "amx_tile", "amx_int8", "amx_bf16",
)


def read_cpuinfo(path: Path = Path("/proc/cpuinfo")) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""  # not Linux: the name comes from platform.processor(), the flags stay unknown


def cpu_model_name(cpuinfo: str) -> str | None:
    """The first `model name` of a /proc/cpuinfo text, or None when it has none (ARM, some VMs)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return None


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The feature flags of the first CPU in a /proc/cpuinfo text (all cores list the same);
    this machine's when no text is given."""
    for line in (read_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def llama_cpu_flags(flags: set[str]) -> list[str]:
    """The flags that matter to llama.cpp's kernels, in LLAMA_CPU_FLAGS order."""
    return [flag for flag in LLAMA_CPU_FLAGS if flag in flags]


def has_amx(flags: set[str]) -> bool:
    """AMX is usable for llama.cpp only with the tile registers and at least one of its data types."""
    return "amx_tile" in flags and bool({"amx_int8", "amx_bf16"} & flags)
