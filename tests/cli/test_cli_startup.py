"""Building the parser imports no torch: ``fastnst --help`` and every ``COMMAND --help`` stay fast.

Not a timed test (benchmarks/cli_startup.py measures the seconds); this checks the cause of a slow start instead:
which heavy modules the interpreter holds after printing the help.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fastnst.commands import COMMANDS

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "onnx", "onnxruntime")

PROBE = """
import json, sys
from fastnst.cli import main
try:
    main(sys.argv[2:])
except SystemExit:
    pass
heavy = sorted(name for name in sys.modules if name.split(".")[0] in json.loads(sys.argv[1]))
print("HEAVY=" + json.dumps(heavy))
"""


def heavy_modules_after(*argv: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(HEAVY), *argv], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    marker = [line for line in proc.stdout.splitlines() if line.startswith("HEAVY=")]
    assert marker, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(marker[-1].removeprefix("HEAVY="))


@pytest.mark.parametrize("argv", [("--help",), ("--version",), *[(name, "--help") for name in COMMANDS]],
                         ids=lambda argv: " ".join(argv))
def test_help_imports_no_torch(argv: tuple[str, ...]) -> None:
    assert heavy_modules_after(*argv) == []


def test_the_probe_sees_torch_when_a_command_runs(tmp_path: Path) -> None:
    """The probe above can fail: a command that runs (and fails on a missing model) does import torch."""
    assert "torch" in heavy_modules_after("stylize", str(tmp_path / "missing.jpg"), "-m", str(tmp_path / "nope"),
                                          "-o", str(tmp_path / "out.jpg"))
