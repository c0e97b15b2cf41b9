"""What a training run shows and leaves behind: one line per epoch, ``metrics.csv``, a loss curve.

- :class:`EpochLine`: a Lightning callback logging ``epoch 3/12 | train_loss ... | val_loss ... |
  lr ... | 812 patterns/s | elapsed 1m02s | eta 3m05s`` (used when no progress bar is shown);
  it also logs ``patterns_per_s`` so the CSV has it.
- :class:`RunCSVLogger`: Lightning's ``CSVLogger`` writing ``OUT/metrics.csv``; a resumed run
  keeps the rows of the epochs it resumes after instead of deleting the file.
- :func:`plot_loss_curve`: ``metrics.csv`` -> ``loss_curve.png`` (matplotlib, Agg).
"""

from __future__ import annotations

import csv
import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.loggers.csv_logs import _ExperimentWriter as _FabricWriter
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

__all__ = ["EpochLine", "RunCSVLogger", "plot_loss_curve", "read_metrics"]

logger = logging.getLogger("ptycho_torch.train")


class EpochLine(L.Callback):
    """Logs one line per finished epoch and the training throughput (``patterns_per_s``)."""

    def __init__(self, emit: bool = True) -> None:
        self.emit = emit
        self._fit_start = 0.0
        self._epoch_start = 0.0
        self._last_batch_end = 0.0
        self._patterns = 0
        self._epochs_run = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_start = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = self._last_batch_end = time.perf_counter()
        self._patterns = 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        self._patterns += int(batch[0].shape[0]) * trainer.world_size
        self._last_batch_end = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now = time.perf_counter()
        train_seconds = max(self._last_batch_end - self._epoch_start, 1e-9)
        rate = self._patterns / train_seconds
        pl_module.log("patterns_per_s", rate, on_step=False, on_epoch=True, sync_dist=True)
        self._epochs_run += 1
        if not (self.emit and trainer.is_global_zero):
            return
        elapsed = now - self._fit_start
        done = trainer.current_epoch + 1
        left = max(trainer.max_epochs or done, done) - done
        eta = elapsed / self._epochs_run * left
        metrics = trainer.callback_metrics
        parts = [f"epoch {done}/{trainer.max_epochs}"]
        parts += [
            f"{name} {float(metrics[name]):.5g}"
            for name in ("train_loss", "val_loss")
            if name in metrics
        ]
        if "lr" in metrics:
            parts.append(f"lr {float(metrics['lr']):.3g}")
        parts += [f"{rate:.0f} patterns/s", f"elapsed {_clock(elapsed)}", f"eta {_clock(eta)}"]
        logger.info("%s", " | ".join(parts))


class _KeepingWriter(ExperimentWriter):
    """Lightning's CSV writer, but a resumed run keeps the rows of epochs <= ``keep_epochs``."""

    def __init__(self, log_dir: str, keep_epochs: int | None) -> None:
        self._keep_epochs = keep_epochs
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        if self._keep_epochs is None:  # a fresh run in a used folder: start the file anew
            path.unlink()
            return
        header, rows = read_metrics(path)
        kept = [r for r in rows if _number(r.get("epoch")) <= self._keep_epochs]
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(kept)
        self.metrics_keys = list(header)


class RunCSVLogger(CSVLogger):
    """``CSVLogger`` writing ``out/metrics.csv`` (and ``hparams.yaml``) after every log call.

    Args:
        out: the run folder.
        keep_epochs: when resuming, the last (0-based) epoch of the checkpoint: earlier rows of
            an existing ``metrics.csv`` are kept, later ones dropped. None: a fresh file.
    """

    def __init__(self, out: str | Path, keep_epochs: int | None = None) -> None:
        super().__init__(save_dir=str(out), name="", version="", flush_logs_every_n_steps=1)
        self._keep_epochs = keep_epochs

    @property
    @rank_zero_experiment
    def experiment(self) -> _FabricWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(self.log_dir, self._keep_epochs)
        return self._experiment


def read_metrics(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """``(header, rows)`` of a ``metrics.csv``."""
    with Path(path).open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def plot_loss_curve(metrics_csv: str | Path, png: str | Path) -> Path:
    """Draw train/val loss and the learning rate per epoch from ``metrics.csv``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, rows = read_metrics(metrics_csv)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name in ("train_loss", "val_loss"):
        points = _series(rows, name)
        if points:
            ax.plot(*zip(*points), marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (Poisson NLL)")
    handles, labels = ax.get_legend_handles_labels()
    lr = _series(rows, "lr")
    if lr:
        twin = ax.twinx()
        (line,) = twin.step(*zip(*lr), where="mid", color="grey", linestyle="--")
        twin.set_ylabel("learning rate")
        twin.set_yscale("log")
        handles, labels = [*handles, line], [*labels, "lr"]
    ax.legend(handles, labels, loc="best", framealpha=0.8)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return Path(png)


def _series(rows: list[dict[str, str]], name: str) -> list[tuple[float, float]]:
    """``(epoch + 1, value)`` of the rows that have ``name``, last value per epoch."""
    by_epoch = {}
    for row in rows:
        value, epoch = _number(row.get(name)), _number(row.get("epoch"))
        if math.isfinite(value) and math.isfinite(epoch):
            by_epoch[epoch + 1] = value
    return sorted(by_epoch.items())


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
