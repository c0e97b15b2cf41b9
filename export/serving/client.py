"""Clients of a served model (``python -m export serve``, or a full Triton server with the
repository ``python -m export triton`` writes), over HTTP or gRPC, torch-free.

:class:`TritonClient` is one connection: it reads the model's metadata, checks that it is the
model of the artifacts (:class:`export.triton_model.TritonModel`: names, data types, dims; the
batch axis dynamic as ``serve`` binds it, or fixed at ``B`` as the repository's
``config.pbtxt`` says) and sends requests. :class:`TritonRunner` is that connection as
:class:`export.predict.Predictor`'s runner: one request of exactly the artifact's ``B`` patterns
per batch (``Predictor`` pads the last), which both kinds of server accept, so
``python -m export client`` stitches a scan through the server by the same code
``python -m export predict`` uses. tritonclient is imported only when a client connects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from export.errors import ServeEnvironmentError, ServerError
from export.signature import Signature
from export.triton_model import DEFAULT_MODEL_NAME, TritonModel

__all__ = ["ServerURL", "TritonClient", "TritonRunner"]

_URL = re.compile(r"^(?:(?P<scheme>http|grpc)://)?(?P<host>[^/:\s]+):(?P<port>\d{1,5})/?$")
_CLIENT_INSTALL = "pip install 'tritonclient[http,grpc]' (docs/serving.md)"


@dataclass(frozen=True)
class ServerURL:
    """``grpc://HOST:PORT`` or ``http://HOST:PORT`` (no scheme: HTTP)."""

    protocol: str  # "http" | "grpc"
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> ServerURL:
        """Raises ServerError (exit 2) for anything else, naming the accepted forms."""
        match = _URL.match(url.strip())
        if match is None or not 0 < int(match["port"]) < 65536:
            raise ServerError(
                f"--url {url!r}: use grpc://HOST:PORT or http://HOST:PORT "
                "(python -m export serve prints both)"
            )
        return cls(match["scheme"] or "http", match["host"], int(match["port"]))

    def __str__(self) -> str:
        return f"{self.protocol}://{self.host}:{self.port}"


