"""The serving environment the slow serve tests run in: Python 3.12, ``serve-requirements.txt``
(NumPy 1.26, ONNX Runtime, PyTriton 0.7.0, tritonclient), the project installed without its
dependencies.

The virtual environment is built once per Python and requirements file and cached under
``~/.cache/ptychopinn-serve-venv/<key>`` (``PTYCHOPINN_SERVE_VENV_CACHE`` moves it), so CI and
later runs reuse it; the project itself is installed with ``pip install --no-deps --target`` into
a folder of the test session, never into the shared cache, and put on ``PYTHONPATH``.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "serve-requirements.txt"


@dataclass(frozen=True)
class ServeEnv:
    """How to run a command in the serving environment."""

    python: str
    env: dict[str, str]

    def run(
        self, *args: str, timeout: float = 900, **kw: object
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # type: ignore[call-overload]
            [self.python, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            **kw,
        )


def find_python312() -> tuple[str | None, str]:
    """A Python 3.12 with its shared library (what PyTriton's stub loads), or None and why not.

    Tries ``PTYCHOPINN_SERVE_PYTHON``, ``python3.12`` on PATH (a pyenv shim runs only when the
    version is selected), pyenv's installs and the usual system places.
    """
    candidates = [os.environ.get("PTYCHOPINN_SERVE_PYTHON", ""), shutil.which("python3.12") or ""]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))
    candidates += ["/usr/local/bin/python3.12", "/usr/bin/python3.12"]
    probe = (
        "import sys, sysconfig; print(sys.version_info[:2] == (3, 12) and "
        "bool(sysconfig.get_config_var('Py_ENABLE_SHARED')))"
    )
    seen = []
    for candidate in filter(None, candidates):
        if candidate in seen or not os.access(candidate, os.X_OK):
            continue
        seen.append(candidate)
        done = subprocess.run([candidate, "-c", probe], capture_output=True, text=True, timeout=60)
        if done.returncode == 0 and done.stdout.strip() == "True":
            return candidate, ""
    return None, (
        f"no Python 3.12 with a shared libpython on this machine (tried {seen or 'none'}; set "
        "PTYCHOPINN_SERVE_PYTHON): PyTriton 0.7.0 serves only from Python 3.12"
    )


def cached_venv(python: str) -> Path:
    """The cached environment for ``python`` and ``serve-requirements.txt``, built if missing.

    Raises:
        RuntimeError: pip failed (its last lines).
    """
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True
    ).stdout
    key = hashlib.sha256((version + REQUIREMENTS.read_text()).encode()).hexdigest()[:16]
    cache = Path(
        os.environ.get("PTYCHOPINN_SERVE_VENV_CACHE", "~/.cache/ptychopinn-serve-venv")
    ).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / key
    with open(cache / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session building the same one: wait for it
        if (target / ".complete").is_file():
            return target
        building = cache / f"{key}.building"
        shutil.rmtree(building, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run([python, "-m", "venv", str(building)], check=True, timeout=300)
        done = subprocess.run(
            [str(building / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r",
             str(REQUIREMENTS)],
            capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"pip install -r {REQUIREMENTS.name} failed: {done.stderr[-2000:]}")
        # renamed when complete; only bin/python and `python -m pip` are used, which find the
        # environment by their own place (the scripts' #! lines keep the old name)
        building.rename(target)
        (target / ".complete").write_text(version)
        return target


def serve_env(python: str, session_dir: Path) -> ServeEnv:
    """The cached environment with a clean copy of this checkout installed beside it."""
    target = cached_venv(python)
    source = session_dir / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".git", "*.egg-info", "build", "__pycache__", ".*cache*"),
    )
    site = session_dir / "site"
    done = subprocess.run(
        [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps",
         "--target", str(site), str(source)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"pip install --no-deps of the project failed: {done.stderr[-2000:]}")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LD_LIBRARY_PATH")}
    env["PYTHONPATH"] = str(site)
    return ServeEnv(str(target / "bin" / "python"), env)
