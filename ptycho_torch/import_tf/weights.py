"""Copy the original's conv kernels into :class:`PtychoPINN`, checked role by role.

Every role must land on exactly one ``nn.Conv2d`` of the model, every conv of the model must
receive exactly one role, and each kernel (HWIO ``(3, 3, in, out)``) and bias (``(out,)``) must
have the shape the model expects. All problems are collected and raised as one
:class:`WeightMismatchError`; nothing is copied unless everything fits. Kernels are transposed to
OIHW (``(out, in, 3, 3)``) and copied exactly (float32 in, float32 out).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np
import torch
from torch import nn

from ptycho_torch.config import ModelConfig
from ptycho_torch.import_tf.archive import read_dataset
from ptycho_torch.import_tf.errors import WeightMismatchError
from ptycho_torch.import_tf.roles import ConvSource, expected_activation, torch_module
from ptycho_torch.model import PtychoPINN

__all__ = ["copy_conv_weights", "hwio_to_oihw"]

_HWIO_TO_OIHW = (3, 2, 0, 1)


def hwio_to_oihw(kernel: np.ndarray) -> np.ndarray:
    """TensorFlow ``(kh, kw, in, out)`` -> PyTorch ``(out, in, kh, kw)``, contiguous."""
    return np.ascontiguousarray(kernel.transpose(_HWIO_TO_OIHW))


def copy_conv_weights(
    model: PtychoPINN,
    sources: Sequence[ConvSource],
    weights: h5py.File,
    config: ModelConfig,
    where: str,
    graph_convs: dict[str, dict[str, Any]] | None = None,
) -> int:
    """Check every source against the model and copy all of them; returns the number copied.

    Args:
        model: the freshly built model for ``config``.
        sources: role -> HDF5 location (from the graph, an index or the known order).
        weights: the open ``model.weights.h5``.
        config: the configuration the model was built with.
        where: names the weights file in messages.
        graph_convs: per role, the Conv2D settings from ``model.keras`` (archive only), to
            check kernel size, stride, padding, dilation, bias and the declared shapes too.

    Raises:
        WeightMismatchError: one message listing every problem found.
    """
    convs = {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    planned, problems = _plan(convs, sources, weights, config, where, graph_convs)
    missing = sorted(set(convs) - set(planned))
    if missing:
        problems.append(f"no weights for model convs {missing}")
    if problems:
        raise WeightMismatchError(
            f"{where}: the original's convs do not match the model for config "
            f"(N={config.N}, gridsize={config.gridsize}, n_filters_scale={config.n_filters_scale}, "
            f"object_big={config.object_big}, probe_big={config.probe_big}, "
            f"pad_object={config.pad_object}); {len(problems)} problem(s): " + "; ".join(problems)
        )
    with torch.no_grad():
        for target, (kernel, bias) in planned.items():
            convs[target].weight.copy_(torch.from_numpy(hwio_to_oihw(kernel)))
            convs[target].bias.copy_(torch.from_numpy(np.ascontiguousarray(bias)))  # type: ignore[union-attr]
    return len(planned)


def _plan(
    convs: dict[str, nn.Conv2d],
    sources: Sequence[ConvSource],
    weights: h5py.File,
    config: ModelConfig,
    where: str,
    graph_convs: dict[str, dict[str, Any]] | None,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """Each source's kernel and bias by the model conv it goes to, read and checked; and every
    problem found (roles without a conv, second sources, shared paths, wrong activations or
    shapes, missing datasets)."""
    problems: list[str] = []
    planned: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    seen_paths: dict[str, str] = {}
    for src in sources:
        target = torch_module(src.role, config)
        if target is None or target not in convs:
            where_to = f"no {target} in the model" if target else "not a role of the original"
            problems.append(f"{src.role}: {where_to} for this config")
            continue
        if target in planned:
            problems.append(f"{src.role}: a second source for {target}")
            continue
        if src.kernel_path in seen_paths:
            problems.append(f"{src.role}: {src.kernel_path} is also {seen_paths[src.kernel_path]}")
        seen_paths[src.kernel_path] = src.role
        if src.activation is not None and src.activation != expected_activation(src.role):
            problems.append(
                f"{src.role}: activation {src.activation!r}, expected {expected_activation(src.role)!r}"
            )
        if graph_convs is not None:
            problems += _graph_problems(src.role, graph_convs.get(src.role, {}))
        kernel, bias = read_dataset(weights, src.kernel_path), read_dataset(weights, src.bias_path)
        if kernel is None or bias is None:
            problems.append(f"{src.role}: {src.kernel_path} or {src.bias_path} missing in {where}")
            continue
        problems += _shape_problems(src, kernel, bias, convs[target], graph_convs)
        planned[target] = (kernel, bias)
    return planned, problems


def _shape_problems(
    src: ConvSource,
    kernel: np.ndarray,
    bias: np.ndarray,
    conv: nn.Conv2d,
    graph_convs: dict[str, dict[str, Any]] | None,
) -> list[str]:
    problems = []
    out_ch, in_ch, kh, kw = conv.weight.shape
    want_kernel, want_bias = (kh, kw, in_ch, out_ch), (out_ch,)
    if kernel.dtype != np.float32 or bias.dtype != np.float32:
        problems.append(f"{src.role}: dtype {kernel.dtype}/{bias.dtype}, expected float32")
    if tuple(kernel.shape) != want_kernel:
        problems.append(
            f"{src.role}: kernel {tuple(kernel.shape)} (HWIO), model wants {want_kernel}"
        )
    if tuple(bias.shape) != want_bias:
        problems.append(f"{src.role}: bias {tuple(bias.shape)}, model wants {want_bias}")
    if graph_convs is not None:
        facts = graph_convs.get(src.role, {})
        declared = (3, 3, facts.get("in_channels"), facts.get("filters"))
        if tuple(kernel.shape) != declared:
            problems.append(
                f"{src.role}: stored kernel {tuple(kernel.shape)} but the graph declares {declared}"
            )
    return problems


_CONV_SETTINGS = {
    "kernel_size": [3, 3],
    "strides": [1, 1],
    "padding": "same",
    "dilation_rate": [1, 1],
    "groups": 1,
    "use_bias": True,
    "data_format": "channels_last",
}


def _graph_problems(role: str, facts: dict[str, Any]) -> list[str]:
    return [
        f"{role}: {key}={facts.get(key)!r}, expected {value!r}"
        for key, value in _CONV_SETTINGS.items()
        if facts.get(key) != value
    ]
