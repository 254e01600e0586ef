"""The real PromptKD pipeline, end to end, on the offline proving ground (the README's main job).

Runs the project's own trainers through ``train.py`` (``train.main``) on the proving ground's target
domain, base-to-novel protocol, for every seed:

======================  ==================  ==========================================  ==================
row label               trainer             model / data                                config
======================  ==================  ==========================================  ==================
teacher zero-shot       ZeroshotCLIP        teacher CLIP, no training                   ZeroshotCLIP/proving_ground
teacher PromptSRC       PromptSRCTeacher    stage I: teacher, 16-shot base classes;     PromptSRC/proving_ground_teacher
                                            writes the class vectors of all classes
student zero-shot       ZeroshotCLIP        student CLIP, no training                   ZeroshotCLIP/proving_ground
student CoOp            CoOp                student, 16-shot base classes               CoOp/proving_ground
student PromptSRC       PromptSRC           student, 16-shot base classes               PromptSRC/proving_ground
student PromptKD        PromptKD            stages II + III: student distilled on the   PromptKD/proving_ground
                                            unlabeled training images of all classes
                                            from the same seed's stage-I teacher
======================  ==================  ==========================================  ==================

Every run evaluates base and novel test classes with its final weights (``results.json``: base, novel,
HM); the pipeline adds the row label to ``results.json`` and then builds the table with
``tools.results_lib``, the library behind ``tools/results.py`` (mean +- std over seeds, HM of the means,
bar chart), and checks the paper's claims with :mod:`proving_ground.claims`.

Runs are executed by ``jobs`` worker processes with ``threads`` torch threads each (two single-thread
workers beat one two-thread process on a 2-core CPU); each worker imports torch once and calls
``train.main`` in-process for every run it gets. A run folder that holds a finished run (``DONE``) is
reused, an interrupted one resumes (``train.py --resume auto``), so the pipeline can be re-run.

    python -m proving_ground.pipeline --preset default --seeds 1 2 3 --out output/proving_ground_demo

Output folder: ``runs/<row>/seed<N>/`` (train.py run folders), ``results_base2novel.{md,json}``,
``hm_base2novel.png``, ``claims.json`` and ``pipeline.json`` (plan, timings, pre-trained models).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import hashlib
import logging
import multiprocessing as mp
import os
import shutil
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from engine.run_record import RESULTS_FILE, RunRecord, read_run_record, write_run_record  # noqa: E402
from proving_ground.build import STATS_FILE, BuildResult, ModelArtifact, build, preset  # noqa: E402
from proving_ground.cache import atomic_write_json, read_json  # noqa: E402

logger = logging.getLogger(__name__)

DATASET_CONFIG = "configs/datasets/proving_ground.yaml"
PLAN_FILE = "pipeline.json"
RUNS_DIR = "runs"
TABLE_KIND = "base2novel"
PRESETS = ("default", "reduced")

#: Row key -> (label written into results.json, trainer, trainer config, model role, training protocol).
#: ``protocol`` "fewshot_base": 16-shot labelled base classes (baselines and the teacher, paper Table 1);
#: "zeroshot": evaluation only; "distill": PromptKD's yaml protocol (all unlabeled training images).
_ROW_FIELDS = ("label", "trainer", "config", "model", "protocol")
ROWS: Dict[str, Dict[str, str]] = {key: dict(zip(_ROW_FIELDS, row)) for key, row in {
    "teacher_zeroshot": ("teacher zero-shot", "ZeroshotCLIP", "configs/trainers/ZeroshotCLIP/proving_ground.yaml",
                         "teacher", "zeroshot"),
    "teacher_promptsrc": ("teacher PromptSRC", "PromptSRCTeacher",
                          "configs/trainers/PromptSRC/proving_ground_teacher.yaml", "teacher", "fewshot_base"),
    "student_zeroshot": ("student zero-shot", "ZeroshotCLIP", "configs/trainers/ZeroshotCLIP/proving_ground.yaml",
                         "student", "zeroshot"),
    "student_coop": ("student CoOp", "CoOp", "configs/trainers/CoOp/proving_ground.yaml", "student", "fewshot_base"),
    "student_promptsrc": ("student PromptSRC", "PromptSRC", "configs/trainers/PromptSRC/proving_ground.yaml",
                          "student", "fewshot_base"),
    "student_promptkd": ("student PromptKD", "PromptKD", "configs/trainers/PromptKD/proving_ground.yaml",
                         "student", "distill"),
}.items()}

#: Scheduling priority (lower first): the teachers and PromptKD form the critical path.
_PRIORITY = {"teacher_promptsrc": 0, "student_promptkd": 1, "student_coop": 2, "student_promptsrc": 3,
             "teacher_zeroshot": 4, "student_zeroshot": 5}

NUM_SHOTS = 16


@dataclass
class RunSpec:
    """One ``train.py`` run of the pipeline."""

    key: str  # "<row>/seed<N>"
    row: str
    label: str
    trainer: str
    seed: int
    out_dir: str
    argv: List[str]
    needs: List[str] = field(default_factory=list)  # keys of runs that must finish first
    rank: Optional[int] = None  # scheduling rank (lower first); None: the demo rows' _PRIORITY

    @property
    def priority(self) -> tuple:
        return (_PRIORITY[self.row] if self.rank is None else self.rank, self.seed)


@dataclass
class RunOutcome:
    key: str
    status: str  # "done" | "reused" | "failed" | "skipped"
    seconds: float = 0.0
    base: Optional[float] = None
    novel: Optional[float] = None
    hm: Optional[float] = None
    error: Optional[str] = None


def _rel(path: Path) -> str:
    """``path`` relative to the current directory when it lies below it (short logs), else absolute."""
    path = Path(path).absolute()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


#: Visual prompt tokens may be at most this fraction of a model's patch tokens (see :func:`_prompt_opts`).
MAX_VISUAL_PROMPT_FRACTION = 0.25


def _yaml_prompt_keys(config: Path, node: str) -> Dict[str, int]:
    """N_CTX_VISION / PROMPT_DEPTH_VISION / PROMPT_DEPTH_TEXT of a trainer yaml (TRAINER.<node>)."""
    import yaml  # PyYAML ships with yacs

    with open(config, "r", encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    section = (data.get("TRAINER") or {}).get(node) or {}
    out = {}
    for key in ("N_CTX_VISION", "PROMPT_DEPTH_VISION", "PROMPT_DEPTH_TEXT"):
        if key not in section:
            raise KeyError(f"{config}: TRAINER.{node}.{key} is missing; the pipeline fits it to the proving "
                           f"ground's models, so the config must set it")
        out[key] = int(section[key])
    return out


def _prompt_opts(config: Path, node: str, model: Dict[str, int], text: bool) -> List[str]:
    """The yaml's prompt shape fitted to a pre-trained tiny CLIP.

    Depths are clamped to the towers (a tower of L blocks takes at most L prompt layers; the paper's depth
    9 is kept where the tower is deep enough). Visual prompt tokens are capped at a quarter of the patch
    tokens: the paper's 4 tokens sit beside 196 patches (2%) and the default world's beside 16 (25%), but
    the reduced world's 16 px images have only 4 patches, and 4 prompt tokens made half of the sequence:
    the first full-LR PromptSRC step then threw the student to 7 points below its zero-shot (README,
    "The reduced preset"). With 1 token per layer it stays level with it.
    """
    keys = _yaml_prompt_keys(config, node)
    n_ctx = min(keys["N_CTX_VISION"], max(1, int(model["patch_tokens"] * MAX_VISUAL_PROMPT_FRACTION)))
    opts = [f"TRAINER.{node}.N_CTX_VISION", str(n_ctx),
            f"TRAINER.{node}.PROMPT_DEPTH_VISION", str(min(keys["PROMPT_DEPTH_VISION"], model["vision_layers"]))]
    if text:
        opts += [f"TRAINER.{node}.PROMPT_DEPTH_TEXT", str(min(keys["PROMPT_DEPTH_TEXT"], model["text_layers"]))]
    return opts


def check_seeds(seeds: Sequence[int]) -> None:
    """At least one seed, distinct, non-negative (train.py fixes the seed only for values >= 0)."""
    if not seeds:
        raise ValueError("no seeds given: pass at least one seed (e.g. --seeds 1 2 3)")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {list(seeds)}")
    for s in seeds:
        if s < 0:
            raise ValueError(f"seeds must be non-negative integers (train.py fixes the seed only then), got {s}")


def model_shape(art: ModelArtifact) -> Dict[str, int]:
    """``vision_layers``, ``text_layers``, ``image_size`` and ``patch_tokens`` ((image_size / patch_size)^2)
    of a pre-trained model, from its ``pretrain.json``."""
    model = (art.stats or {}).get("model") or {}
    missing = [k for k in ("vision_layers", "text_layers", "image_size", "patch_size")
               if not isinstance(model.get(k), int)]
    if missing:
        raise ValueError(f"{art.weights.parent / STATS_FILE}: 'model' lacks {', '.join(map(repr, missing))} (the "
                         f"model config of {art.name}); rebuild the proving ground with "
                         "tools/build_proving_ground.py --force")
    return {"vision_layers": model["vision_layers"], "text_layers": model["text_layers"],
            "image_size": model["image_size"], "patch_tokens": (model["image_size"] // model["patch_size"]) ** 2}


def input_size(res: BuildResult) -> int:
    """Side of the square images both pre-trained CLIPs take (the world's ``image_size``), from their
    ``pretrain.json``; the runs pass it as ``INPUT.SIZE`` (the dataset yaml's 32 px is the default world's)."""
    sizes = {art.name: model_shape(art)["image_size"] for art in (res.teacher, res.student)}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"teacher and student take different image sizes {sizes}: both must be pre-trained on "
                         "the same world (rebuild the proving ground)")
    return next(iter(sizes.values()))


def load_build_json(path: os.PathLike) -> BuildResult:
    """A finished build from the JSON of ``tools/build_proving_ground.py --json`` (nothing is rebuilt)."""
    path = Path(path)
    data = read_json(path, "proving-ground build description")
    try:
        arts = []
        for role in ("teacher", "student"):
            a = data[role]
            weights = Path(a["weights"])
            stats = read_json(weights.parent / STATS_FILE, f"pre-training stats of the {role}")
            if not weights.is_file():
                raise FileNotFoundError(f"{path}: {role} weights {weights} do not exist; rebuild the proving ground")
            arts.append(ModelArtifact(a["name"], a["key"], weights, Path(a["config"]), stats, cached=True))
        res = BuildResult(Path(data["data_root"]), Path(data["dataset_dir"]), arts[0], arts[1], {})
    except KeyError as exc:
        raise ValueError(f"{path}: missing key {exc}; expected the JSON written by tools/build_proving_ground.py "
                         "--json") from None
    if not res.dataset_dir.is_dir():
        raise FileNotFoundError(f"{path}: dataset folder {res.dataset_dir} does not exist; rebuild the proving ground")
    return res


def plan_runs(res: BuildResult, seeds: Sequence[int], out: Path) -> List[RunSpec]:
    """The runs of the demo table for ``seeds`` (see the module docstring), with their ``train.py`` argv."""
    check_seeds(seeds)
    models = {"teacher": (res.teacher.weights, model_shape(res.teacher)),
              "student": (res.student.weights, model_shape(res.student))}
    size = input_size(res)
    specs: List[RunSpec] = []
    for seed in seeds:
        for row, info in ROWS.items():
            weights, mcfg = models[info["model"]]
            config = REPO_ROOT / info["config"]
            run_dir = out / RUNS_DIR / row / f"seed{seed}"
            argv = ["--root", _rel(res.data_root), "--seed", str(seed), "--trainer", info["trainer"],
                    "--dataset-config-file", _rel(REPO_ROOT / DATASET_CONFIG), "--config-file", _rel(config),
                    "--output-dir", _rel(run_dir)]
            opts = ["MODEL.BACKBONE.NAME", _rel(weights), "INPUT.SIZE", f"({size}, {size})"]
            needs: List[str] = []
            if info["protocol"] == "zeroshot":
                argv.append("--eval-only")
                opts += ["DATASET.SUBSAMPLE_CLASSES", "base", "DATASET.EVAL_PROTOCOL", "base2novel"]
            elif info["protocol"] == "fewshot_base":
                opts += ["DATASET.NUM_SHOTS", str(NUM_SHOTS), "DATASET.SUBSAMPLE_CLASSES", "base",
                         "DATASET.EVAL_PROTOCOL", "base2novel"]
                if info["trainer"] in ("PromptSRC", "PromptSRCTeacher"):
                    opts += _prompt_opts(config, "PROMPTSRC", mcfg, text=True)
            else:  # distill: the student of this seed learns from the stage-I teacher of this seed
                teacher_dir = out / RUNS_DIR / "teacher_promptsrc" / f"seed{seed}"
                needs.append(f"teacher_promptsrc/seed{seed}")
                opts += ["TRAINER.PROMPTKD.TEACHER_NAME", _rel(res.teacher.weights),
                         "TRAINER.PROMPTKD.TEACHER_CKPT", _rel(teacher_dir)]
                opts += _prompt_opts(config, "PROMPTKD", mcfg, text=False)
            specs.append(RunSpec(key=f"{row}/seed{seed}", row=row, label=info["label"], trainer=info["trainer"],
                                 seed=seed, out_dir=str(run_dir), argv=argv + opts, needs=needs))
    return specs


# ----------------------------------------------------------------------------------------------------
# Running one train.py run (in a worker process or in this process)
# ----------------------------------------------------------------------------------------------------
def _worker_init(threads: int) -> None:
    """Worker set-up: torch threads, repository root importable."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))


def _label_results(out_dir: str, label: str) -> RunRecord:
    """Add the row ``label`` to ``<out_dir>/results.json`` (atomically) and return the record."""
    path = Path(out_dir) / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the run finished without writing results.json; see {Path(out_dir) / 'log.txt'}")
    record = read_run_record(path)
    if record.label != label:
        record.label = label
        write_run_record(record, path)
    return record


def execute_run(spec: RunSpec, quiet: bool = True) -> Dict[str, Any]:
    """Run one ``train.main(argv)`` in this process; returns {status, seconds, base, novel, hm}.

    A folder holding a finished run (``DONE``) is reused (train.py then does nothing). ``quiet`` sends the
    run's console log to ``/dev/null`` (its ``log.txt`` has everything).
    """
    import torch

    import train
    from engine.utils import close_logger

    t0 = time.perf_counter()
    reused = (Path(spec.out_dir) / "DONE").is_file()
    sink = open(os.devnull, "w") if quiet else None
    try:
        with contextlib.ExitStack() as stack:
            if sink is not None:
                stack.enter_context(contextlib.redirect_stdout(sink))
            train.main(list(spec.argv))
    finally:
        close_logger()
        if sink is not None:
            sink.close()
    record = _label_results(spec.out_dir, spec.label)
    return {"status": "reused" if reused else "done", "seconds": round(time.perf_counter() - t0, 2),
            "base": record.base_acc, "novel": record.novel_acc, "hm": record.hm,
            "threads": torch.get_num_threads()}


def _run_in_worker(spec_dict: Dict[str, Any], quiet: bool) -> Dict[str, Any]:
    return execute_run(RunSpec(**spec_dict), quiet=quiet)


def run_all(specs: Sequence[RunSpec], jobs: int = 2, threads: int = 1, quiet: bool = True,
            progress=None) -> Dict[str, RunOutcome]:
    """Run ``specs`` respecting ``needs``: ``jobs`` worker processes (0 = in this process, one after the
    other). A failed run is reported and its dependants are skipped; the others still run."""
    by_key = {s.key: s for s in specs}
    for s in specs:
        for dep in s.needs:
            if dep not in by_key:
                raise ValueError(f"run {s.key} needs {dep}, which is not planned")
    order = sorted(specs, key=lambda s: s.priority)
    outcomes: Dict[str, RunOutcome] = {}
    total = len(specs)

    def report(o: RunOutcome) -> None:
        outcomes[o.key] = o
        if progress is not None:
            progress(len(outcomes), total, o)

    def skip_dependants() -> None:
        changed = True
        while changed:
            changed = False
            for s in order:
                if s.key in outcomes:
                    continue
                bad = [d for d in s.needs if d in outcomes and outcomes[d].status in ("failed", "skipped")]
                if bad:
                    report(RunOutcome(s.key, "skipped", error=f"needs {bad[0]}, which {outcomes[bad[0]].status}"))
                    changed = True

    def ready(s: RunSpec) -> bool:
        return all(d in outcomes and outcomes[d].status in ("done", "reused") for d in s.needs)

    def finish(s: RunSpec, result: Optional[Dict[str, Any]], exc: Optional[BaseException], seconds: float) -> None:
        if exc is not None:
            logger.error("run %s failed: %s: %s (log: %s)", s.key, type(exc).__name__, exc,
                         Path(s.out_dir) / "log.txt")
            report(RunOutcome(s.key, "failed", seconds=round(seconds, 2), error=f"{type(exc).__name__}: {exc}"))
        else:
            report(RunOutcome(s.key, result["status"], seconds=result["seconds"], base=result["base"],
                              novel=result["novel"], hm=result["hm"]))
        skip_dependants()

    if jobs <= 0:
        _worker_init(threads)
        for s in order:
            if s.key in outcomes:
                continue
            t0 = time.perf_counter()
            try:
                finish(s, execute_run(s, quiet=quiet), None, 0.0)
            except Exception as exc:  # reported, dependants skipped, the rest goes on
                finish(s, None, exc, time.perf_counter() - t0)
        return outcomes

    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init,
                                initargs=(threads,)) as pool:
        running: Dict[cf.Future, tuple] = {}
        while len(outcomes) < total:
            for s in order:
                if len(running) >= jobs:
                    break
                if s.key in outcomes or any(v[0] is s for v in running.values()) or not ready(s):
                    continue
                try:
                    fut = pool.submit(_run_in_worker, asdict(s), quiet)
                except BrokenProcessPool as exc:  # a worker died (killed, out of memory)
                    finish(s, None, exc, 0.0)
                    continue
                running[fut] = (s, time.perf_counter())
            if not running:
                break  # nothing runnable left (cannot happen: dependants of failures are skipped)
            done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
            for fut in done:
                s, t0 = running.pop(fut)
                exc = fut.exception()
                finish(s, None if exc else fut.result(), exc, time.perf_counter() - t0)
    return outcomes


