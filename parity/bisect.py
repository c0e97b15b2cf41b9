"""Where do two backends part? Layer-by-layer bisection of one batch across backends.

``python -m parity bisect --artifacts DIR --pair eager:onnxruntime`` runs both sides of a pair
on the same batch up to every named boundary of the network and compares them there:

- a **boundary** is the output of one convolution layer, after the activation that the original
  (and the TensorFlow twin) fuses into that layer: ``encoder.1.convs.conv2`` after its ReLU,
  ``amplitude_decoder.head.outer.conv`` after its swish, ``amplitude_decoder.head.centre_conv``
  before the head's activation; then the head outputs themselves (``amplitude``, ``phase``,
  ``pred_amplitude``). Names are the PyTorch module paths, which are also the twin's Keras layer
  names and (with the wrapper's ``model.`` prefix) the ONNX initializer names of each Conv's
  weights, so one name finds the same place in every backend;
- each boundary has a **block** (``encoder.1``, ``amplitude_decoder.blocks.0``,
  ``phase_decoder.head`` centre or outer path) and its **upstream** boundaries (dataflow, not
  file order: the phase decoder's first conv follows the encoder's last, not the amplitude
  decoder's).

Float32 round-off grows slowly along a network, so a boundary's relative error
(``max |left - right| / max |left|``) is *expected* to stay within ``JUMP`` times the worst
relative error upstream of it, and never to need more than the floor ``FLOOR``. The first
boundary above ``max(FLOOR, JUMP * upstream)`` is where the sides part; a healthy pair names
nothing and the table is its per-boundary noise floor.

Sides: ``eager`` (forward hooks on the checkpoint's model), ``exported-program`` (``model.pt2``
run node by node, convs found by the exporter's ``nn_module_stack``), ``onnxruntime`` (a copy of
``model.onnx`` with the boundary values added as graph outputs, run by ONNX Runtime) and
``tf-twin`` (the TensorFlow twin with the checkpoint's weights, Keras layer outputs; NHWC is
turned into NCHW). TorchScript is compiled whole (a loaded script module takes no hooks):
compare it end to end with ``parity check``, and bisect eager against the others.
"""

from __future__ import annotations

import logging
import math
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from export.manifest import Manifest, read_manifest
from export.signature import AMPLITUDE, PHASE, PRED_AMPLITUDE, Signature
from parity.errors import EnvironmentUnavailable, ParityError
from parity.lifecycle import Activatable

__all__ = [
    "FLOOR",
    "JUMP",
    "SIDES",
    "BisectResult",
    "Boundary",
    "BoundaryError",
    "Side",
    "bisect",
    "boundaries",
    "make_side",
    "parse_pair",
    "read_batch",
]

log = logging.getLogger(__name__)

JUMP = 10.0  # a boundary may carry this many times its upstream's relative error
FLOOR = 1e-5  # ... and never needs less room than this (5x the 2e-6 CPU target)

SIDES = ("eager", "exported-program", "onnxruntime", "tf-twin")
_ALIASES = {
    "onnx": "onnxruntime",
    "ort": "onnxruntime",
    "tf": "tf-twin",
    "tf-live": "tf-twin",
    "twin": "tf-twin",
    "torch": "eager",
    "pt2": "exported-program",
    "torch.export": "exported-program",
}
_WHOLE = ("torchscript", "ts", "tf-reference")
_DECODER_OUTPUT = {"amplitude_decoder": AMPLITUDE, "phase_decoder": PHASE}
# The physics forward's steps (the twin's names, eager's physics_steps keys) and their upstream:
# eager and the twin can stop there; ONNX Runtime and .pt2 run the physics head whole.
PHYSICS_STEPS = {
    "obj": ("obj", (AMPLITUDE, PHASE)),
    "padded_obj": ("padded_obj", ("obj",)),
    "trimmed_obj": ("trimmed_obj", ("padded_obj",)),
    "extracted_patches": ("extracted", ("padded_obj",)),
    "illuminated": ("illuminated", ("extracted_patches",)),
    "pred_amplitude_unscaled": ("pred_amplitude_unscaled", ("illuminated",)),
}
_STEP = "physics."


