"""Every protocol and ablation of the paper, and two ideas beyond it, measured on the proving ground.

    python -m proving_ground.experiments --seeds 1 2 3 --out output/results --doc docs/RESULTS.md

regenerates ``docs/RESULTS.md`` (and its plots in ``docs/results/``) from scratch: it builds (or reuses) the
default proving ground, renders the cross-dataset / domain-generalisation datasets
(:mod:`proving_ground.protocols`), runs every run below through ``train.main`` with the project's trainers and
the proving-ground configs (two single-thread workers, :func:`proving_ground.pipeline.run_all`), aggregates
them with ``tools.results_lib`` and writes the tables, the paper's claims and a verdict per claim
(:mod:`proving_ground.results_doc`). Finished runs are reused, so an interrupted command resumes.

Groups of runs, for every seed (the configuration is fixed here, before any result is seen):

``b2n`` (Table 1 analogue)
    the demo's six rows (:func:`proving_ground.pipeline.plan_runs`): zero-shot teacher and student, PromptSRC
    teacher (stage I, 16-shot base classes), CoOp and PromptSRC on the student, PromptKD on all unlabeled images.
``ablation`` (Tables 4-6, the inductive question, the two options beyond the paper)
    PromptKD students of the seed's stage-I teacher, in the *ablation setting*: half of the unlabeled images
    of every class (``DATASET.MAX_IMAGES_PER_CLASS``; the paper ablates on ImageNet with 64 of ~1,300 images
    per class), ONE option changed per row (:data:`ABLATION_ROWS`); plus the MaPLe teacher of Table 6
    (``configs/trainers/MaPLe/proving_ground.yaml``). The inductive student sees every unlabeled image of
    the BASE classes only (the same number of images as the ablation setting's transductive student).
``xd`` (Tables 2 and 9 analogues)
    on the source dataset: the PromptSRC teacher (16-shot, all source classes), CoOp and PromptSRC on the
    student, zero-shot rows; on every target: the zero-shot rows, the source-trained models evaluated as they
    are, and a PromptKD student distilled from the source teacher on the target's unlabeled training images
    (``configs/trainers/PromptKD/proving_ground_cross_datasets.yaml``, transductive as in the paper).
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from proving_ground import pipeline as P  # noqa: E402
from proving_ground import protocols  # noqa: E402
from proving_ground.build import BuildResult, build, preset  # noqa: E402
from proving_ground.cache import atomic_write_json, read_json  # noqa: E402
from proving_ground.world_config import WorldConfig  # noqa: E402

logger = logging.getLogger(__name__)

GROUPS = ("b2n", "ablation", "xd")
CONFIGS = {
    "teacher": "configs/trainers/PromptSRC/proving_ground_teacher.yaml",
    "promptsrc": "configs/trainers/PromptSRC/proving_ground.yaml",
    "coop": "configs/trainers/CoOp/proving_ground.yaml",
    "zeroshot": "configs/trainers/ZeroshotCLIP/proving_ground.yaml",
    "maple": "configs/trainers/MaPLe/proving_ground.yaml",
    "promptkd": "configs/trainers/PromptKD/proving_ground.yaml",
    "promptkd_xd": "configs/trainers/PromptKD/proving_ground_cross_datasets.yaml",
}
#: Fraction of the unlabeled training images per class in the ablation setting.
ABLATION_IMAGE_FRACTION = 0.5
TOPK = 5  # K of the top-K symmetric KL row
B2N_FEWSHOT = ["DATASET.NUM_SHOTS", str(P.NUM_SHOTS), "DATASET.SUBSAMPLE_CLASSES", "base",
               "DATASET.EVAL_PROTOCOL", "base2novel"]
XD_FEWSHOT = ["DATASET.NUM_SHOTS", str(P.NUM_SHOTS), "DATASET.SUBSAMPLE_CLASSES", "all",
              "DATASET.EVAL_PROTOCOL", "subsample"]
XD_EVAL = ["DATASET.SUBSAMPLE_CLASSES", "all", "DATASET.EVAL_PROTOCOL", "subsample"]
PK = "TRAINER.PROMPTKD."

#: Ablation rows: key -> (label, options added to the ablation setting). ``cap``: the ablation setting's image
#: cap applies; rows whose options need run-time paths are completed in :func:`plan_ablation`.
ABLATION_ROWS: Dict[str, tuple] = {
    "kd_reference": ("PromptKD (ablation setting)", [], True),
    "kd_feature_l1": ("feature L1", [PK + "LOSS", "feature_l1"], True),
    "kd_feature_mse": ("feature MSE", [PK + "LOSS", "feature_mse"], True),
    "kd_projector_only": ("projector only (no prompts)", [PK + "TRAIN_MODE", "projector_only"], True),
    "kd_full_finetune": ("full fine-tune (CLIP-KD style)", [PK + "TRAIN_MODE", "full_finetune"], True),
    # added after the first results (the row above diverged: every accuracy near chance); reported, in no verdict
    "kd_full_finetune_lr": ("full fine-tune, LR x 0.1 (diagnostic)", [PK + "TRAIN_MODE", "full_finetune",
                                                                     "OPTIM.LR", "0.002"], True),
    "kd_student_text": ("w/o shared class vectors (student's own text)", [PK + "CLASS_VECTORS_SOURCE", "student_text"],
                        True),
    "kd_teacher_zeroshot": ("student of the zero-shot teacher", [PK + "TEACHER_TYPE", "zeroshot"], True),
    "kd_teacher_maple": ("student of the MaPLe teacher", [PK + "TEACHER_TYPE", "maple"], True),
    "kd_inductive": ("inductive: base-class images only", ["DATASET.SUBSAMPLE_CLASSES", "base"], False),
    "kd_ensemble": ("ensemble: PromptSRC + zero-shot teacher (confidence)", [PK + "ENSEMBLE.TYPES", "['zeroshot']",
                                                                            PK + "ENSEMBLE.WEIGHTING", "confidence"], True),
    "kd_topk_skl": (f"top-K symmetric KL (K={TOPK})", [PK + "LOSS", "topk_skl", PK + "TOPK", str(TOPK)], True),
}
MAPLE_TEACHER = ("teacher_maple", "teacher MaPLe")
#: xd rows: key -> (label, trainer, config key, model)
XD_ROWS = {
    "teacher_zeroshot": ("teacher zero-shot", "ZeroshotCLIP", "zeroshot", "teacher"),
    "teacher_promptsrc": ("teacher PromptSRC", "PromptSRCTeacher", "teacher", "teacher"),
    "student_zeroshot": ("student zero-shot", "ZeroshotCLIP", "zeroshot", "student"),
    "student_coop": ("student CoOp", "CoOp", "coop", "student"),
    "student_promptsrc": ("student PromptSRC", "PromptSRC", "promptsrc", "student"),
    "student_promptkd": ("student PromptKD", "PromptKD", "promptkd_xd", "student"),
}


#: Diagnostics, added AFTER the first results (the cross-dataset / DG students fell below their zero-shot start),
#: reported beside the PromptKD row of every target and never used in a verdict: row suffix -> label.
#: "_scaled": KD_WEIGHT x (target classes / base-to-novel classes), the base-to-novel run's effective batch-mean KL
#: weight (the reference loss divides by B x C, so KD_WEIGHT 1000 weighs a 16-class target 4x as strongly).
#: "_steps": as many optimisation steps as the base-to-novel student (more epochs over the smaller target sets).
DIAGNOSTICS = {"_scaled": "student PromptKD, KD weight x C/C_b2n (diagnostic)",
               "_steps": "student PromptKD, base-to-novel's number of steps (diagnostic)"}
DIAGNOSTIC_LABELS = list(DIAGNOSTICS.values())


def _yaml_key(config: str, *path: str) -> Any:
    import yaml

    with open(REPO_ROOT / config, "r", encoding="utf-8") as f:
        node = yaml.safe_load(f) or {}
    for key in path:
        node = node[key]
    return node


def max_epoch(config: str) -> int:
    """OPTIM.MAX_EPOCH of a trainer yaml: the epoch whose checkpoint an evaluation run loads."""
    return int(_yaml_key(config, "OPTIM", "MAX_EPOCH"))


class Planner:
    """Builds the :class:`~proving_ground.pipeline.RunSpec` of every run (argv of ``train.py``)."""

    def __init__(self, res: BuildResult, roots: Dict[str, Path], out: Path, train_per_class: int,
                 world: Optional[WorldConfig] = None) -> None:
        self.res, self.roots, self.out, self.train_per_class = res, roots, out, train_per_class
        # class counts: the base-to-novel world's and every protocol dataset's (the diagnostic KD weight)
        self.world = world or preset("default").world
        self.classes = {d.name: d.world.num_classes for d in protocols.protocol_datasets(self.world)}
        self.size = P.input_size(res)
        self.models = {"teacher": (res.teacher.weights, P.model_shape(res.teacher)),
                       "student": (res.student.weights, P.model_shape(res.student))}
        self.cap = max(1, int(train_per_class * ABLATION_IMAGE_FRACTION))

    def spec(self, key: str, label: str, trainer: str, config: str, model: str, seed: int, root: Path,
             opts: Sequence[str], needs: Sequence[str] = (), rank: int = 5, model_dir: Optional[Path] = None,
             eval_only: bool = False) -> P.RunSpec:
        run_dir = self.out / key.split("/", 1)[0] / P.RUNS_DIR / key.split("/", 1)[1] / f"seed{seed}"
        argv = ["--root", P._rel(root), "--seed", str(seed), "--trainer", trainer,
                "--dataset-config-file", P._rel(REPO_ROOT / P.DATASET_CONFIG),
                "--config-file", P._rel(REPO_ROOT / CONFIGS[config]), "--output-dir", P._rel(run_dir)]
        if model_dir is not None:
            argv += ["--model-dir", P._rel(model_dir), "--load-epoch", str(max_epoch(CONFIGS[config]))]
        if eval_only or model_dir is not None:
            argv.append("--eval-only")
        argv += ["MODEL.BACKBONE.NAME", P._rel(self.models[model][0]), "INPUT.SIZE", f"({self.size}, {self.size})",
                 *opts]
        return P.RunSpec(key=f"{key}/seed{seed}", row=key, label=label, trainer=trainer, seed=seed,
                         out_dir=str(run_dir), argv=argv, needs=[f"{n}/seed{seed}" for n in needs], rank=rank)

    def prompt_opts(self, config: str, node: str, model: str) -> List[str]:
        return P._prompt_opts(REPO_ROOT / CONFIGS[config], node, self.models[model][1], text=node != "PROMPTKD")

    def maple_opts(self) -> List[str]:
        shape = self.models["teacher"][1]
        depth = min(9, shape["vision_layers"], shape["text_layers"])
        n_ctx = min(2, max(1, int(shape["patch_tokens"] * P.MAX_VISUAL_PROMPT_FRACTION)))
        return ["TRAINER.MAPLE.N_CTX", str(n_ctx), "TRAINER.MAPLE.PROMPT_DEPTH", str(depth)]

    def distill_opts(self, teacher_dir: Path, config: str = "promptkd") -> List[str]:
        return [PK + "TEACHER_NAME", P._rel(self.res.teacher.weights), PK + "TEACHER_CKPT", P._rel(teacher_dir),
                *self.prompt_opts(config, "PROMPTKD", "student")]

    # ------------------------------------------------------------------ groups
    def plan_b2n(self, seeds: Sequence[int]) -> List[P.RunSpec]:
        specs = P.plan_runs(self.res, seeds, self.out / "b2n")
        for s in specs:
            s.key, s.row, s.needs = f"b2n/{s.key}", f"b2n/{s.row}", [f"b2n/{n}" for n in s.needs]
            s.rank = P._PRIORITY[s.row.split("/", 1)[1]]
        return specs

    def plan_ablation(self, seed: int) -> List[P.RunSpec]:
        root = self.res.data_root
        teacher_dir = self.out / "b2n" / P.RUNS_DIR / "teacher_promptsrc" / f"seed{seed}"
        maple_key = f"ablation/{MAPLE_TEACHER[0]}"
        specs = [self.spec(maple_key, MAPLE_TEACHER[1], "MaPLe", "maple", "teacher", seed, root,
                           B2N_FEWSHOT + self.maple_opts(), rank=0)]
        maple_dir = Path(specs[0].out_dir)
        for row, (label, opts, capped) in ABLATION_ROWS.items():
            opts = list(opts) + (["DATASET.MAX_IMAGES_PER_CLASS", str(self.cap)] if capped else [])
            needs = ["b2n/teacher_promptsrc"]
            base = self.distill_opts(teacher_dir)
            if row == "kd_teacher_maple":
                base[base.index(PK + "TEACHER_CKPT") + 1] = P._rel(maple_dir)
                needs = [maple_key]
            if row == "kd_ensemble":
                opts += [PK + "ENSEMBLE.NAMES", f"['{P._rel(self.res.teacher.weights)}']",
                         PK + "ENSEMBLE.CKPTS", "['']", PK + "ENSEMBLE.CLASS_VECTORS", "['']"]
            specs.append(self.spec(f"ablation/{row}", label, "PromptKD", "promptkd", "student", seed, root,
                                   base + opts, needs=needs, rank=2))
        return specs

    def plan_xd(self, seed: int) -> List[P.RunSpec]:
        src = protocols.SOURCE
        specs: List[P.RunSpec] = []
        trained: Dict[str, str] = {}
        for row in ("teacher_promptsrc", "student_coop", "student_promptsrc"):
            label, trainer, config, model = XD_ROWS[row]
            opts = list(XD_FEWSHOT)
            if trainer != "CoOp":
                opts += self.prompt_opts(config, "PROMPTSRC", model)
            spec = self.spec(f"xd/{src}/{row}", label, trainer, config, model, seed, self.roots[src], opts,
                             rank=0 if model == "teacher" else 3)
            trained[row] = f"xd/{src}/{row}"
            specs.append(spec)
        teacher_dir = Path(specs[0].out_dir)
        for name in [src, *protocols.CROSS_TARGETS, *protocols.DG_TARGETS]:
            root = self.roots[name]
            for row, (label, trainer, config, model) in XD_ROWS.items():
                key = f"xd/{name}/{row}"
                if row == "student_promptkd":
                    if name == src:
                        continue  # PromptKD distils on targets; on the source it would be the b2n setting
                    specs += self.kd_target_specs(key, name, seed, root, teacher_dir,
                                                  [trained["teacher_promptsrc"]])
                elif row in trained:
                    if name == src:
                        continue  # the training run itself reports the source accuracy
                    opts = list(XD_EVAL) + (self.prompt_opts(config, "PROMPTSRC", model) if trainer != "CoOp" else [])
                    specs.append(self.spec(key, label, trainer, config, model, seed, root, opts,
                                           needs=[trained[row]], rank=6,
                                           model_dir=Path(self.out / "xd" / P.RUNS_DIR / src / row / f"seed{seed}")))
                else:  # zero-shot
                    specs.append(self.spec(key, label, trainer, config, model, seed, root, XD_EVAL, rank=7,
                                           eval_only=True))
        return specs

    def kd_target_specs(self, key: str, name: str, seed: int, root: Path, teacher_dir: Path,
                        needs: List[str]) -> List[P.RunSpec]:
        """PromptKD distilled on target ``name`` from the source teacher, and its two diagnostics (DIAGNOSTICS)."""
        label, trainer, config, model = XD_ROWS["student_promptkd"]
        batch = int(_yaml_key(CONFIGS[config], "DATALOADER", "TRAIN_X", "BATCH_SIZE"))
        b2n_steps = (self.world.num_classes * self.train_per_class // batch) * max_epoch(CONFIGS["promptkd"])
        target_steps = max(1, self.classes[name] * protocols.PROTOCOL_DATA.train_per_class // batch)
        extra = {"": [], "_scaled": [PK + "KD_WEIGHT", str(1000.0 * self.classes[name] / self.world.num_classes)],
                 "_steps": ["OPTIM.MAX_EPOCH", str(-(-b2n_steps // target_steps))]}
        specs = []
        for suffix, opts in extra.items():
            run_dir = self.out / "xd" / P.RUNS_DIR / name / f"student_promptkd{suffix}" / f"seed{seed}"
            opts = XD_EVAL + self.distill_opts(teacher_dir, config) + [
                PK + "CLASS_VECTORS", P._rel(run_dir / "class_vectors.pt"), *opts]
            specs.append(self.spec(key + suffix, DIAGNOSTICS.get(suffix, label), trainer, config, model, seed, root,
                                   opts, needs=needs, rank=2 if not suffix else 4))
        return specs

    def plan(self, seeds: Sequence[int], groups: Sequence[str] = GROUPS) -> List[P.RunSpec]:
        P.check_seeds(seeds)
        specs = self.plan_b2n(seeds)  # the ablation students need the b2n teachers
        for seed in seeds:
            if "ablation" in groups:
                specs += self.plan_ablation(seed)
            if "xd" in groups:
                specs += self.plan_xd(seed)
        return specs


def fingerprint(res: BuildResult, roots: Dict[str, Path]) -> Dict[str, Any]:
    """What the runs depend on: the demo pipeline's fingerprint, the protocol datasets and every config used."""
    fp = P._fingerprint(res)
    fp["protocol_data"] = {name: root.name for name, root in sorted(roots.items())}
    fp["experiment_configs"] = {c: hashlib.sha256((REPO_ROOT / c).read_bytes()).hexdigest()[:16]
                                for c in sorted(CONFIGS.values())}
    return fp


