"""``python -m ptycho_torch.simulate --out scan.npz``: write a simulated ptychography NPZ."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from ptycho_torch.cli import UsageError, run_cli
from ptycho_torch.cli_options import ConfigOptions
from ptycho_torch.simulate import SimulationConfig, simulate_scan, write_npz

__all__ = ["main"]

logger = logging.getLogger("ptycho_torch.simulate")

SIMULATION = ConfigOptions(SimulationConfig)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ptycho_torch.simulate", description="Write a simulated ptychography NPZ."
    )
    p.add_argument("--out", required=True, help="output .npz file")
    SIMULATION.add_to(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: ``python -m ptycho_torch.simulate --out FILE.npz``."""
    args = _parser().parse_args(argv)

    def body() -> None:
        config = SIMULATION.build(args)
        try:
            scan = simulate_scan(config)
        except ValueError as exc:  # e.g. an object_size too small for the scan grid
            raise UsageError(str(exc)) from None
        path = write_npz(scan, args.out)
        logger.info("wrote %s", path)

    return run_cli(body)
