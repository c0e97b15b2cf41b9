"""Error-map images: left, right and |error| of one sample, one row per channel.

Drawn with matplotlib's object API (``Figure`` + Agg canvas), so no pyplot state and no GUI
backend is touched; safe in CI and in threads.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from core.running_stats import wrap_to_pi

__all__ = ["MAX_CHANNELS", "error_map_filename", "render_error_map"]

MAX_CHANNELS = 4  # more rows would not be read; the worst sample's first channels suffice


def error_map_filename(output: str, left: str, right: str, sample: int) -> str:
    """A safe file name: ``phase_eager_vs_onnxruntime-cpu_s3.png``."""
    raw = f"{output}_{left}_vs_{right}_s{sample}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", raw.replace("[", "-").replace("]", "")) + ".png"


def render_error_map(
    left: np.ndarray, right: np.ndarray, wrap_phase: bool, title: str, path: str | Path
) -> Path:
    """Draw left, right and |error| of one sample, ``(N, N)`` or ``(C, N, N)``, with colorbars
    into the PNG ``path``; with ``wrap_phase`` the error is wrapped into (-pi, pi] and the phase
    panels share fixed +-pi colour limits."""
    a, b = _as_slices(left), _as_slices(right)
    if a.shape != b.shape:
        raise ValueError(
            f"error map needs equal shapes, got {np.shape(left)} and {np.shape(right)}"
        )
    channels = min(a.shape[0], MAX_CHANNELS)
    fig = Figure(figsize=(10.5, 3.2 * channels + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title)
    axes = fig.subplots(channels, 3, squeeze=False)
    for ch in range(channels):
        x, y = a[ch], b[ch]
        with np.errstate(invalid="ignore"):  # inf - inf: shown as a blank (masked) pixel
            err = np.abs(wrap_to_pi(x - y) if wrap_phase else x - y)
        limits = (-np.pi, np.pi) if wrap_phase else _limits(x, y)
        cmap = "twilight" if wrap_phase else "viridis"  # cyclic map: -pi and pi look alike
        panels = (
            ("left", x, cmap, limits),
            ("right (reference)", y, cmap, limits),
            ("|wrapped error|" if wrap_phase else "|error|", err, "magma", (None, None)),
        )
        for ax, (name, img, cmap, (vmin, vmax)) in zip(axes[ch], panels):
            shown = ax.imshow(np.ma.masked_invalid(img), cmap=cmap, vmin=vmin, vmax=vmax)
            label = f"{name}, channel {ch}" if a.shape[0] > 1 else name
            if name.startswith("|"):
                finite = err[np.isfinite(err)]
                label += f" (max {finite.max():.2e})" if finite.size else " (no finite values)"
            ax.set_title(label, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(shown, ax=ax, shrink=0.85)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    return path


def _as_slices(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if np.iscomplexobj(x):
        raise ValueError("error maps take real outputs (amplitude or phase), not complex ones")
    x = x.astype(np.float64)
    if x.ndim <= 1:
        return x.reshape(1, 1, -1)
    return x.reshape(-1, *x.shape[-2:])


def _limits(x: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None]:
    both = np.concatenate([x[np.isfinite(x)], y[np.isfinite(y)]])
    if both.size == 0:
        return None, None
    return float(both.min()), float(both.max())