def reuse_b2n(source: Path, out: Path, res: BuildResult) -> None:
    """Copy the finished run folders of a demo output (``scripts/demo.sh``'s --out) into ``out/b2n`` when it was
    made with the same world, models and configs (its ``pipeline.json`` fingerprint) and ``out/b2n`` has no runs."""
    plan = read_json(Path(source) / P.PLAN_FILE, "demo pipeline plan")
    if plan.get("fingerprint") != P._fingerprint(res):
        raise ValueError(f"{source}: its runs were made with another world, models or configs; drop --reuse-b2n")
    target = out / "b2n" / P.RUNS_DIR
    if target.exists():
        logger.info("--reuse-b2n: %s exists, nothing copied", target)
        return
    shutil.copytree(Path(source) / P.RUNS_DIR, target)
    atomic_write_json(out / "b2n" / P.PLAN_FILE, {"fingerprint": P._fingerprint(res), "copied_from": str(source)})
    logger.info("--reuse-b2n: copied the base-to-novel runs of %s", source)


def run_experiments(seeds: Sequence[int], out: Path, preset_name: str = "default", jobs: int = 2,
                    cache_dir: Optional[Path] = None, build_json: Optional[Path] = None, doc: Optional[Path] = None,
                    groups: Sequence[str] = GROUPS, reuse: Optional[Path] = None, force: bool = False,
                    progress=None) -> Dict[str, Any]:
    """Build, plan, run, then write the tables and (``doc``) the results document. Returns the record."""
    from proving_ground import results_doc

    P.check_seeds(seeds)
    t0 = time.perf_counter()
    res = P.load_build_json(build_json) if build_json else build(preset(preset_name), root=cache_dir)
    world = protocols.world_of(res.dataset_dir)
    train_per_class = int(read_json(res.dataset_dir / "world.json", "proving-ground world file")["data"]["train_per_class"])
    roots = protocols.write_protocol_datasets(world, cache_dir)
    out = Path(out)
    fp = fingerprint(res, roots)
    for group in GROUPS:
        P._check_out_dir(out / group, fp if group != "b2n" else P._fingerprint(res), force)
    if reuse is not None:
        reuse_b2n(Path(reuse), out, res)
    specs = Planner(res, roots, out, train_per_class, world).plan(seeds, groups)
    for group in GROUPS:
        (out / group).mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / group / P.PLAN_FILE, {"fingerprint": fp if group != "b2n" else P._fingerprint(res),
                                                      "plan": [s.key for s in specs if s.key.startswith(group)]})
    t_plan = time.perf_counter()
    outcomes = P.run_all(specs, jobs=jobs, threads=1, progress=progress)
    t_runs = time.perf_counter()
    failed = {k: o.error for k, o in outcomes.items() if o.status in ("failed", "skipped")}
    record = {"seeds": list(seeds), "groups": list(groups), "fingerprint": fp,
              "world": {"classes": world.num_classes, "colours": len(world.colours), "shapes": len(world.shapes),
                        "image_size": world.image_size, "train_per_class": train_per_class,
                        "ablation_images": max(1, int(train_per_class * ABLATION_IMAGE_FRACTION)),
                        "preset": preset_name if build_json is None else next(
                            (n for n in P.PRESETS if preset(n).world == world), "of the given build")},
              "runs": {k: {"status": o.status, "seconds": o.seconds} for k, o in outcomes.items()},
              "seconds": {"build": round(t_plan - t0, 1), "runs": round(t_runs - t_plan, 1),
                          "run_seconds_sum": round(sum(o.seconds for o in outcomes.values()), 1)},
              "specs": {s.key: s.out_dir for s in specs}, "jobs": jobs}
    atomic_write_json(out / "experiments.json", record)
    if failed:
        raise RuntimeError(f"{len(failed)} run(s) did not finish: " + "; ".join(f"{k}: {v}" for k, v in failed.items())
                           + f". Their log.txt files under {out} say why; re-run the same command to retry them")
    if doc is not None:
        results_doc.write_document(Path(doc), record)
    record["seconds"]["total"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(out / "experiments.json", record)
    return record


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m proving_ground.experiments",
                                description="Every protocol and ablation on the proving ground, then docs/RESULTS.md.")
    p.add_argument("--preset", default="default", choices=P.PRESETS)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--out", default="output/results", help="run folders and tables")
    p.add_argument("--doc", default="docs/RESULTS.md", help="the results document to write ('' = none); its plots "
                                                            "go to results/ beside it")
    p.add_argument("--jobs", type=int, default=2, help="runs side by side, one torch thread each")
    p.add_argument("--groups", nargs="+", default=list(GROUPS), choices=GROUPS)
    p.add_argument("--cache-dir", default=None, help="proving-ground cache root")
    p.add_argument("--build-json", default=None, help="a finished build (tools/build_proving_ground.py --json)")
    p.add_argument("--reuse-b2n", default=None, help="a finished demo output (scripts/demo.sh OUT) of the same build: "
                                                     "its base-to-novel runs are copied instead of re-run")
    p.add_argument("--force", action="store_true", help="delete run folders of another configuration in --out")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    record, code = P.cli_call(run_experiments, args.seeds, Path(args.out), args.preset, jobs=args.jobs,
                              cache_dir=args.cache_dir, build_json=args.build_json,
                              doc=Path(args.doc) if args.doc else None, groups=args.groups, reuse=args.reuse_b2n,
                              force=args.force, progress=P._progress_printer())
    if code:
        return code
    sec = record["seconds"]
    print(f"time: build {sec['build']:.0f} s, runs {sec['runs']:.0f} s wall ({sec['run_seconds_sum']:.0f} s summed over "
          f"the runs of this call), total {sec['total']:.0f} s" + (f"; wrote {args.doc}" if args.doc else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
