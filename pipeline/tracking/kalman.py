"""Batched constant-velocity Kalman filter for boxes, with a real time step.

State per box: ``[cx, cy, w, h, vx, vy, vw, vh]`` (centre, size and their rates, pixels and pixels
per SECOND); measurement ``[cx, cy, w, h]``. All functions take a batch: means (N, 8) and
covariances (N, 8, 8), so one tracker step costs a handful of numpy calls however many tracks.

Noise follows the size-proportional scheme of SORT/DeepSORT/ByteTrack (position std = 1/20 of
the box size, velocity std = 1/160 of the box size per reference frame), re-expressed in
continuous time: the per-frame values are defined at ``REFERENCE_DT`` (1/30 s, the frame period
of the MOT17 footage those weights were tuned on) and the process noise grows linearly with the
real time step ``dt`` (a random walk of the velocity), so one 0.2 s step at 5 fps adds as much
uncertainty as six 1/30 s steps at 30 fps.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]

REFERENCE_DT = 1.0 / 30.0
STD_POSITION = 1.0 / 20.0
STD_VELOCITY = 1.0 / 160.0
MIN_SIZE = 1.0


def _size_scale(wh: F64) -> F64:
    """(N, 4) scale per coordinate: widths for x and w, heights for y and h."""
    w = np.maximum(wh[:, 0], MIN_SIZE)
    h = np.maximum(wh[:, 1], MIN_SIZE)
    return np.stack([w, h, w, h], axis=1)


def xyxy_to_measurement(xyxy: NDArray[np.floating]) -> F64:
    """(N, 4) xyxy boxes → (N, 4) ``[cx, cy, w, h]``."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    wh = b[:, 2:] - b[:, :2]
    return np.concatenate([b[:, :2] + wh / 2.0, wh], axis=1)


def state_to_xyxy(mean: F64) -> NDArray[np.float32]:
    """(N, 8) states → (N, 4) xyxy boxes (sizes clamped to at least one pixel)."""
    c = mean[:, :2]
    wh = np.maximum(mean[:, 2:4], MIN_SIZE)
    return np.concatenate([c - wh / 2.0, c + wh / 2.0], axis=1).astype(np.float32)


def initiate(measurement: F64) -> tuple[F64, F64]:
    """New states from (N, 4) measurements: zero velocity, wide velocity uncertainty."""
    n = len(measurement)
    mean = np.zeros((n, 8))
    mean[:, :4] = measurement
    scale = _size_scale(measurement[:, 2:4])
    std_pos = 2.0 * STD_POSITION * scale
    std_vel = 10.0 * STD_VELOCITY * scale / REFERENCE_DT
    var = np.concatenate([std_pos, std_vel], axis=1) ** 2
    cov = np.zeros((n, 8, 8))
    idx = np.arange(8)
    cov[:, idx, idx] = var
    return mean, cov


def predict(mean: F64, cov: F64, dt: F64) -> tuple[F64, F64]:
    """Advance states by ``dt`` seconds each ((N,) array; 0 leaves a state unchanged).

    ``x' = F x`` with ``F = [[I, dt·I], [0, I]]`` and ``P' = F P Fᵀ + Q(dt)``.
    """
    n = len(mean)
    if n == 0:
        return mean, cov
    dt = np.maximum(np.asarray(dt, dtype=np.float64).reshape(-1), 0.0)
    f = np.broadcast_to(np.eye(8), (n, 8, 8)).copy()
    idx = np.arange(4)
    f[:, idx, idx + 4] = dt[:, None]
    new_mean = np.einsum("nij,nj->ni", f, mean)
    scale = _size_scale(mean[:, 2:4])
    ratio = (dt / REFERENCE_DT)[:, None]
    var_pos = (STD_POSITION * scale) ** 2 * ratio
    var_vel = (STD_VELOCITY * scale / REFERENCE_DT) ** 2 * ratio
    q = np.zeros((n, 8, 8))
    diag = np.arange(8)
    q[:, diag, diag] = np.concatenate([var_pos, var_vel], axis=1)
    new_cov = f @ cov @ f.transpose(0, 2, 1) + q
    return new_mean, new_cov


def update(mean: F64, cov: F64, measurement: F64) -> tuple[F64, F64]:
    """Correct (N, 8) states with (N, 4) measurements ``[cx, cy, w, h]``."""
    n = len(mean)
    if n == 0:
        return mean, cov
    scale = _size_scale(mean[:, 2:4])
    r = np.zeros((n, 4, 4))
    d4 = np.arange(4)
    r[:, d4, d4] = (STD_POSITION * scale) ** 2
    projected_cov = cov[:, :4, :4] + r  # H P Hᵀ + R with H = [I 0]
    p_ht = cov[:, :, :4]  # P Hᵀ, (N, 8, 4)
    # K = P Hᵀ S⁻¹ ; S is symmetric, so solve S Kᵀ = (P Hᵀ)ᵀ.
    gain = np.linalg.solve(projected_cov, p_ht.transpose(0, 2, 1)).transpose(0, 2, 1)
    innovation = measurement - mean[:, :4]
    new_mean = mean + np.einsum("nij,nj->ni", gain, innovation)
    new_cov = cov - gain @ projected_cov @ gain.transpose(0, 2, 1)
    return new_mean, new_cov
