"""Why ONNX Runtime's CUDA provider did not come up, and what to install: the one place that says.

Every session opened on ``--device cuda`` (:class:`export.host.OnnxHost`, the parity bisect's
session) is created inside :func:`cuda_attempt`: it preloads the CUDA libraries of the
``nvidia-*`` pip packages, and captures what ONNX Runtime's C++ logger writes to file
descriptor 2 meanwhile. When CUDA did not come up, :meth:`CudaAttempt.problem` folds that log
(the missing library, the CUDA/cuDNN versions ONNX Runtime asks for) into one line with the
installed onnxruntime distribution and version and what to install; otherwise the captured log
is written back to stderr unchanged. Torch-free: the standard library and onnxruntime only.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import onnxruntime as ort

__all__ = [
    "CudaAttempt",
    "OnnxRuntimeInstall",
    "cuda_attempt",
    "cuda_unavailable_message",
    "installed_onnxruntime",
    "preload_cuda_libraries",
]

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
GPU_DISTRIBUTION = "onnxruntime-gpu"
CPU_DISTRIBUTION = "onnxruntime"
REQUIREMENTS_PAGE = (
    "https://onnxruntime.ai/docs/execution-providers/CUDA-ExecutionProvider.html#requirements"
)
# what onnxruntime's import name maps to when packages_distributions() cannot tell
_KNOWN_DISTRIBUTIONS = (CPU_DISTRIBUTION, GPU_DISTRIBUTION, "onnxruntime-directml",
                        "onnxruntime-openvino", "onnxruntime-qnn", "onnxruntime-silicon")  # fmt: skip
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_MISSING_LIBRARY = re.compile(r"([\w.+-]+\.(?:so[\w.]*|dll|dylib)): cannot open shared object")
_REQUIRE = re.compile(r"Require (cuDNN \S+ and CUDA \S+)")
_ORT_LOG_LINE = re.compile(r"\[([EWF]):onnxruntime:[^\]]*\]\s*(.*)")


@dataclass(frozen=True)
class OnnxRuntimeInstall:
    """What ``import onnxruntime`` is on this machine.

    Attributes:
        distributions: every installed distribution that provides the ``onnxruntime`` module,
            with its version (two at once overwrite each other's files).
        version: ``onnxruntime.__version__``.
        cuda_version: the CUDA version the package was built for
            (``onnxruntime.capi.build_and_package_info``), None for a CPU build.
        cudnn_requirement: the ``nvidia-cudnn`` requirement of its ``cudnn`` extra, if any.
        providers: ``onnxruntime.get_available_providers()``.
    """

    distributions: dict[str, str]
    version: str
    cuda_version: str | None
    cudnn_requirement: str | None
    providers: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """``onnxruntime-gpu 1.31.1`` (or every distribution, when several are installed)."""
        named = [f"{name} {version}" for name, version in sorted(self.distributions.items())]
        return " and ".join(named) or f"onnxruntime {self.version} (distribution unknown)"


def installed_onnxruntime() -> OnnxRuntimeInstall:
    """Read the installed onnxruntime distributions and the build's CUDA version."""
    names = importlib.metadata.packages_distributions().get("onnxruntime") or list(
        _KNOWN_DISTRIBUTIONS
    )
    distributions = {}
    for name in dict.fromkeys(names):
        try:
            distributions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    info = getattr(getattr(ort, "capi", None), "build_and_package_info", None)
    cuda_version = getattr(info, "cuda_version", None) or None
    cudnn = None
    if GPU_DISTRIBUTION in distributions:
        for requirement in importlib.metadata.requires(GPU_DISTRIBUTION) or []:
            if requirement.startswith("nvidia-cudnn"):
                cudnn = requirement.split(";")[0].strip()
    return OnnxRuntimeInstall(
        distributions, ort.__version__, cuda_version, cudnn, list(ort.get_available_providers())
    )


def preload_cuda_libraries() -> str:
    """Let ONNX Runtime's CUDA provider find CUDA and cuDNN in the ``nvidia-*`` pip packages
    (torch's), as on a machine whose only CUDA libraries came with torch. Best effort: when it
    fails, the provider check reports what really runs. Returns what ``preload_dlls`` printed
    (it prints its failures to stdout, which belongs to the command's results)."""
    preload = getattr(ort, "preload_dlls", None)  # onnxruntime >= 1.21
    if preload is None:
        return ""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            preload()
    except Exception as exc:  # noqa: BLE001 - diagnostics only; provider truth decides
        log.debug("onnxruntime.preload_dlls() failed: %s", exc)
    text = _ANSI.sub("", printed.getvalue())
    if text.strip():
        log.debug("onnxruntime.preload_dlls(): %s", text.strip())
    return text


@dataclass
class CudaAttempt:
    """What happened while a session was created on ``device`` (see :func:`cuda_attempt`)."""

    device: str
    native_log: str = ""  # what ONNX Runtime wrote to fd 2 meanwhile (CUDA only)
    preload_log: str = ""  # what preload_dlls printed

    def problem(self, providers: list[str]) -> str | None:
        """The one-line advice when CUDA was asked for and is not among the session's
        providers; None (after writing the captured log back to stderr) when all is well."""
        if self.device != "cuda" or CUDA in providers:
            self.replay()
            return None
        log.debug("ONNX Runtime while trying CUDA: %s", self.native_log.strip())
        return cuda_unavailable_message(
            providers, self.native_log + "\n" + self.preload_log, installed_onnxruntime()
        )

    def replay(self) -> None:
        """Write the captured log to stderr, where it would have gone."""
        if self.native_log:
            sys.stderr.write(self.native_log)
            sys.stderr.flush()
            self.native_log = ""


@contextlib.contextmanager
def cuda_attempt(device: str) -> Iterator[CudaAttempt]:
    """Around creating an ONNX Runtime session on ``device``: on CUDA, preload the CUDA
    libraries and capture ONNX Runtime's native log (fd 2) for :meth:`CudaAttempt.problem`.

    On an exception the captured log is written back to stderr before it propagates.
    """
    attempt = CudaAttempt(device)
    if device != "cuda":
        yield attempt
        return
    attempt.preload_log = preload_cuda_libraries()
    captured = _Captured()
    try:
        with _fd2_captured(captured):
            yield attempt
    except BaseException:
        attempt.native_log = captured.text
        attempt.replay()
        raise
    attempt.native_log = captured.text


@dataclass
class _Captured:
    text: str = ""


@contextlib.contextmanager
def _fd2_captured(captured: _Captured) -> Iterator[None]:
    """Redirect file descriptor 2 (where ONNX Runtime's C++ logger writes) into a temporary
    file and put what arrived in ``captured.text``; no capture where fd 2 cannot be duplicated."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", "replace")


def cuda_unavailable_message(
    providers: list[str], ort_log: str, install: OnnxRuntimeInstall
) -> str:
    """One line: what runs instead of CUDA, what is installed, why CUDA did not load (from ONNX
    Runtime's log), and what to install."""
    head = f"requested CUDA but ONNX Runtime runs {providers}"
    gpu = install.distributions.get(GPU_DISTRIBUTION)
    others = sorted(d for d in install.distributions if d != GPU_DISTRIBUTION)
    if gpu is not None and others:
        return (
            f"{head}: {install.describe()} are installed at once; they share the onnxruntime "
            "module, so one overwrote the other's files, which breaks CUDA: "
            f"pip uninstall -y {' '.join(sorted(install.distributions))} && "
            f"pip install {GPU_DISTRIBUTION}=={gpu}, or run with --device cpu"
        )
    if gpu is None or CUDA not in install.providers:
        removal = " ".join(sorted(install.distributions)) or CPU_DISTRIBUTION
        return (
            f"{head}: {install.describe()} is installed, a build without the CUDA provider "
            f"(available: {install.providers}): pip uninstall -y {removal} && "
            f"pip install {GPU_DISTRIBUTION}=={install.version}, or run with --device cpu"
        )
    return f"{head}: {install.describe()} is installed but {_why_not(ort_log, install)}"


def _why_not(ort_log: str, install: OnnxRuntimeInstall) -> str:
    """Why the GPU package's CUDA provider did not load, and what to install."""
    text = _ANSI.sub("", ort_log)
    missing = list(dict.fromkeys(_MISSING_LIBRARY.findall(text)))
    if missing:
        reason = f"its CUDA provider cannot load {', '.join(missing)}: not found"
    else:
        said = [m.group(2).strip() for m in _ORT_LOG_LINE.finditer(text)]
        reason = "its CUDA provider did not start" + (
            f" (ONNX Runtime: {_short(said[0])})" if said else ""
        )
    required = _REQUIRE.search(text)
    if required:
        needs = f"{required.group(1).rstrip('.')} (as ONNX Runtime says)"
    elif install.cuda_version:
        needs = f"CUDA {install.cuda_version.split('.')[0]}.x (it was built for CUDA {install.cuda_version})"
        if install.cudnn_requirement:
            needs += f" and cuDNN ({install.cudnn_requirement}, from its package metadata)"
    else:
        needs = f"the CUDA and cuDNN versions onnxruntime-gpu {install.version} was built for"
    driver = ""
    if sys.platform.startswith("linux") and not Path("/proc/driver/nvidia/version").exists():
        driver = (
            "; no NVIDIA driver is loaded on this machine (/proc/driver/nvidia/version is "
            "absent), so CUDA needs a GPU and its driver first"
        )
    return (
        f"{reason}{driver}; install {needs}, see {REQUIREMENTS_PAGE} for "
        f"onnxruntime-gpu {install.version}; or run with --device cpu"
    )


def _short(message: str, limit: int = 240) -> str:
    """ONNX Runtime's message without its C++ source location, cut to ``limit`` characters."""
    if "FAIL :" in message:
        message = message.split("FAIL :", 1)[1]
    message = message.strip()
    return message if len(message) <= limit else message[: limit - 3] + "..."