# ----------------------------------------------------------------------------------------------------
# The whole pipeline
# ----------------------------------------------------------------------------------------------------
def _fingerprint(res: BuildResult) -> Dict[str, Any]:
    """What the run folders depend on: the world/models (cache keys) and the trainer configs' contents."""
    configs = {}
    for path in sorted({info["config"] for info in ROWS.values()} | {DATASET_CONFIG}):
        configs[path] = hashlib.sha256((REPO_ROOT / path).read_bytes()).hexdigest()[:16]
    return {"data": res.dataset_dir.parent.name, "teacher": res.teacher.key, "student": res.student.key,
            "configs": configs}


def _check_out_dir(out: Path, fingerprint: Dict[str, Any], force: bool) -> None:
    """Refuse to mix run folders of another world, other models or other configs into one table."""
    plan = out / PLAN_FILE
    runs = out / RUNS_DIR
    if not runs.exists():
        return
    old = read_json(plan, "pipeline plan").get("fingerprint") if plan.is_file() else None
    if old == fingerprint:
        return
    if not force:
        what = "a different world, models or trainer configs" if old else "runs of unknown origin (no pipeline.json)"
        raise ValueError(f"{runs} holds {what}: its results would be mixed with this pipeline's. Pass --force to "
                         f"delete {runs} and start again, or choose another --out")
    logger.warning("--force: removing %s (runs of another configuration)", runs)
    shutil.rmtree(runs)


