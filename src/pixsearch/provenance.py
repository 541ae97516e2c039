"""Run provenance: what code, on what machine, by which command made a run folder.

Every run folder (training run and trained model, evaluation run, benchmark world, knowledge
index) gets a `provenance.json`:

    {"kind": "eval", "pixsearch": "0.1.0",
     "git": {"commit": "…", "dirty": false, "branch": "main"},      (when run from a checkout)
     "command": ["pixsearch", "eval", "run", …], "cwd": "…",
     "python": "3.11.7", "packages": {"torch": "2.13.0", "transformers": "…", …},
     "machine": {"os": …, "cpu": …, "cpu_count": 2, "torch_threads": 1, "gpus": [],
                 "memory_gb": 7.8},
     "started_at": "2025-…Z", "finished_at": "…Z", "wall_seconds": 93.2}

Package versions come from installed metadata (nothing is imported to learn a version), so
`pixsearch --version` uses the same function and stays quick. Torch is asked about threads and
GPUs only when the run has already loaded it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PROVENANCE = "provenance.json"

# distributions whose versions decide what a run computes, in the order they are listed
KEY_PACKAGES = ("torch", "transformers", "tokenizers", "accelerate", "peft", "safetensors",
                "huggingface-hub", "faiss-cpu", "faiss-gpu", "sentence-transformers",
                "onnxruntime", "numpy", "pillow", "pycocotools", "scikit-image", "opencv-python-headless",
                "matplotlib", "tensorboard", "pymilvus", "ray")


_command: list[str] | None = None  # set by an application that knows its own command line


def set_command(argv: list[str] | None) -> None:
    """The command line runs record from now on (the `pixsearch` CLI sets its own, so a run
    started in-process records `pixsearch eval run …`, not the host's argv); None: `sys.argv`."""
    global _command
    _command = None if argv is None else [str(a) for a in argv]


def command_line() -> list[str]:
    """The command line of this process's run (see `set_command`)."""
    if _command is not None:
        return list(_command)
    if sys.argv and sys.argv[0]:
        return [Path(sys.argv[0]).name, *sys.argv[1:]]
    return list(sys.argv)


def package_version(name: str) -> str | None:
    """The installed version of distribution `name`, None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def package_versions(names: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str]:
    """Versions of the installed distributions among `names` (missing ones are left out)."""
    found = {n: package_version(n) for n in names}
    return {n: v for n, v in found.items() if v is not None}


def pixsearch_version() -> str:
    """The installed version of pixsearch (the source tree's when it is not installed)."""
    from pixsearch import __version__

    return package_version("pixsearch") or __version__


def git_state(path: str | Path | None = None) -> dict[str, Any] | None:
    """Commit, branch and dirty flag of the git checkout holding `path` (default: this
    package's source), None when it is not in a checkout or git is missing."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        # tracked changes only: a checkout with untracked run folders is not "dirty code"
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        branch = git("rev-parse", "--abbrev-ref", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty, "branch": branch}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (AttributeError, ValueError, OSError):
        return None


def machine_info() -> dict[str, Any]:
    """OS, CPU, cores, memory, thread settings and GPUs of this machine (GPUs and torch's
    thread count only when torch is already loaded: asking would load it)."""
    info: dict[str, Any] = {
        "os": platform.platform(), "arch": platform.machine(), "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(), "memory_gb": _memory_gb(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    if hasattr(os, "sched_getaffinity"):
        info["cpus_available"] = len(os.sched_getaffinity(0))
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        gpus = []
        if torch.cuda.is_available():
            gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["gpus"] = gpus
    return info


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")


def collect(kind: str, wall_seconds: float | None = None, **extra: Any) -> dict[str, Any]:
    """The provenance of a run of `kind` ("train", "eval", "world", "index", …) that took
    `wall_seconds` and finishes now; `extra` keys are added as they are."""
    now = dt.datetime.now(dt.timezone.utc).timestamp()
    out: dict[str, Any] = {
        "kind": kind, "pixsearch": pixsearch_version(), "git": git_state(),
        "command": command_line(), "cwd": os.getcwd(), "python": platform.python_version(),
        "packages": package_versions(), "machine": machine_info(),
    }
    if wall_seconds is not None:
        out["started_at"] = _iso(now - wall_seconds)
        out["wall_seconds"] = round(wall_seconds, 2)
    out["finished_at"] = _iso(now)
    out.update(extra)
    return out


def write_provenance(folder: str | Path, kind: str, wall_seconds: float | None = None,
                     **extra: Any) -> Path:
    """Write `provenance.json` (see the module docstring) into `folder`; returns its path."""
    path = Path(folder) / PROVENANCE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(collect(kind, wall_seconds, **extra), indent=1, default=str))
    return path


def tensors_sha256(path: str | Path) -> str:
    """Hex SHA-256 of the tensors of a safetensors file (names, dtypes, shapes and values, in
    name order): equal for equal weights however the file's header happens to be ordered."""
    import torch
    from safetensors import safe_open

    digest = hashlib.sha256()
    with safe_open(str(path), "pt") as f:
        for name in sorted(f.keys()):
            t = f.get_tensor(name).contiguous()
            digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def read_provenance(folder: str | Path) -> dict[str, Any] | None:
    """The `provenance.json` of `folder`, None when there is none."""
    path = Path(folder) / PROVENANCE
    return json.loads(path.read_text()) if path.is_file() else None


def version_report() -> str:
    """What `pixsearch --version` prints: the version (and commit in a checkout), Python,
    and the installed key dependencies."""
    git = git_state()
    head = f"pixsearch {pixsearch_version()}"
    if git:
        head += f" (git {git['commit'][:12]}{', modified' if git['dirty'] else ''})"
    lines = [head, f"python {platform.python_version()} ({sys.executable})"]
    lines += [f"{name} {version}" for name, version in package_versions().items()]
    return "\n".join(lines)
