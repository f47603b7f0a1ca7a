"""Struct-of-arrays storage of a tracker's live tracks (one row per track).

Keeping every track's Kalman state in one (N, 8) / (N, 8, 8) pair of arrays lets the tracker
predict, gate and correct all tracks with a few numpy calls instead of a Python loop per track.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

TENTATIVE = 0
TRACKED = 1
LOST = 2

UNASSIGNED_ID = -1


@dataclass(slots=True)
class TrackTable:
    """Live tracks: Kalman state, identity, life-cycle state and class votes, row-aligned."""

    mean: NDArray[np.float64]  # (N, 8)
    cov: NDArray[np.float64]  # (N, 8, 8)
    track_id: NDArray[np.int64]  # UNASSIGNED_ID while tentative
    state: NDArray[np.int8]  # TENTATIVE / TRACKED / LOST
    kind: NDArray[np.int8]  # ObjectKind, fixed for the track's life
    hits: NDArray[np.int32]  # matched detections so far
    last_pts: NDArray[np.float64]  # pts of the last match
    score: NDArray[np.float32]  # confidence of the last match
    peak: NDArray[np.float32]  # highest confidence of its matches
    matched: NDArray[np.bool_]  # matched in the current frame
    votes: NDArray[np.float32]  # (N, C) score-weighted votes per model class

    @classmethod
    def empty(cls) -> TrackTable:
        return cls(
            mean=np.zeros((0, 8)),
            cov=np.zeros((0, 8, 8)),
            track_id=np.zeros(0, np.int64),
            state=np.zeros(0, np.int8),
            kind=np.zeros(0, np.int8),
            hits=np.zeros(0, np.int32),
            last_pts=np.zeros(0, np.float64),
            score=np.zeros(0, np.float32),
            peak=np.zeros(0, np.float32),
            matched=np.zeros(0, np.bool_),
            votes=np.zeros((0, 1), np.float32),
        )

    def __len__(self) -> int:
        return len(self.mean)

    def keep(self, mask: NDArray[np.bool_]) -> None:
        """Keep only the rows where ``mask`` is True."""
        self.mean = self.mean[mask]
        self.cov = self.cov[mask]
        self.track_id = self.track_id[mask]
        self.state = self.state[mask]
        self.kind = self.kind[mask]
        self.hits = self.hits[mask]
        self.last_pts = self.last_pts[mask]
        self.score = self.score[mask]
        self.peak = self.peak[mask]
        self.matched = self.matched[mask]
        self.votes = self.votes[mask]

    def append(
        self,
        mean: NDArray[np.float64],
        cov: NDArray[np.float64],
        kind: NDArray[np.int8],
        score: NDArray[np.float32],
        pts: float,
    ) -> None:
        """Add tentative tracks matched (hit once) at ``pts``."""
        n = len(mean)
        self.mean = np.concatenate([self.mean, mean])
        self.cov = np.concatenate([self.cov, cov])
        self.track_id = np.concatenate([self.track_id, np.full(n, UNASSIGNED_ID, np.int64)])
        self.state = np.concatenate([self.state, np.full(n, TENTATIVE, np.int8)])
        self.kind = np.concatenate([self.kind, kind.astype(np.int8)])
        self.hits = np.concatenate([self.hits, np.ones(n, np.int32)])
        self.last_pts = np.concatenate([self.last_pts, np.full(n, pts)])
        self.score = np.concatenate([self.score, score.astype(np.float32)])
        self.peak = np.concatenate([self.peak, score.astype(np.float32)])
        self.matched = np.concatenate([self.matched, np.ones(n, np.bool_)])
        self.votes = np.concatenate([self.votes, np.zeros((n, self.votes.shape[1]), np.float32)])

    def add_votes(
        self, rows: NDArray[np.intp], class_id: NDArray[np.int64], score: NDArray[np.float32]
    ) -> None:
        """Add each detection's score to its class's vote on its row."""
        if len(rows) == 0:
            return
        if int(class_id.min()) < 0:
            raise ValueError(f"negative class id {int(class_id.min())} in detections")
        width = int(class_id.max()) + 1
        if width > self.votes.shape[1]:
            grown = np.zeros((len(self.votes), width), np.float32)
            grown[:, : self.votes.shape[1]] = self.votes
            self.votes = grown
        np.add.at(self.votes, (rows, class_id), score.astype(np.float32))

    def class_ids(self, rows: NDArray[np.intp]) -> NDArray[np.int64]:
        """Majority (score-weighted) class of each row."""
        best: NDArray[np.int64] = np.argmax(self.votes[rows], axis=1).astype(np.int64)
        return best
