"""Build everything the proving ground needs: the target dataset and the two pre-trained CLIPs.

:func:`build` renders the target-domain dataset (CoOp layout) and pre-trains the teacher and the
student CLIP on the source domain, two processes side by side with one thread each (faster on
2 cores than one two-thread job), then reports both models' zero-shot accuracy on the source and the
target domain (64-way, all classes). Results are cached (see :mod:`proving_ground.cache`): a second
call with the same configuration only reads the cache.

Presets (:func:`preset`): ``default`` (the demo: 8 colours x 8 shapes, 32 px), ``reduced`` (the
end-to-end test: the default pair scaled down to 4 x 4 classes at 16 px, about 1.4 minutes of
pre-training) and ``tiny`` (unit tests: seconds).
"""
from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing as mp
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

import open_clip
import torch

from . import world as W
from .cache import (
    PathLike,
    atomic_torch_save,
    atomic_write_json,
    cache_root,
    model_dir,
    model_key,
    read_json,
)
from .dataset import DatasetConfig, default_data_root, write_dataset
from .pretrain import PRETRAIN_VERSION, ModelConfig, TrainConfig, eval_sets, pretrain, zero_shot

logger = logging.getLogger(__name__)

STATS_FILE = "pretrain.json"


@dataclass(frozen=True)
class BuildConfig:
    """World, dataset split sizes, and the two models with their pre-training schedules."""

    world: W.WorldConfig
    data: DatasetConfig
    teacher: ModelConfig
    teacher_train: TrainConfig
    student: ModelConfig
    student_train: TrainConfig
    source_eval_per_class: int = 32  # size of the fixed source-domain zero-shot set

    def to_dict(self) -> Dict[str, Any]:
        return {
            "world": self.world.to_dict(),
            "data": self.data.to_dict(),
            "teacher": self.teacher.to_dict(),
            "teacher_train": self.teacher_train.to_dict(),
            "student": self.student.to_dict(),
            "student_train": self.student_train.to_dict(),
            "source_eval_per_class": self.source_eval_per_class,
        }


def preset(name: str, seed: int = 0) -> BuildConfig:
    """Named configurations: ``default``, ``reduced`` or ``tiny`` (see the module docstring)."""
    if name == "default":
        # Both models see the same data stream for the same number of steps, side by side. In this
        # budget a wider vision tower learns *slower* per second (192x4 at lr 6e-4: 70% source
        # zero-shot after 1000 steps; 128x4 at lr 1e-3: 89% after 1800), so the teacher is the deeper
        # model with the wider text tower. With 900 student steps the student's frozen features were
        # too poor for distillation (README, calibration notes); 1400 steps give paper-like ratios.
        world = W.WorldConfig(seed=seed)
        return BuildConfig(
            world=world,
            data=DatasetConfig(train_per_class=80, val_per_class=20, test_per_class=40),
            teacher=ModelConfig("pg_teacher", embed_dim=128, vision_width=128, vision_layers=4,
                                text_width=128, text_layers=2),
            teacher_train=TrainConfig(steps=1400, batch_size=128, lr=1e-3, seed=seed),
            student=ModelConfig("pg_student", embed_dim=128, vision_width=128, vision_layers=3,
                                text_width=64, text_layers=2),
            student_train=TrainConfig(steps=1400, batch_size=128, lr=1e-3, seed=seed),
        )
    if name == "reduced":
        # The default world's pair, scaled down: the same architectures (teacher one vision block deeper and
        # with the wider text tower), both trained the same number of steps on the same stream, 4 x 4 classes.
        # 16 px with 8 px patches (4 patch tokens): at 32 px the 16-class models left the colour-only plateau
        # late and seed-dependently in this budget; at 16 px they learn shape. An earlier pair that made
        # the gap by training an identical-vision student fewer steps (1000 vs 1600) gave it features too
        # poor to distil into (README, "The reduced preset"). 320 unlabeled images per class.
        world = W.WorldConfig(seed=seed, image_size=16, colours=("red", "green", "blue", "yellow"),
                              shapes=("circle", "square", "triangle", "cross"))
        return BuildConfig(
            world=world,
            data=DatasetConfig(train_per_class=320, val_per_class=4, test_per_class=40),
            teacher=ModelConfig("pg_teacher", embed_dim=128, vision_width=128, vision_layers=4,
                                text_width=128, text_layers=2, image_size=16, patch_size=8),
            teacher_train=TrainConfig(steps=1200, batch_size=64, lr=1e-3, seed=seed),
            student=ModelConfig("pg_student", embed_dim=128, vision_width=128, vision_layers=3,
                                text_width=64, text_layers=2, image_size=16, patch_size=8),
            student_train=TrainConfig(steps=1200, batch_size=64, lr=1e-3, seed=seed),
            source_eval_per_class=16,
        )
    if name == "tiny":
        world = W.WorldConfig(seed=seed, image_size=16, colours=("red", "green", "blue"),
                              shapes=("circle", "square", "triangle"))
        return BuildConfig(
            world=world,
            data=DatasetConfig(train_per_class=3, val_per_class=1, test_per_class=2),
            teacher=ModelConfig("pg_teacher", embed_dim=64, vision_width=64, vision_layers=1,
                                text_width=64, text_layers=1, image_size=16, patch_size=8),
            teacher_train=TrainConfig(steps=4, batch_size=16, seed=seed),
            student=ModelConfig("pg_student", embed_dim=64, vision_width=64, vision_layers=1,
                                text_width=64, text_layers=1, image_size=16, patch_size=8),
            student_train=TrainConfig(steps=3, batch_size=16, seed=seed),
            source_eval_per_class=2,
        )
    raise ValueError(f"unknown proving-ground preset {name!r}: expected 'default', 'reduced' or 'tiny'")


