"""Every console script is installed and answers --help with its usage."""

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
  assert result.returncode == 0, output
  assert "usage" in output.lower() or "flags" in output.lower()
