"""Windows <-> patch tokens, shared by the model (jax) and the masks (numpy).

A window is [T, F] with F = 26 features. The model pads the features to
PADDED_FEATURES (2 zero rows before, 2 after, as LSM does) so that 5-feature
patches tile them, and cuts [T, 30] into (T / ph) x (30 / pw) tokens, time-major:
token index = time_patch * feature_patches + feature_patch.

The functions use only array methods and `_xp(x)`, so the same code serves numpy
arrays (masking, evaluation) and jax arrays (inside jit).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from schemas.constants import FEATURE_PAD_AFTER, FEATURE_PAD_BEFORE, NUM_FEATURES


def _xp(x):
  if isinstance(x, np.ndarray) or np.isscalar(x):
    return np
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  return jnp


def padded_features(num_features: int = NUM_FEATURES) -> int:
  return num_features + FEATURE_PAD_BEFORE + FEATURE_PAD_AFTER


def grid(shape: Sequence[int], patch: Sequence[int]) -> tuple[int, int]:
  """(time patches, feature patches) of a [T, F] window; refuses shapes that do not tile."""
  t, f = shape[-2], padded_features(shape[-1])
  ph, pw = patch
  if t % ph or f % pw:
    raise ValueError(f"patch {tuple(patch)} does not tile a [{t}, {f}] padded window "
                     f"({shape[-2]} minutes x {shape[-1]} features padded to {f})")
  return t // ph, f // pw


def pad(x):
  """[..., T, F] -> [..., T, F + 4], zeros (or False) in the padded feature rows."""
  xp = _xp(x)
  widths = [(0, 0)] * (x.ndim - 1) + [(FEATURE_PAD_BEFORE, FEATURE_PAD_AFTER)]
  return xp.pad(x, widths)


def unpad(x):
  return x[..., FEATURE_PAD_BEFORE:x.shape[-1] - FEATURE_PAD_AFTER]


def patchify(x, patch: Sequence[int]):
  """[..., T, Fp] (already padded) -> [..., N, ph * pw] tokens, time-major."""
  ph, pw = patch
  *lead, t, f = x.shape
  x = x.reshape(*lead, t // ph, ph, f // pw, pw)
  n = len(lead)
  x = x.transpose(*range(n), n, n + 2, n + 1, n + 3)
  return x.reshape(*lead, (t // ph) * (f // pw), ph * pw)


def unpatchify(tokens, patch: Sequence[int], shape: Sequence[int]):
  """Inverse of `patchify`: [..., N, ph * pw] -> [..., T, Fp] for padded shape (T, Fp)."""
  ph, pw = patch
  t, f = shape
  *lead, _, _ = tokens.shape
  x = tokens.reshape(*lead, t // ph, f // pw, ph, pw)
  n = len(lead)
  x = x.transpose(*range(n), n, n + 2, n + 1, n + 3)
  return x.reshape(*lead, t, f)


def token_any(mask, patch: Sequence[int]):
  """[..., T, F] bool -> [..., N] bool: does any position of the token hold True."""
  return patchify(pad(mask), patch).any(axis=-1)


def expand_tokens(token_mask, patch: Sequence[int], shape: Sequence[int]):
  """[..., N] bool per token -> [..., T, F] bool per position (unpadded F)."""
  ph, pw = patch
  t, f = shape[-2], padded_features(shape[-1])
  xp = _xp(token_mask)
  tokens = xp.broadcast_to(token_mask[..., None], (*token_mask.shape, ph * pw))
  return unpad(unpatchify(tokens, patch, (t, f)))
