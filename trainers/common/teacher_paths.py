"""Where a teacher checkpoint is: ``TRAINER.PROMPTKD.TEACHER_CKPT`` -> one checkpoint file.

``TEACHER_CKPT`` is a file or a folder, with the placeholders ``{dataset}`` (``DATASET.NAME``) and
``{root}`` (``DATASET.ROOT``). The default, :data:`DEFAULT_TEACHER_CKPT`, is the folder of the released
base-to-novel teachers, ``teacher_model/<DATASET.NAME>/VLPromptLearner`` (relative to the working
directory, as in the reference), which holds ``model-best.pth.tar``; the cross-dataset trainer yaml
points at the released ImageNet teacher ``teacher_model/ImageNet-xd/VLPromptLearner_large``.

A folder resolves to (searched in its checkpoint sub-folders ``VLPromptLearner``,
``VLPromptLearner_large``, ``MultiModalPromptLearner`` first, then in the folder itself):

1. ``model-best.pth.tar`` (the released teachers; a ``best_val`` / ``best_test_reference`` run's pick),
2. the file named by the folder's Dassl ``checkpoint`` pointer (the last file the run saved),
3. the highest-epoch ``model.pth.tar-N`` (a ``last_step`` run).

The released README names two folders ``FGVCaircraft`` and ``StandfordCars``, not the registry names
``FGVCAircraft`` / ``StanfordCars``: when the ``{dataset}`` path does not exist, those spellings are
tried too. When nothing is found, :class:`TeacherCheckpointNotFoundError` lists every path tried and
where released teachers go.
"""

from __future__ import annotations

import logging
import os
from typing import Dict, List, Tuple

from engine.checkpoint import numbered_checkpoints, read_checkpoint_pointer

logger = logging.getLogger(__name__)

DEFAULT_TEACHER_CKPT = "teacher_model/{dataset}/VLPromptLearner"
#: DATASET.NAME -> the folder names the released teachers' README uses instead
RELEASED_FOLDER_SPELLINGS: Dict[str, str] = {"FGVCAircraft": "FGVCaircraft", "StanfordCars": "StandfordCars"}
_SUBFOLDERS = ("VLPromptLearner", "VLPromptLearner_large", "MultiModalPromptLearner")
_WHERE = (
    "Released PromptKD teachers go in teacher_model/<DATASET.NAME>/VLPromptLearner/model-best.pth.tar under the "
    "working directory (e.g. teacher_model/DescribableTextures/VLPromptLearner/model-best.pth.tar; cross-dataset: "
    "teacher_model/ImageNet-xd/VLPromptLearner_large/model.pth.tar-20). Or train a teacher with the "
    "PromptSRCTeacher trainer (scripts/promptsrc/train_teacher.sh) and set TRAINER.PROMPTKD.TEACHER_CKPT to its run "
    "folder or file (placeholders {dataset}, {root}); or use TRAINER.PROMPTKD.TEACHER_TYPE zeroshot."
)


class TeacherCheckpointNotFoundError(FileNotFoundError):
    """No teacher checkpoint at ``TEACHER_CKPT``; the message lists what was tried."""


def _fill(template: str, dataset: str, root: str) -> str:
    try:
        path = template.format(dataset=dataset, root=root)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"TRAINER.PROMPTKD.TEACHER_CKPT {template!r}: only the placeholders {{dataset}} and {{root}} are "
            f"supported ({exc})"
        ) from exc
    return os.path.expanduser(path)


def resolve_teacher_path(template: str, dataset: str, root: str) -> str:
    """Fill the ``{dataset}`` / ``{root}`` placeholders of ``TRAINER.PROMPTKD.TEACHER_CKPT``.

    If the path does not exist and the template uses ``{dataset}``, the released folder spellings of
    :data:`RELEASED_FOLDER_SPELLINGS` are tried; the first existing path is returned, else the
    registry-name path (whose absence :func:`find_teacher_checkpoint` reports).
    """
    path = _fill(template, dataset, root)
    alt = _fill(template, RELEASED_FOLDER_SPELLINGS.get(dataset, dataset), root)
    if not os.path.exists(path) and alt != path and os.path.exists(alt):
        logger.info("Teacher: %s does not exist; using the released folder spelling %s", path, alt)
        return alt
    return path


def _alternatives(path: str) -> List[str]:
    """The released-spelling variants of ``path`` that :func:`resolve_teacher_path` would have tried."""
    parts = path.split(os.sep)
    if not set(parts) & set(RELEASED_FOLDER_SPELLINGS):
        return []
    return [os.sep.join(RELEASED_FOLDER_SPELLINGS.get(p, p) for p in parts)]


def _pointer_target(folder: str) -> Tuple[str, str]:
    """``(file named by folder/checkpoint, note)``; the file is "" when the pointer is absent or unusable."""
    pointer = os.path.join(folder, "checkpoint")
    try:
        name = read_checkpoint_pointer(folder)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return "", f"{pointer} (unreadable: {exc})"
    if name is None:
        return "", f"{pointer} (absent)"
    if os.path.basename(name) != name or name in (".", ".."):
        return "", f"{pointer} (does not name a file in its folder: {name!r})"
    if not os.path.isfile(os.path.join(folder, name)):
        return "", f"{pointer} (names {name}, which does not exist)"
    return os.path.join(folder, name), pointer


def find_teacher_checkpoint(path: str) -> str:
    """A teacher checkpoint file from a file path or a folder (module docstring for the search order).

    The choice is logged; :class:`TeacherCheckpointNotFoundError` lists every path tried otherwise.
    """
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        tried = [path] + _alternatives(path)
        raise TeacherCheckpointNotFoundError(
            f"Teacher checkpoint not found: {path}. Tried: {'; '.join(tried)} (none exists). {_WHERE}"
        )
    folders = [os.path.join(path, sub) for sub in _SUBFOLDERS if os.path.isdir(os.path.join(path, sub))] + [path]
    tried: List[str] = []
    for folder in folders:
        best = os.path.join(folder, "model-best.pth.tar")
        if os.path.isfile(best):
            chosen, how = best, "model-best.pth.tar"
            break
        tried.append(best)
        target, note = _pointer_target(folder)
        if target:
            chosen, how = target, f"the checkpoint pointer {note}"
            break
        tried.append(note)
        numbered = numbered_checkpoints(folder)
        if numbered:
            chosen, how = numbered[-1][1], "the highest epoch"
            break
        tried.append(os.path.join(folder, "model.pth.tar-<N>"))
    else:
        raise TeacherCheckpointNotFoundError(
            f"No teacher checkpoint in {path}. Tried: {'; '.join(tried)}. {_WHERE}"
        )
    logger.info("Teacher checkpoint: %s (%s)", chosen, how)
    return chosen