class BisectError(ParityError):
    """Bad bisect request (exit 2)."""


@dataclass(frozen=True)
class Boundary:
    """One place both sides are stopped at and compared.

    Attributes:
        name: Conv module path (``encoder.1.convs.conv2``) or output name (``amplitude``).
        block: The block it belongs to, as a person names it.
        post: What follows the conv inside the boundary: ``relu``, ``silu``, ``none``;
            ``output`` for a head output.
        upstream: Boundaries whose values feed this one directly.
    """

    name: str
    block: str
    post: str
    upstream: tuple[str, ...]


@dataclass(frozen=True)
class BoundaryError:
    """Both sides compared at one boundary."""

    name: str
    block: str
    shape: tuple[int, ...]
    max_abs: float
    peak: float
    rel: float  # max_abs / peak (max_abs when the peak is 0); inf when a side is not finite
    upstream_rel: float  # the worst rel of every boundary upstream (0 at the first)
    allowed: float  # max(FLOOR, JUMP * upstream_rel)
    jump: bool


@dataclass
class BisectResult:
    """Per-boundary errors of one pair on one batch; ``first_jump`` names where they part."""

    left: str
    right: str
    head: str
    inputs: str
    batch_start: int
    batch_size: int
    rows: list[BoundaryError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def first_jump(self) -> BoundaryError | None:
        return next((r for r in self.rows if r.jump), None)

    def to_dict(self) -> dict[str, Any]:
        jump = self.first_jump
        return {
            "left": self.left,
            "right": self.right,
            "head": self.head,
            "inputs": self.inputs,
            "batch_start": self.batch_start,
            "batch_size": self.batch_size,
            "jump_factor": JUMP,
            "floor": FLOOR,
            "first_jump": None if jump is None else {"boundary": jump.name, "block": jump.block},
            "boundaries": [
                {
                    k: (_finite_or_text(v) if isinstance(v, float) else v)
                    for k, v in asdict(r).items()
                }
                for r in self.rows
            ],
            "notes": list(self.notes),
        }

    def table(self) -> str:
        lines = [
            f"bisect {self.left} vs {self.right}: {self.head} head, samples "
            f"{self.batch_start}..{self.batch_start + self.batch_size - 1} of {self.inputs}",
            f"{'boundary':<44} {'block':<37} {'max abs':>9} {'peak':>9} {'rel':>9} {'allowed':>9}",
        ]
        first = self.first_jump
        for r in self.rows:
            mark = "  <- first jump" if r is first else ("  <- jump" if r.jump else "")
            lines.append(
                f"{r.name:<44} {r.block:<37} {r.max_abs:>9.2e} {r.peak:>9.2e} {r.rel:>9.2e} "
                f"{r.allowed:>9.2e}{mark}"
            )
        if first is None:
            worst = max((r.rel for r in self.rows), default=0.0)
            lines.append(
                f"no jump: every boundary within max({FLOOR:g}, {JUMP:g} x its upstream's relative "
                f"error); the rel column is this pair's noise floor (worst {worst:.2e})"
            )
        else:
            lines.append(
                f"first jump: {first.name} in {first.block}: relative error {first.rel:.2e}, where "
                f"its upstream noise {first.upstream_rel:.2e} allows {first.allowed:.2e}"
            )
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _finite_or_text(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def boundaries(model: Any, signature: Signature, physics_steps: bool = False) -> list[Boundary]:
    """The boundaries of a ``PtychoPINN`` in execution order, with their dataflow upstream;
    with ``physics_steps`` (physics head, both sides able) also every step of the physics
    forward (``physics.obj`` ... ``physics.pred_amplitude_unscaled``)."""
    from torch import nn

    from ptycho_torch.model import ConvPair, DecoderHead, OuterPath

    modules = dict(model.named_modules())
    out: list[Boundary] = []
    encoder_last: str | None = None
    block_last: dict[str, str] = {}
    outer_last: dict[str, str] = {}
    centre: dict[str, str] = {}
    for path, module in modules.items():
        if not isinstance(module, nn.Conv2d):
            continue
        parent_path, _, leaf = path.rpartition(".")
        parent = modules[parent_path]
        if isinstance(parent, ConvPair):
            post = "relu"
        elif isinstance(parent, OuterPath):
            post = "silu"
        elif isinstance(parent, (DecoderHead, nn.Sequential)):
            post = "none"  # centre_conv, or the head's last conv without pad_object
        else:
            raise BisectError(f"bisect does not know the conv layer {path} (parent {parent_path})")
        if path.startswith("encoder."):
            upstream, block = encoder_last, ".".join(path.split(".")[:2])
            encoder_last = path
        else:
            decoder, rest = path.split(".", 1)
            trunk = block_last.get(decoder, encoder_last)
            if rest.startswith("blocks."):
                upstream, block = trunk, ".".join(path.split(".")[:3])
                block_last[decoder] = path
            elif rest.startswith("head.centre_conv"):
                upstream, block = trunk, f"{decoder}.head (centre path)"
                centre[decoder] = path
            elif rest.startswith("head.outer"):
                upstream, block = outer_last.get(decoder, trunk), f"{decoder}.head (outer path)"
                outer_last[decoder] = path
            else:
                raise BisectError(f"bisect does not know the conv layer {path}")
        out.append(Boundary(path, block, post, () if upstream is None else (upstream,)))
    for decoder, output in _DECODER_OUTPUT.items():
        ends = tuple(p for p in (centre.get(decoder), outer_last.get(decoder)) if p)
        if output in signature.output_names:
            out.append(Boundary(output, f"{decoder} output", "output", ends))
    if PRED_AMPLITUDE in signature.output_names:
        last: tuple[str, ...] = (AMPLITUDE, PHASE)
        if physics_steps:
            for step, (_, feeds) in PHYSICS_STEPS.items():
                up = tuple(u if u in (AMPLITUDE, PHASE) else _STEP + u for u in feeds)
                out.append(Boundary(_STEP + step, "physics forward", "step", up))
            last = (_STEP + "pred_amplitude_unscaled",)
        out.append(Boundary(PRED_AMPLITUDE, "physics head", "output", last))
    return out


def _flat_step(value: Any) -> np.ndarray:
    """A physics step as ``(B, elements)`` float32, complex as (re, im) pairs: canvases are
    ``(B, M, M)`` in eager and ``(B, 1, M, M)`` in the twin, the same values in the same order."""
    array = np.asarray(value)
    if np.iscomplexobj(array):
        array = np.stack([array.real, array.imag], axis=-1)
    return np.ascontiguousarray(array.reshape(array.shape[0], -1), dtype=np.float32)


def parse_pair(text: str) -> tuple[str, str]:
    """``"eager:onnxruntime"`` -> ``("eager", "onnxruntime")``; aliases accepted."""
    parts = [p.strip().lower() for p in text.split(":")]
    if len(parts) != 2 or not all(parts):
        raise BisectError(f"--pair {text!r}: expected LEFT:RIGHT, e.g. eager:onnxruntime")
    sides = []
    for part in parts:
        side = _ALIASES.get(part, part)
        if side in _WHOLE:
            raise BisectError(
                f"--pair {text!r}: {part} runs as one compiled program and cannot be stopped at a "
                f"layer; bisect {' or '.join(SIDES)} (compare {part} end to end with `parity check`)"
            )
        if side not in SIDES:
            raise BisectError(
                f"--pair {text!r}: unknown side {part!r}; sides are {', '.join(SIDES)}"
            )
        sides.append(side)
    if sides[0] == sides[1]:
        raise BisectError(f"--pair {text!r}: both sides are {sides[0]}; name two different sides")
    return sides[0], sides[1]


class Side(Activatable):
    """One backend run to the boundaries: ``with side: values = side.run(feed, bounds)``.

    ``activate`` does nothing on an active side, so a test may change one (a broken twin)
    before :func:`bisect` enters it."""

    kind = "side"
    physics_steps = False  # can stop inside the physics forward (eager and the twin)

    def __init__(self, artifacts: Path, manifest: Manifest, signature: Signature, device: str):
        self.artifacts = artifacts
        self.manifest = manifest
        self.signature = signature
        self.device = device
        self.name = f"{self.kind}[{device}]"

    @abstractmethod
    def run(
        self, feed: Mapping[str, np.ndarray], bounds: Sequence[Boundary]
    ) -> dict[str, np.ndarray]:
        """Every boundary's value, NCHW float32, for ``feed`` in the signature's layout."""


def _post_torch(post: str, value: Any) -> Any:
    import torch

    if post == "relu":
        return torch.relu(value)
    if post == "silu":
        return torch.nn.functional.silu(value)
    return value


def _post_numpy(post: str, value: np.ndarray) -> np.ndarray:
    if post == "relu":
        return np.maximum(value, np.float32(0))
    if post == "silu":
        return (value / (np.float32(1) + np.exp(-value))).astype(np.float32)
    return value


class EagerSide(Side):
    """The checkpoint's model with a forward hook on every boundary conv."""

    kind = "eager"
    physics_steps = True

    def _activate(self) -> None:
        from export.artifacts import LoadedArtifact
        from export.wrapper import wrap
        from parity.runners import torch_device
        from ptycho_torch.checkpoint import load_model

        device = torch_device(self.device)
        self.model = load_model(self.manifest.weights_path(self.artifacts)).eval()
        module = wrap(self.model, self.signature).to(device)
        self.fn = LoadedArtifact(self.artifacts, self.kind, self.signature, device, module)

    def _deactivate(self) -> None:
        self.model = self.fn = None  # type: ignore[assignment]

    def run(
        self, feed: Mapping[str, np.ndarray], bounds: Sequence[Boundary]
    ) -> dict[str, np.ndarray]:
        modules = dict(self.model.named_modules())
        values: dict[str, np.ndarray] = {}
        handles = []
        for b in bounds:
            if b.post in ("output", "step"):  # the steps come after the forward
                continue

            def hook(_m: Any, _a: Any, out: Any, b: Boundary = b) -> None:
                values[b.name] = _post_torch(b.post, out).detach().cpu().numpy()

            handles.append(modules[b.name].register_forward_hook(hook))
        try:
            values.update(self.fn(feed))
        finally:
            for h in handles:
                h.remove()
        if any(b.post == "step" for b in bounds):
            values.update(self._physics_steps(feed, values))
        return values

    def _physics_steps(
        self, feed: Mapping[str, np.ndarray], values: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """The physics forward's steps, recomputed from the head's own outputs (the same ops
        on the same values as inside the forward)."""
        import torch

        device = next(self.model.parameters()).device
        tensors = (values[AMPLITUDE], values[PHASE], feed["positions"])
        amplitude, phase, positions = (torch.from_numpy(np.asarray(v)).to(device) for v in tensors)
        with torch.inference_mode():
            steps = self.model.physics_steps(amplitude, phase, positions)
        out = {}
        for step, (key, _) in PHYSICS_STEPS.items():
            if f"{key}_re" in steps:
                value = steps[f"{key}_re"].cpu().numpy() + 1j * steps[f"{key}_im"].cpu().numpy()
            else:
                value = steps[key].cpu().numpy()
            out[_STEP + step] = _flat_step(value)
        return out


class ExportedProgramSide(Side):
    """``model.pt2`` run node by node (``torch.fx.Interpreter``); each conv node is found by the
    module path the exporter keeps in its ``nn_module_stack``."""

    kind = "exported-program"

    def _activate(self) -> None:
        from export.artifacts import load_program
        from parity.runners import torch_device

        self.fn = load_program(self.artifacts / "model.pt2", torch_device(self.device))
        self.module = self.fn._fn  # the program's GraphModule

    def _deactivate(self) -> None:
        self.fn = self.module = None  # type: ignore[assignment]

    def run(
        self, feed: Mapping[str, np.ndarray], bounds: Sequence[Boundary]
    ) -> dict[str, np.ndarray]:
        import torch.fx

        posts = {b.name: b.post for b in bounds if b.post != "output"}
        values: dict[str, np.ndarray] = {}

        class Recorder(torch.fx.Interpreter):
            def run_node(self, n: torch.fx.Node) -> Any:
                result = super().run_node(n)
                stack = n.meta.get("nn_module_stack") or {}
                if n.op == "call_function" and "conv" in str(n.target):
                    path = str(list(stack.values())[-1][0]) if stack else ""
                    name = next((b for b in posts if path == b or path.endswith("." + b)), None)
                    if name is not None:
                        values[name] = _post_torch(posts[name], result).detach().cpu().numpy()
                return result

        module: Any = self.module  # the same checked call, through the recording interpreter
        values.update(replace(self.fn, _fn=lambda *args: Recorder(module).run(*args))(feed))
        missing = sorted(set(posts) - set(values))
        if missing:
            raise BisectError(
                f"model.pt2: no conv node carries the module path of {missing[0]} "
                f"({len(missing)} boundaries unmatched); was it built by this tool?"
            )
        return values


class OnnxSide(Side):
    """A copy of ``model.onnx`` whose boundary values are graph outputs, run by ONNX Runtime."""

    kind = "onnxruntime"

    def _activate(self) -> None:
        self.path = self.artifacts / "model.onnx"
        if not self.path.is_file():
            raise BisectError(f"{self.path} does not exist; rebuild with `python -m export build`")

    def _deactivate(self) -> None:
        pass  # each run builds its own session

    def _session(self, bounds: Sequence[Boundary]) -> tuple[Any, dict[str, tuple[str, str]]]:
        import onnx
        import onnxruntime as ort

        model = onnx.load(str(self.path))
        graph = model.graph
        consumers: dict[str, list[Any]] = {}
        for node in graph.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node)
        convs = {n.input[1]: n for n in graph.node if n.op_type == "Conv" and len(n.input) > 1}
        taps: dict[str, tuple[str, str]] = {}  # boundary -> (graph value, post op left to numpy)
        for b in bounds:
            if b.post == "output":
                taps[b.name] = (b.name, "none")
                continue
            weight = next(
                (w for w in convs if w == f"{b.name}.weight" or w.endswith(f".{b.name}.weight")),
                None,
            )
            if weight is None:
                raise BisectError(
                    f"{self.path}: no Conv node takes the weights of {b.name} (looked for an "
                    f"initializer named like 'model.{b.name}.weight'); was it built by this tool?"
                )
            value = convs[weight].output[0]
            taps[b.name] = _fused_post(value, b.post, consumers)
        have = {o.name for o in graph.output}
        for value, _ in taps.values():
            if value not in have:
                graph.output.append(
                    onnx.helper.make_tensor_value_info(value, onnx.TensorProto.FLOAT, None)
                )
                have.add(value)
        from export.cuda_advice import cuda_attempt
        from export.host import provider_chain
        from export.session import SessionSettings

        settings = SessionSettings.from_manifest(self.manifest)  # the host's tuned session
        if settings is not None:  # without IO binding or a CUDA graph: the outputs added here
            settings = replace(settings, io_binding=None, cuda_graph=None)  # have no buffers
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if settings is not None:
            settings.session_options(options)
        providers = provider_chain(self.device, settings)  # TF32 off on CUDA, as the host
        with cuda_attempt(self.device) as attempt:  # as OnnxHost: the same advice on CUDA
            session = ort.InferenceSession(model.SerializeToString(), options, providers=providers)
        problem = attempt.problem(session.get_providers())
        if problem is not None:
            raise EnvironmentUnavailable(problem)
        return session, taps

    def run(
        self, feed: Mapping[str, np.ndarray], bounds: Sequence[Boundary]
    ) -> dict[str, np.ndarray]:
        session, taps = self._session(bounds)
        names = sorted({value for value, _ in taps.values()})
        results = dict(
            zip(
                names,
                session.run(names, {k: np.asarray(feed[k]) for k in self.signature.input_names}),
            )
        )
        return {
            b: _post_numpy(post, np.asarray(results[value])) for b, (value, post) in taps.items()
        }


def _fused_post(value: str, post: str, consumers: Mapping[str, list[Any]]) -> tuple[str, str]:
    """The graph value after ``post`` when the graph has that op right after the conv, else the
    conv's value with ``post`` left for numpy."""
    users = consumers.get(value, [])
    if post == "relu":
        for node in users:
            if node.op_type == "Relu":
                return node.output[0], "none"
    if post == "silu":
        sigmoids = {n.output[0] for n in users if n.op_type == "Sigmoid"}
        for node in users:
            if node.op_type == "Mul" and set(node.input) & sigmoids:
                return node.output[0], "none"
    return value, post


class TfTwinSide(Side):
    """The TensorFlow twin with the checkpoint's weights; boundaries are Keras layer outputs."""

    kind = "tf-twin"
    physics_steps = True

    def _activate(self) -> None:
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            raise EnvironmentUnavailable(
                "the tf-twin side needs TensorFlow; install the 'tf' extra "
                "(pip install -c constraints.txt -e '.[tf]') or bisect eager:onnxruntime"
            ) from None
        from parity.tf_twin.generate import make_twin
        from ptycho_torch.checkpoint import read_checkpoint

        if self.device != "cpu":
            raise BisectError("the tf-twin side runs on the CPU only; use --device cpu")
        config, state = read_checkpoint(self.manifest.weights_path(self.artifacts))
        self.twin = make_twin(config, state, self.signature.head)

    def _deactivate(self) -> None:
        self.twin = None

    def run(
        self, feed: Mapping[str, np.ndarray], bounds: Sequence[Boundary]
    ) -> dict[str, np.ndarray]:
        import tensorflow as tf

        from parity.tf_twin.generate import DEVICE, apply_tf_precision_policy
        from parity.tf_twin.model import _keras

        keras = _keras()
        outputs = {}
        for b in bounds:
            if b.post == "step":
                continue  # from parity.tf_twin.model.intermediates, below
            if b.post == "output":
                outputs[b.name] = self.twin.output[b.name]
            else:
                try:
                    outputs[b.name] = self.twin.get_layer(b.name).output
                except ValueError:
                    raise BisectError(f"the TensorFlow twin has no layer named {b.name}") from None
        probe = keras.Model(self.twin.inputs, outputs)
        apply_tf_precision_policy()
        with tf.device(DEVICE):
            inputs = {"diffraction": tf.constant(np.transpose(feed["diffraction"], (0, 2, 3, 1)))}
            if self.signature.head == "physics":
                inputs["positions"] = tf.constant(feed["positions"])
            result = probe(inputs, training=False)
            values = {
                k: np.ascontiguousarray(np.transpose(v.numpy(), (0, 3, 1, 2)))
                for k, v in result.items()
            }
            if any(b.post == "step" for b in bounds):
                from parity.tf_twin.model import intermediates

                steps = intermediates(self.twin, inputs["diffraction"], feed["positions"])
                for step in PHYSICS_STEPS:
                    values[_STEP + step] = _flat_step(steps[step].numpy())
        return values


_SIDE_TYPES: dict[str, type[Side]] = {
    "exported-program": ExportedProgramSide,
    "eager": EagerSide,
    "onnxruntime": OnnxSide,
    "tf-twin": TfTwinSide,
}


def make_side(
    kind: str, artifacts: Path, manifest: Manifest, signature: Signature, device: str
) -> Side:
    """A side of ``kind`` (one of :data:`SIDES` or an alias such as ``pt2``), not yet activated."""
    return _SIDE_TYPES[_ALIASES.get(kind, kind)](artifacts, manifest, signature, device)


def read_batch(
    inputs: Path, signature: Signature, sample: int
) -> tuple[dict[str, np.ndarray], int]:
    """The artifact-sized batch holding ``sample`` (and where it starts) from an inputs NPZ."""
    from parity.npz_stream import NpzRows

    size = signature.inputs[0].shape[0]
    with NpzRows(inputs, "inputs file") as rows:
        held = rows.shape(signature.input_names[0])[0]
        if not 0 <= sample < held:
            raise BisectError(f"--sample {sample}: {inputs} holds samples 0..{held - 1}")
        start = (sample // size) * size
        if start + size > held:
            raise BisectError(
                f"--sample {sample}: the batch {start}..{start + size - 1} is past the end of "
                f"{inputs} ({held} samples); pick a sample in a full batch of {size}"
            )
        feed = {n: rows.rows(n, start, start + size) for n in signature.input_names}
    signature.check_feed(feed)
    return feed, start


def compare(
    bounds: Sequence[Boundary],
    left: Mapping[str, np.ndarray],
    right: Mapping[str, np.ndarray],
    signature: Signature,
) -> list[BoundaryError]:
    """Per-boundary errors and the jump rule (module docstring)."""
    rel_of: dict[str, float] = {}
    reach: dict[str, float] = {}  # worst rel at or upstream of each boundary
    rows = []
    for b in bounds:
        a = np.asarray(left[b.name], dtype=np.float64)
        r = np.asarray(right[b.name], dtype=np.float64)
        if a.shape != r.shape:
            raise ParityError(f"boundary {b.name}: left has shape {a.shape}, right {r.shape}")
        d = a - r
        if (
            b.post == "output"
            and b.name in signature.output_names
            and signature.output(b.name).wraps
        ):
            d = (d + np.pi) % (2 * np.pi) - np.pi  # phase: compare angles
        finite = bool(np.isfinite(a).all() and np.isfinite(r).all())
        max_abs = float(np.abs(d).max()) if finite and d.size else (0.0 if finite else math.inf)
        peak = float(np.abs(a).max()) if finite and a.size else math.inf
        rel = max_abs / peak if finite and peak > 0 else max_abs
        upstream = max((reach[u] for u in b.upstream if u in reach), default=0.0)
        allowed = max(FLOOR, JUMP * upstream)
        rel_of[b.name] = rel
        reach[b.name] = max(rel, upstream)
        rows.append(
            BoundaryError(
                b.name,
                b.block,
                tuple(a.shape),
                max_abs,
                peak,
                rel,
                upstream,
                allowed,
                not rel <= allowed,
            )
        )
    return rows


def bisect(
    artifacts: Path,
    pair: tuple[str, str],
    *,
    inputs: Path | None = None,
    sample: int = 0,
    device: str = "cpu",
    sides: tuple[Side, Side] | None = None,
) -> BisectResult:
    """Run both sides of ``pair`` on the batch holding ``sample`` and compare every boundary.

    ``sides`` replaces the sides ``pair`` names (already built, e.g. a deliberately broken twin
    in a test); they are activated here if they are not yet.

    Raises:
        BisectError: bad pair, sample or artifacts (exit 2).
        EnvironmentUnavailable: a side's backend is missing (exit 3).
        ArtifactsChangedError: an artifact changed since the build (exit 4).
    """
    from contextlib import ExitStack

    from ptycho_torch.checkpoint import load_model

    manifest = read_manifest(artifacts)
    signature = Signature.from_dict(manifest.signature)
    inputs = inputs or artifacts / "inputs.npz"
    feed, start = read_batch(inputs, signature, sample)
    if sides is None:
        sides = (
            make_side(pair[0], artifacts, manifest, signature, device),
            make_side(pair[1], artifacts, manifest, signature, device),
        )
    steps = signature.head == "physics" and all(s.physics_steps for s in sides)
    values = []
    with ExitStack() as stack:
        for side in sides:
            stack.enter_context(side)
        # the boundary list needs the module tree only: an eager side's model, if one is loaded
        model = next((s.model for s in sides if isinstance(s, EagerSide)), None)
        if model is None:
            model = load_model(manifest.weights_path(artifacts))
        bounds = boundaries(model, signature, steps)
        for side in sides:
            log.info("bisect: running %s to %d boundaries", side.name, len(bounds))
            values.append(side.run(feed, bounds))
    result = BisectResult(
        left=sides[0].name,
        right=sides[1].name,
        head=signature.head,
        inputs=str(inputs),
        batch_start=start,
        batch_size=len(next(iter(feed.values()))),
        rows=compare(bounds, values[0], values[1], signature),
    )
    if any(s.kind == "onnxruntime" for s in sides):
        result.notes.append(
            "onnxruntime: boundary values are extra graph outputs of a copy of model.onnx, run "
            "with the manifest's session settings; ONNX Runtime does not fuse a node whose output "
            "is a graph output, so its kernels may differ slightly from the deployed session's"
        )
    return result