@dataclass
class ModelArtifact:
    """A cached pre-trained model: weights, open_clip config, and its pretrain.json contents."""

    name: str
    key: str
    weights: Path  # OpenAI-format state dict: clip.load(str(weights))
    config: Path  # open_clip model config JSON (registered with open_clip.add_model_config)
    stats: Dict[str, Any] = field(default_factory=dict)
    cached: bool = False


@dataclass
class BuildResult:
    data_root: Path  # DATASET.ROOT / --root
    dataset_dir: Path
    teacher: ModelArtifact
    student: ModelArtifact
    seconds: Dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        def art(a: ModelArtifact) -> Dict[str, Any]:
            return {"name": a.name, "key": a.key, "weights": str(a.weights), "config": str(a.config),
                    "cached": a.cached, "zero_shot": a.stats.get("zero_shot", {}),
                    "train_seconds": a.stats.get("train_seconds"), "train_cpu_seconds": a.stats.get("train_cpu_seconds")}
        return {"data_root": str(self.data_root), "dataset_dir": str(self.dataset_dir),
                "teacher": art(self.teacher), "student": art(self.student), "seconds": self.seconds}


def _artifact(world: W.WorldConfig, model: ModelConfig, train: TrainConfig, root: Optional[PathLike]) -> ModelArtifact:
    key = model_key(world, model.to_dict(), train.to_dict(), PRETRAIN_VERSION)
    d = model_dir(key, root)
    return ModelArtifact(model.name, key, d / f"{model.name}.pt", d / f"{model.name}.json")


def _is_cached(art: ModelArtifact) -> bool:
    stats_path = art.weights.parent / STATS_FILE
    return stats_path.is_file() and art.weights.is_file() and art.config.is_file()


def train_and_save(
    world_d: Dict[str, Any],
    model_d: Dict[str, Any],
    train_d: Dict[str, Any],
    weights: str,
    config: str,
    source_eval_per_class: int,
    target_test_per_class: int,
    threads: int = 1,
    log_every: int = 100,
) -> Dict[str, Any]:
    """Pre-train one model, save it (weights, config, then pretrain.json) and evaluate zero-shot.

    Runs in a worker process (arguments are plain dicts); returns the stats written to pretrain.json.
    """
    if threads > 0:
        torch.set_num_threads(threads)
    world = W.WorldConfig.from_dict(world_d)
    model_cfg = ModelConfig(**model_d)
    train_cfg = TrainConfig.from_dict(train_d)
    cpu0 = time.process_time()

    def on_step(step: int, loss: float, seconds: float) -> None:
        if log_every and (step % log_every == 0 or step == train_cfg.steps - 1):
            logger.info("[%s] step %d/%d loss %.3f (%.0f s)", model_cfg.name, step + 1, train_cfg.steps, loss, seconds)

    model, stats = pretrain(world, model_cfg, train_cfg, on_step)
    stats["train_cpu_seconds"] = round(time.process_time() - cpu0, 2)
    t0 = time.perf_counter()
    sets = eval_sets(world, source_eval_per_class, target_test_per_class)
    stats["zero_shot"] = {dom: zero_shot(model, world, imgs, labs, model_cfg.context_length)
                          for dom, (imgs, labs) in sets.items()}
    stats["eval_seconds"] = round(time.perf_counter() - t0, 2)
    stats.update({"world": world.to_dict(), "model": model_cfg.to_dict(), "train": train_cfg.to_dict(),
                  "pretrain_version": PRETRAIN_VERSION, "torch": torch.__version__,
                  "open_clip": open_clip.__version__})
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    atomic_torch_save(state, weights)
    atomic_write_json(config, model_cfg.open_clip_config())
    atomic_write_json(Path(weights).parent / STATS_FILE, stats)  # last: marks the entry complete
    logger.info("[%s] zero-shot source %.1f%% target %.1f%% -> %s", model_cfg.name,
                stats["zero_shot"]["source"]["accuracy"], stats["zero_shot"]["target"]["accuracy"], weights)
    return stats