def _progress_printer(stream=None):
    stream = stream or sys.stdout

    def progress(n: int, total: int, o: RunOutcome) -> None:
        if o.status in ("done", "reused"):
            msg = f"base {o.base:.1f}  novel {o.novel:.1f}  HM {o.hm:.1f}" if o.hm is not None else "finished"
            how = "reused" if o.status == "reused" else f"{o.seconds:.0f} s"
        else:
            msg, how = f"{o.status.upper()}: {o.error}", f"{o.seconds:.0f} s"
        print(f"[{n:>2}/{total}] {o.key:<28} {msg}  ({how})", file=stream, flush=True)

    return progress


def run_pipeline(preset_name: str, seeds: Sequence[int], out: os.PathLike, jobs: int = 2, threads: int = 1,
                 cache_dir: Optional[os.PathLike] = None, build_workers: int = 2, force: bool = False,
                 quiet: bool = True, progress=None, world_seed: int = 0,
                 build_json: Optional[os.PathLike] = None) -> Dict[str, Any]:
    """Build (or reuse) the proving ground, run every planned run, aggregate the table, check the claims.

    ``build_json``: use the finished build described by this file (``tools/build_proving_ground.py
    --json``) instead of building ``preset_name``.

    Returns the content of ``pipeline.json``: ``table`` (the aggregated results, tools.results_lib),
    ``claims`` (proving_ground.claims), ``runs`` (outcome per run), ``seconds`` and ``build``.
    Raises ``RuntimeError`` after writing everything it could when a run failed.
    """
    from tools import results_lib

    from proving_ground import claims as claims_mod

    if preset_name not in PRESETS:
        raise ValueError(f"unknown preset {preset_name!r}: expected one of {PRESETS}")
    check_seeds(seeds)
    t_start = time.perf_counter()
    out = Path(out)
    if build_json is not None:
        res = load_build_json(build_json)
    else:
        res = build(preset(preset_name, seed=world_seed), root=cache_dir, workers=build_workers)
    t_built = time.perf_counter()
    fingerprint = _fingerprint(res)
    _check_out_dir(out, fingerprint, force)
    specs = plan_runs(res, seeds, out)
    out.mkdir(parents=True, exist_ok=True)
    record: Dict[str, Any] = {"preset": preset_name if build_json is None else f"from {build_json}",
                              "world_seed": world_seed, "seeds": list(seeds),
                              "fingerprint": fingerprint, "build": res.to_dict(),
                              "rows": {k: v["label"] for k, v in ROWS.items()},
                              "plan": [asdict(s) for s in specs]}
    atomic_write_json(out / PLAN_FILE, record)

    outcomes = run_all(specs, jobs=jobs, threads=threads, quiet=quiet, progress=progress)
    t_runs = time.perf_counter()
    record["runs"] = {k: asdict(v) for k, v in outcomes.items()}
    failed = {k: v.error for k, v in outcomes.items() if v.status in ("failed", "skipped")}

    table = None
    claim_list: List[Dict[str, Any]] = []
    finished = [s.out_dir for s in specs if outcomes.get(s.key) and outcomes[s.key].status in ("done", "reused")]
    if finished:
        table = results_lib.aggregate(results_lib.collect_runs([Path(d) / RESULTS_FILE for d in finished]), TABLE_KIND)
        results_lib.write_table(table, out, results_lib.render(table))  # results_<kind>.md/.json, hm_<kind>.png
        claim_list = claims_mod.check_claims(table)
        atomic_write_json(out / claims_mod.CLAIMS_FILE, {"claims": claim_list,
                                                         "summary": claims_mod.summary(claim_list)})
    record["table_file"] = f"results_{TABLE_KIND}.md" if table else None
    record["claims"] = claim_list
    record["seconds"] = {"build": round(t_built - t_start, 1), "runs": round(t_runs - t_built, 1),
                         "total": round(time.perf_counter() - t_start, 1),
                         "pretrain_reused": bool(res.teacher.cached and res.student.cached)}
    atomic_write_json(out / PLAN_FILE, record)
    record["table"] = table
    if failed:
        raise RuntimeError(f"{len(failed)} run(s) did not finish: " + "; ".join(f"{k}: {v}" for k, v in failed.items())
                           + f". Their log.txt files under {out / RUNS_DIR} say why; re-run the same command to "
                           "retry them (finished runs are reused)")
    return record


