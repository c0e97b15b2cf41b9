"""One feed check and one message for every consumer (build, parity, the torch-free host), with
advice that fits the fault."""

from __future__ import annotations

import numpy as np
import pytest

from export.build import BuildResult
from export.errors import SignatureError
from export.host import OnnxHost


def test_wrong_name_is_told_to_rename_not_to_cast(built: BuildResult) -> None:
    host = OnnxHost(built.out / "model.onnx")
    shape = tuple(host.signature.inputs[0].shape)
    with pytest.raises(SignatureError) as info:
        host.run({"diff": np.zeros(shape, np.float32)})
    message = str(info.value)
    assert "rename the keys ('diff' -> 'diffraction')" in message
    assert "astype" not in message


def test_host_and_build_share_the_message(built: BuildResult) -> None:
    host = OnnxHost(built.out / "model.onnx")
    feed = {"diffraction": np.zeros((1, 1, 64, 64), np.float64)}
    with pytest.raises(SignatureError) as from_host:
        host.run(feed)
    with pytest.raises(SignatureError) as from_signature:
        built.signature.check_feed(feed)
    assert str(from_host.value) == str(from_signature.value)
    assert ".astype(np.float32)" in str(from_host.value)
