"""pipeline.exchange: arrays through Arrow IPC files with references through the runner."""

import dataclasses
import pickle

import apache_beam as beam
import numpy as np
from apache_beam.testing.util import assert_that, equal_to

from pipeline import exchange


@dataclasses.dataclass
class Thing:
  name: str
  values: np.ndarray
  mask: np.ndarray
  empty: np.ndarray
  note: object = None


def _thing(i):
  rng = np.random.default_rng(i)
  return Thing(f"t{i}", rng.standard_normal((i + 1, 3, 4)).astype(np.float32),
               rng.random(i + 2) < 0.5, np.zeros((0, 26), np.int16), {"i": i})


def _same(a, b):
  assert (a.name, a.note) == (b.name, b.note)
  for field in ("values", "mask", "empty"):
    x, y = getattr(a, field), getattr(b, field)
    assert (x.dtype, x.shape) == (y.dtype, y.shape) and x.tobytes() == y.tobytes(), field


def test_round_trip_through_one_file(tmp_path):
  things = [_thing(i) for i in range(4)]
  refs = exchange.write(str(tmp_path / "x"), things)
  assert len({r.path for r in refs}) == 1 and [r.index for r in refs] == [0, 1, 2, 3]
  for thing, ref in zip(things, refs):
    back = exchange.fetch(ref)
    _same(thing, back)
    assert not back.values.flags.writeable  # memory-mapped, never copied
  assert exchange.fetch(things[0]) is things[0]  # not a reference: as it is
  # A reference is small whatever the arrays: that is what the runner carries.
  assert len(pickle.dumps(refs[3])) < 1000 < things[3].values.nbytes + 1000


def test_round_trip_on_a_non_local_filesystem(remote):
  things = [_thing(i) for i in range(2)]
  refs = exchange.write(remote.url("exchange"), things)
  assert refs[0].path.startswith("fakegs://exchange/")
  for thing, ref in zip(things, refs):
    _same(thing, exchange.fetch(ref))


def test_stash_in_a_pipeline(tmp_path, make_pipeline):
  directory = str(tmp_path / "exchange")
  with make_pipeline() as p:
    pairs = p | beam.Create([(i, _thing(i)) for i in range(5)])
    stored = pairs | exchange.Stash(directory)
    assert_that(stored | beam.MapTuple(lambda k, ref: (k, isinstance(ref, exchange.Stored),
                                                        exchange.fetch(ref).name)),
                equal_to([(i, True, f"t{i}") for i in range(5)]), label="stored")
    inline = pairs | "Inline" >> exchange.Stash(None)
    assert_that(inline | beam.MapTuple(lambda k, obj: (k, type(obj).__name__)),
                equal_to([(i, "Thing") for i in range(5)]), label="inline")
  assert list((tmp_path / "exchange").glob("*.arrow"))


def test_coder_estimates_from_the_arrays_without_encoding():
  coder = exchange.ArraysCoder()
  thing = _thing(3)
  assert coder.estimate_size(thing) == (thing.values.nbytes + thing.mask.nbytes + 16)
  _same(thing, coder.decode(coder.encode(thing)))
