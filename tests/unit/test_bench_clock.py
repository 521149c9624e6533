"""The clock bench-backup wraps around each measure, run by a real bash (as in its container)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_backup.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_backup", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_backup"] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


def clocked_locally(bench: ModuleType, script: str) -> str:
    wrapped = bench.CLOCK.format(script=script, marker=bench.MARKER)
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", wrapped], capture_output=True, text=True, check=True
    ).stdout


def test_wall_and_cpu_seconds_of_the_script_and_its_own_output(bench: ModuleType) -> None:
    busy = "i=0; while [ $i -lt 200000 ]; do i=$((i + 1)); done"  # CPU in a child bash
    found = bench.parse_clock(clocked_locally(bench, f"echo first; sleep 0.3; bash -c '{busy}'; echo last"))
    assert found.output == "first\nlast"
    assert found.seconds >= 0.3
    assert 0.05 < found.cpu <= found.seconds + 0.05  # one child, so no more CPU than wall time


def test_a_failing_script_stops_before_the_clock(bench: ModuleType) -> None:
    wrapped = bench.CLOCK.format(script="false", marker=bench.MARKER)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", wrapped], capture_output=True, text=True, check=False)
    assert result.returncode != 0 and bench.MARKER not in result.stdout


@pytest.mark.parametrize("output", ["", "no clock here\n", "portalops-bench-clock 1 2\n0m0.0s 0m0.0s\n"])
def test_output_without_a_whole_clock_is_an_error(bench: ModuleType, output: str) -> None:
    with pytest.raises(bench.BenchError):
        bench.parse_clock(output)
