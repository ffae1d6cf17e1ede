"""The checkpoint concern of :class:`~lightning_expman.lightning.logger.ExpmanLogger`.

Every file a ModelCheckpoint saves is recorded as an artifact of its epoch (and of the run); a
file it deletes later (top-k rotation, a replaced best or last file) is reported to the trackers
with ``on_remove_artifact``, so the recorded checkpoints are exactly the files on disk; the final
best one is linked to the run's RESULTS when the fit ends. Checkpoints saved to fsspec URLs
(``memory://``, ``s3://``) are recorded with their URL.

State (reset per run by the logger): ``_ckpt_epochs`` (recorded path -> its epoch) and
``_ckpt_callbacks`` (the ModelCheckpoints seen saving).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from typing_extensions import override

from ..enums import Level

if TYPE_CHECKING:  # pragma: no cover
    import lightning.pytorch as pl

    from ..tracking.base import TrackerManager

__all__ = ["CheckpointRecords"]

log = logging.getLogger(__name__)


class CheckpointRecords:
    """Mixin of ExpmanLogger: checkpoints saved and deleted -> the run's artifacts."""

    manager: TrackerManager
    _run_open: bool
    _hooked: bool
    _epoch: int | None
    _fb_epoch: int | None
    _ckpt_epochs: dict[str, int | None]
    _ckpt_callbacks: list[Any]

    @override
    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        """Record each new checkpoint file as an artifact of its epoch (and of the run).

        Files rewritten under the same name (``last.ckpt``) are recorded once; files that top-k
        rotation deleted since are reported removed (:meth:`_reconcile_checkpoints`); the final
        best one is linked to RESULTS when the fit ends.
        """
        if not self._run_open:
            return
        # ModelCheckpoint deletes the file a new one replaces right *after* this call returns:
        # deletions are seen at the next save, at fit end, or at once through CheckpointCallback.
        self._reconcile_checkpoints()
        if checkpoint_callback not in self._ckpt_callbacks:
            self._ckpt_callbacks.append(checkpoint_callback)
        candidates = [
            getattr(checkpoint_callback, "_last_checkpoint_saved", None),
            checkpoint_callback.best_model_path,
            checkpoint_callback.last_model_path,
            *checkpoint_callback.best_k_models,
        ]
        epoch = self._epoch if self._hooked else self._fb_epoch
        for path in candidates:
            if not path or path in self._ckpt_epochs or not _is_file(path):
                continue
            self._ckpt_epochs[path] = epoch
            self.manager.on_checkpoint(
                None, path, _checkpoint_metrics(checkpoint_callback, path), epoch=epoch, best=False
            )

    def _reconcile_checkpoints(self) -> None:
        """Report every checkpoint recorded for the open run whose file is gone.

        Lightning's ModelCheckpoint has no public hook for the files it deletes (top-k rotation,
        a replaced best or last file), so the recorded paths are compared with the disk.
        """
        gone = [path for path in self._ckpt_epochs if not _is_file(path)]
        for path in gone:
            self._forget_checkpoint(path)

    def _forget_checkpoint(self, path: str) -> None:
        epoch = self._ckpt_epochs.pop(path)
        self.manager.on_remove_artifact(Level.TRIAL_RUN, path, "checkpoint", epoch=epoch)

    @rank_zero_only
    def checkpoint_removed(self, path: str | os.PathLike[str]) -> None:
        """A checkpoint callback deleted ``path``: drop it from the run's artifacts now.

        :class:`~lightning_expman.callbacks.CheckpointCallback` calls this from
        ``_remove_checkpoint``; for other ModelCheckpoints the logger notices at the next save
        or at fit end. A path that still exists (or was never recorded) is ignored.
        """
        path = os.fspath(path)
        if self._run_open and path in self._ckpt_epochs and not _is_file(path):
            self._forget_checkpoint(path)

    def _record_best_checkpoints(self, trainer: pl.Trainer | None) -> None:
        callbacks = list(self._ckpt_callbacks)
        if trainer is not None:
            callbacks += [cb for cb in trainer.checkpoint_callbacks if cb not in callbacks]
        for cb in callbacks:
            best = getattr(cb, "best_model_path", "")
            if best and _is_file(best):
                epoch = self._ckpt_epochs.get(best, self._epoch)
                self.manager.on_checkpoint(None, best, _checkpoint_metrics(cb, best), epoch=epoch, best=True)


def _is_file(path: str) -> bool:
    """Whether a checkpoint file exists: local paths, and fsspec URLs (``memory://``, ``s3://``...)
    through the file system Lightning itself saved them with."""
    if "://" not in path:
        return os.path.isfile(path)
    from lightning.fabric.utilities.cloud_io import get_filesystem

    try:
        return bool(get_filesystem(path).isfile(path))
    except Exception:  # an unreachable store: the checkpoint is not recorded, the fit goes on
        log.debug("ExpmanLogger: cannot check checkpoint %s", path, exc_info=True)
        return False


def _checkpoint_metrics(cb: ModelCheckpoint, path: str) -> dict[str, float] | None:
    score = cb.best_k_models.get(path)
    if cb.monitor and score is not None:
        return {cb.monitor: float(score)}
    return None