class TritonClient:
    """One connection to the served model ``model.name`` at ``url``.

    Args:
        url: where the server listens.
        model: the model the artifacts describe; the server's must be the same.
        timeout_s: network timeout of one request.

    Raises:
        ServerError: (exit 3) nothing answers at ``url`` or the model is not ready there;
            (exit 2) the served model is not ``model``.
        ServeEnvironmentError: (exit 3) tritonclient lacks the protocol's part.
    """

    def __init__(self, url: str | ServerURL, model: TritonModel, timeout_s: float = 60.0) -> None:
        self.url = url if isinstance(url, ServerURL) else ServerURL.parse(url)
        self.model = model
        self.timeout_s = timeout_s
        self._module = _client_module(self.url.protocol)
        address = f"{self.url.host}:{self.url.port}"
        if self.url.protocol == "http":
            self._client = self._module.InferenceServerClient(
                address, connection_timeout=timeout_s, network_timeout=timeout_s
            )
        else:
            self._client = self._module.InferenceServerClient(address)
        try:
            self.max_batch_size = self._check_model()
        except BaseException:
            self.close()
            raise

    def _check_model(self) -> int:
        """The served maximum per request (``B`` for a fixed-batch repository model)."""
        name = self.model.name
        try:
            ready = self._client.is_model_ready(name)
        except Exception as exc:  # noqa: BLE001 - connection refused, DNS, timeout
            raise ServerError(
                f"no Triton server answers at {self.url} ({_message(exc)}): start one with "
                "`python -m export serve --artifacts DIR`, or pass its --url",
                exit_code=3,
            ) from None
        if not ready:
            raise ServerError(
                f"the server at {self.url} has no model {name!r} ready: pass --name as the "
                "server was started with (python -m export serve prints it)",
                exit_code=3,
            )
        if self.url.protocol == "grpc":
            metadata = self._client.get_model_metadata(name, as_json=True)
        else:
            metadata = self._client.get_model_metadata(name)
        served = {t["name"]: t for t in (*metadata["inputs"], *metadata["outputs"])}
        limits, problems = set(), []
        for tensor in (*self.model.inputs, *self.model.outputs):
            found = served.get(tensor.name)
            if found is None:
                problems.append(f"no tensor {tensor.name!r}")
                continue
            shape = [int(d) for d in found["shape"]]
            if found["datatype"] != tensor.wire_type or shape[1:] != list(tensor.dims):
                problems.append(
                    f"{tensor.name!r} is {found['datatype']}{shape}, the artifacts' "
                    f"{tensor.wire_type}[b, {', '.join(map(str, tensor.dims))}]"
                )
            elif shape[0] not in (-1, self.model.batch):
                problems.append(
                    f"{tensor.name!r} has a fixed batch {shape[0]}, not {self.model.batch}"
                )
            else:
                limits.add(shape[0])
        extra = sorted(set(served) - {*self.model.input_names, *self.model.output_names})
        if extra:
            problems.append(f"tensors the artifacts do not have: {extra}")
        if problems:
            raise ServerError(
                f"the model {name!r} served at {self.url} is not the artifacts' model: "
                + "; ".join(problems)
                + ": pass the artifacts the server serves"
            )
        if limits == {-1}:
            config = self._client.get_model_config(name, **self._json())
            config = config.get("config", config)
            return int(config.get("max_batch_size", self.model.batch) or self.model.batch)
        return self.model.batch

    def _json(self) -> dict[str, Any]:
        return {"as_json": True} if self.url.protocol == "grpc" else {}

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Send one request; its outputs by name.

        Raises:
            ServerError: (exit 2) the server answered with an error (naming the problem it
                named), or did not answer within ``timeout_s``.
        """
        try:
            inputs = []
            for tensor in self.model.inputs:
                value = np.ascontiguousarray(feed[tensor.name])
                one = self._module.InferInput(tensor.name, list(value.shape), tensor.wire_type)
                one.set_data_from_numpy(value)
                inputs.append(one)
        except Exception as exc:  # noqa: BLE001 - tritonclient refuses a dtype it was not told
            raise ServerError(f"request not sent to {self.url}: {_message(exc)}") from None
        outputs = [self._module.InferRequestedOutput(n) for n in self.model.output_names]
        kwargs: dict[str, Any] = {"outputs": outputs}
        if self.url.protocol == "grpc":
            kwargs["client_timeout"] = self.timeout_s
        try:
            result = self._client.infer(self.model.name, inputs, **kwargs)
        except Exception as exc:  # noqa: BLE001 - tritonclient's InferenceServerException
            raise ServerError(f"{self.url} answered with an error: {_message(exc)}") from None
        return {name: result.as_numpy(name) for name in self.model.output_names}

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> TritonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TritonRunner:
    """A served model as :class:`export.predict.Predictor`'s runner: the artifact's fixed
    batch per request, checked against the signature both ways.

    Args:
        url: the server.
        signature: the artifacts' (from their manifest).
        name: the model name it serves under.
    """

    device = "triton"
    io_bound = False

    def __init__(self, url: str, signature: Signature, name: str = DEFAULT_MODEL_NAME) -> None:
        self.signature = signature
        self.client = TritonClient(url, TritonModel.from_signature(name, signature))
        self.providers = [f"{self.client.url} model {name!r}"]

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.signature.check_feed(feed)  # the one feed check, before anything is sent
        outputs = self.client.infer(feed)
        self.signature.check_outputs(outputs)
        return outputs

    def close(self) -> None:
        self.client.close()


def _client_module(protocol: str) -> Any:
    """``tritonclient.http`` or ``tritonclient.grpc`` (ModuleNotFoundError without
    tritonclient: the command's edge prints the install line)."""
    try:
        if protocol == "grpc":
            import tritonclient.grpc as module
        else:
            import tritonclient.http as module
    except RuntimeError as exc:  # tritonclient without the protocol's extra says so this way
        raise ServeEnvironmentError(f"{exc}: {_CLIENT_INSTALL}") from None
    return module


def _message(exc: BaseException) -> str:
    """The server's reason in one line: PyTriton sends a traceback whose last error line is
    ours (``RequestError: ...``); Triton's own errors are one line already."""
    text = (exc.message() if hasattr(exc, "message") else None) or str(exc)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error: " in line and not line.startswith(("File ", "At:")):
            return line.split("Error: ", 1)[1] if "RequestError: " in line else line
    return lines[0] if lines else type(exc).__name__
