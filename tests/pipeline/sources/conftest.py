"""Shared fixtures: the excerpts of real recordings in tests/data (README there)."""

import pathlib

import pytest

DATA = pathlib.Path(__file__).resolve().parents[2] / "data"


@pytest.fixture
def data_dir() -> pathlib.Path:
  return DATA


@pytest.fixture
def write(tmp_path):
  """Writes a small file under tmp_path and returns its path as str."""
  def _write(name: str, text: str) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)
  return _write
