"""Teacher-cache recording under DDP (``torchrun``, 2 CPU processes, gloo) equals a single-process recording.

Deterministic transforms (normalize only), so the teacher's logits depend on the image alone: a recording
by 2 processes x batch 4 and one by 1 process x batch 8 must hold the same records for every
(epoch, image), including the images an epoch did not draw (drop_last remainder: 4 of 20 per epoch, split
over the ranks and computed with a loader on each). Stated tolerance: 2e-2 on the fp16 logits (the teacher
runs on batches of another composition, so the fp32 logits differ in the last bits before fp16 rounding,
whose step is 7.8e-3 at the logit magnitudes here, |logit| < 16).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import train
from tests.helpers.fake_roots import make_root
from tests.helpers.tiny_env import save_tiny_clips, start_torchrun, tiny_student_args

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOGIT_ATOL = 2e-2

pytestmark = [pytest.mark.usefixtures("run_hygiene", "one_thread"), pytest.mark.slow]


def _args(root, student, teacher, out, batch):
    return tiny_student_args(root, student, teacher, out, batch, 2, "TRAINER.PROMPTKD.TEACHER_CACHE.MODE", "record",
                             "TEST.NO_TEST", "True")


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not available")
def test_ddp_recording_equals_single_process(tmp_path):
    root = make_root("DescribableTextures", tmp_path, n_classes=4, per_class=10)  # 20 training images
    clips = save_tiny_clips(tmp_path)
    student, teacher = clips["tiny-vit-student"], clips["tiny-vit-teacher"]

    ddp_out = tmp_path / "ddp"
    proc = start_torchrun(_args(root, student, teacher, ddp_out, 4), REPO)
    single_out = tmp_path / "single"
    train.main(_args(root, student, teacher, single_out, 8))
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log[-5000:]

    single, ddp = single_out / "teacher_cache", ddp_out / "teacher_cache"
    for name in ("filled.npy", "aug.npy", "logits.npy"):
        a, b = np.load(single / name), np.load(ddp / name)
        assert a.shape == b.shape, name
        if name == "logits.npy":
            assert np.abs(a.astype(np.float32)).max() > 0.1  # real logits, not zeros
            assert np.allclose(a.astype(np.float32), b.astype(np.float32), atol=LOGIT_ATOL, rtol=0), name
        else:
            assert np.array_equal(a, b), name
    assert np.load(ddp / "filled.npy").all()
    text = (ddp_out / "log.txt").read_text()
    # 2 x 4 x 2 = 16 images drawn per epoch; the other 4 split over the 2 ranks
    assert text.count("recording 4 image(s) not drawn in epoch") == 2 and "(2 on this rank)" in text
