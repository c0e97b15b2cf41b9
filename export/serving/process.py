"""``python -m export serve`` in a child process on loopback: what the load test and the tests
start, wait for, and stop with SIGTERM. Torch-free, standard library only."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from export.errors import ServerError

__all__ = ["ServerProcess", "free_ports"]

LOOPBACK = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """``count`` TCP ports free on loopback now (the OS picks them; another process may still
    take one before the server binds it, which the server then reports)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class ServerProcess:
    """A serving child process: started by :meth:`start`, stopped by :meth:`stop`.

    Args:
        artifacts: the folder or archive to serve.
        python: the interpreter (one that can serve: Python 3.12 with the ``serve`` extra).
        options: further ``serve`` options (``--max-batch-size 64``).
        log: where the child's stderr goes (its log lines); stdout is read here.
    """

    def __init__(
        self,
        artifacts: str | Path,
        python: str = sys.executable,
        options: Sequence[str] = (),
        log: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        http, grpc, metrics = free_ports(3)
        self.urls = {
            "http": f"http://{LOOPBACK}:{http}",
            "grpc": f"grpc://{LOOPBACK}:{grpc}",
        }
        self.command = [
            python, "-m", "export", "serve", "--artifacts", str(artifacts),
            "--address", LOOPBACK, "--http-port", str(http), "--grpc-port", str(grpc),
            "--metrics-port", str(metrics), *options,
        ]  # fmt: skip
        self.log, self.env = log, env
        self.stdout: list[str] = []
        self.process: subprocess.Popen[str] | None = None

    def start(self, timeout_s: float = 180.0) -> ServerProcess:
        """Start the child and return once it prints ``ready:``.

        Raises:
            ServerError: it exited first (its exit code and last lines), or ``timeout_s`` passed.
        """
        err = open(self.log, "w") if self.log else subprocess.DEVNULL  # noqa: SIM115 - child's
        self.process = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=self.env,
            preexec_fn=_terminate_with_parent,
        )
        ready = threading.Event()

        def read() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                self.stdout.append(line.rstrip("\n"))
                if line.startswith("ready:"):
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while not ready.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                code = self.process.poll()
                self.kill()
                why = f"exited with {code}" if code is not None else f"not ready in {timeout_s} s"
                raise ServerError(
                    f"`{' '.join(self.command)}` {why}; stdout: {self.stdout[-5:]}"
                    + (f"; its log: {self.log}" if self.log else "")
                )
        return self

    def stop(self, signum: int = signal.SIGTERM, timeout_s: float = 120.0) -> int:
        """Send ``signum`` and wait for the exit code (killed after ``timeout_s``: -9)."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def _terminate_with_parent() -> None:
    """In the child before exec: SIGTERM when the thread that started it ends, however this
    process dies (Linux ``PR_SET_PDEATHSIG``; PyTriton does the same for tritonserver), so a
    killed load test or test session leaves no server behind. Elsewhere: nothing."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