def cli_call(fn, *args: Any, **kwargs: Any) -> tuple:
    """``(fn(*args, **kwargs), 0)``; bad input (ValueError, FileNotFoundError, KeyError) -> ``(None, 2)`` and a run
    that did not finish (RuntimeError) -> ``(None, 1)``, each printed as one ``error:`` line."""
    try:
        return fn(*args, **kwargs), 0
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, 2
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m proving_ground.pipeline",
        description="The real PromptKD pipeline (teacher, baselines, student) on the offline proving ground, "
                    "then the base/novel/HM table and the paper's claims checked on it.")
    p.add_argument("--preset", default="default", choices=PRESETS, help="proving-ground world and model sizes")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="training seeds (default: 1 2 3)")
    p.add_argument("--out", default="output/proving_ground_demo", help="output folder (run folders, table, claims)")
    p.add_argument("--jobs", type=int, default=2, help="runs side by side in worker processes (0: in this process)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    p.add_argument("--cache-dir", default=None, help="proving-ground cache root (default $PROMPTKD_PG_DIR or "
                                                     "./output/proving_ground)")
    p.add_argument("--world-seed", type=int, default=0, help="world and pre-training seed of the proving ground")
    p.add_argument("--build-json", default=None,
                   help="use the finished build described by this file (tools/build_proving_ground.py --json) "
                        "instead of building --preset")
    p.add_argument("--force", action="store_true", help="delete run folders of another configuration in --out")
    p.add_argument("--verbose", action="store_true", help="show every run's log on the console")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.jobs < 0 or args.threads < 0:
        print("error: --jobs and --threads must be >= 0", file=sys.stderr)
        return 2
    from proving_ground import claims as claims_mod

    print(f"PromptKD pipeline on the proving ground: preset {args.preset}, seeds {args.seeds}, "
          f"{args.jobs} job(s) x {args.threads} thread(s), output {args.out}", flush=True)
    record, code = cli_call(run_pipeline, args.preset, args.seeds, args.out, jobs=args.jobs, threads=args.threads,
                            cache_dir=args.cache_dir, force=args.force, quiet=not args.verbose,
                            progress=_progress_printer(), world_seed=args.world_seed, build_json=args.build_json)
    if code:
        return code
    out = Path(args.out)
    print()
    print((out / f"results_{TABLE_KIND}.md").read_text(encoding="utf-8"), end="")
    print()
    print(claims_mod.render(record["claims"]))
    sec = record["seconds"]
    print(f"\ntime: proving ground {sec['build']:.0f} s{' (cached)' if sec['pretrain_reused'] else ''}, "
          f"runs {sec['runs']:.0f} s, total {sec['total']:.0f} s")
    print(f"table, bar chart, claims: {out}/results_{TABLE_KIND}.md, {out}/hm_{TABLE_KIND}.png, "
          f"{out}/{claims_mod.CLAIMS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
