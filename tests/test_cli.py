"""Every console script answers --help; the ones not built yet say so and exit 2."""

import shutil
import subprocess
import sys

import pytest

COMMANDS = ["lsm-synth", "lsm-pipeline", "lsm-train", "lsm-eval", "lsm-scaling"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command):
  exe = shutil.which(command) or shutil.which(command, path=sys.prefix + "/bin")
  assert exe, f"{command} is not installed"
  result = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=300)
  output = result.stdout + result.stderr
  if result.returncode == 2:
    assert "Not built yet" in output
  else:
    assert result.returncode == 0, output
    assert "usage" in output.lower() or "flags" in output.lower()
