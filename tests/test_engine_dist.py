"""Two-process DDP run of train.main on CPU (gloo), as torchrun would launch it."""

import json
import multiprocessing
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world_size, port, data_root, out, result_dir):
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    import train
    from engine import dist, utils
    from engine.api import DATASET_REGISTRY, TRAINER_REGISTRY
    from test_engine_train import EngineTestLinearProbe, EngineTestTinyColors, _argv

    DATASET_REGISTRY.register(EngineTestTinyColors)
    TRAINER_REGISTRY.register(EngineTestLinearProbe)
    utils.collect_env_info = lambda: "env info (stubbed in tests)"
    trainer = train.main(_argv(data_root, out))
    info = {
        "records": EngineTestLinearProbe.records,
        "n_test_batches": len(trainer.test_loader),
        "ddp": type(trainer.model).__name__,
        "train_sampler": type(trainer.train_loader_x.sampler).__name__,
        "dist_after": dist.is_dist(),
    }
    with open(os.path.join(result_dir, f"rank{rank}.json"), "w") as f:
        json.dump(info, f)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not available")
def test_two_process_ddp_training_and_distributed_evaluation(tmp_path):
    from test_engine_train import _make_images

    _make_images(tmp_path / "data")
    out, results = tmp_path / "out", tmp_path / "results"
    results.mkdir()
    # forkserver: the server imports torch/train once and forks both ranks from a clean process
    # (no OpenMP state inherited from this test process), which halves the start-up cost of spawn.
    multiprocessing.set_forkserver_preload(["torch", "torchvision", "train", "datasets", "test_engine_train"])
    mp.start_processes(
        _worker,
        args=(2, _free_port(), str(tmp_path / "data"), str(out), str(results)),
        nprocs=2,
        join=True,
        start_method="forkserver",
    )
    r0, r1 = (json.loads((results / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["ddp"] == r1["ddp"] == "DistributedDataParallel"
    assert r0["train_sampler"] == "DistributedSampler"
    assert r0["n_test_batches"] == r1["n_test_batches"] == 2  # 12 test images, 6 per rank, batch 5
    assert not r0["dist_after"] and not r1["dist_after"]  # process group destroyed at exit
    # both ranks report the metric of the whole test set (gathered), and agree
    assert r0["records"][-1]["accuracy"] == r1["records"][-1]["accuracy"]
    log = (out / "log.txt").read_text()
    assert "* total: 12" in log.splitlines() and "Distributed run: rank 0 of 2" in log
    assert not [f for f in os.listdir(out) if f.startswith("log.txt-")]  # rank 1 wrote no log file
    assert sorted(os.listdir(out / "linear_probe")) == ["checkpoint", "model.pth.tar-2"]