def _worker_init(level: int) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")


def register_open_clip_configs(*configs: PathLike) -> None:
    """Register model config JSON files with open_clip (model name = file stem)."""
    for path in configs:
        open_clip.add_model_config(str(path))


def build(
    cfg: BuildConfig,
    root: Optional[PathLike] = None,
    data_root: Optional[PathLike] = None,
    workers: int = 2,
    force: bool = False,
    log_every: int = 100,
) -> BuildResult:
    """Generate the dataset and pre-train (or reuse) both models. See the module docstring.

    Args:
        cfg: what to build (:func:`preset`).
        root: cache root (default ``$PROMPTKD_PG_DIR`` or ``./output/proving_ground``).
        data_root: where to write ``proving_ground/`` (default ``<root>/data/<digest>``).
        workers: 2 = teacher and student in two single-thread processes side by side; 1 = one
            process after the other; 0 = in this process (tests).
        force: rebuild even when cached.
    """
    t_start = time.perf_counter()
    data_root = Path(data_root) if data_root is not None else default_data_root(cfg.world, cfg.data, root)
    seconds: Dict[str, float] = {}
    t0 = time.perf_counter()
    dataset_dir = write_dataset(cfg.world, cfg.data, data_root, overwrite=force)
    seconds["dataset"] = round(time.perf_counter() - t0, 2)

    arts = [_artifact(cfg.world, cfg.teacher, cfg.teacher_train, root),
            _artifact(cfg.world, cfg.student, cfg.student_train, root)]
    if arts[0].weights == arts[1].weights:
        raise ValueError("teacher and student configs are identical (same name and key): give them different names")
    jobs = []
    for art, mcfg, tcfg in ((arts[0], cfg.teacher, cfg.teacher_train), (arts[1], cfg.student, cfg.student_train)):
        if _is_cached(art) and not force:
            art.stats = read_json(art.weights.parent / STATS_FILE, f"pre-training stats of {art.name}")
            art.cached = True
            logger.info("[%s] cached at %s", art.name, art.weights)
        else:
            args = (cfg.world.to_dict(), mcfg.to_dict(), tcfg.to_dict(), str(art.weights), str(art.config),
                    cfg.source_eval_per_class, cfg.data.test_per_class)
            jobs.append((art, args))

    t0 = time.perf_counter()
    if jobs and workers > 0:
        ctx = mp.get_context("spawn")
        level = logging.getLogger().getEffectiveLevel()
        with cf.ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx,
                                    initializer=_worker_init, initargs=(level,)) as pool:
            futures = [(art, pool.submit(train_and_save, *args, 1, log_every)) for art, args in jobs]
            for art, fut in futures:
                art.stats = fut.result()
    else:
        for art, args in jobs:
            art.stats = train_and_save(*args, threads=0, log_every=log_every)
    seconds["pretrain"] = round(time.perf_counter() - t0, 2)
    seconds["total"] = round(time.perf_counter() - t_start, 2)
    register_open_clip_configs(arts[0].config, arts[1].config)
    result = BuildResult(Path(data_root), dataset_dir, arts[0], arts[1], seconds)
    atomic_write_json(cache_root(root) / "last_build.json", {"config": cfg.to_dict(), **result.to_dict()})
    return result


def load_model(weights: PathLike) -> torch.nn.Module:
    """Load a cached model with plain open_clip (config JSON next to the weights); eval mode.

    The project's ``clip.load(str(weights))`` loads the same file like OpenAI weights; this helper
    only exists so the proving ground needs nothing but open_clip.
    """
    weights = Path(weights)
    config = read_json(weights.with_suffix(".json"), f"open_clip model config of {weights.name}")
    model = open_clip.model.CLIP(embed_dim=config["embed_dim"], vision_cfg=config["vision_cfg"],
                                 text_cfg=config["text_cfg"], quick_gelu=config.get("quick_gelu", False))
    state = torch.load(weights, map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{weights}: state dict does not match its config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.eval()
