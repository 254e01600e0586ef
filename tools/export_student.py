"""Export a trained PromptKD student as one self-contained artefact (paper stage III: teacher-free
inference).

    python tools/export_student.py output/base2new/train_base/dtd/.../seed1 student_dtd.pt [--dtype fp16]

The artefact (format: :mod:`stage3.artefact`) holds everything inference needs: the student image tower's
architecture (open_clip vision config) and weights, the learned visual prompts, the projector (+ BatchNorm
statistics), the teacher's class vectors and class names (all dataset classes, with the base / novel /
training subsets), the student's logit scale and the preprocessing (the run's INPUT config). No local
path is needed to use it: ``tools/predict.py`` classifies images with the artefact alone (no teacher,
no text tower, no dataset, no weight files). ``--dtype fp16`` stores the image tower's weights in half
precision (half the size; predict computes in the precision it is asked for).

Which checkpoint: the one the run's results.json was computed with (``selection``: the last epoch, or
``model-best.pth.tar`` for best_val / best_test_reference); ``--checkpoint`` overrides it. The class
vectors come from the file recorded in results.json (``teacher.class_vectors``); ``--class-vectors``
overrides it. The student backbone's weights are read as the run read them (``MODEL.BACKBONE``). The
file is written atomically and loads with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import os.path as osp
import sys
from typing import Any, Dict, List, Optional, Tuple

_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from engine.checkpoint import numbered_checkpoint_name, numbered_checkpoints  # noqa: E402
from stage3.artefact import ARTEFACT_FORMAT, ARTEFACT_VERSION  # noqa: E402

logger = logging.getLogger("export_student")

__all__ = ["ARTEFACT_FORMAT", "ARTEFACT_VERSION", "ExportError", "export_student", "build_parser", "main"]

_MODEL_FOLDER = "VLPromptLearner"


class ExportError(ValueError):
    """The run directory cannot be exported; the message says what is missing and how to fix it."""


def _read_run_config(run_dir: str):
    from yacs.config import CfgNode as CN

    path = osp.join(run_dir, "config.yaml")
    if not osp.isfile(path):
        raise ExportError(f"{run_dir} is not a run directory of train.py: {path} is missing (train.py writes the "
                          "resolved config there at the start of every run)")
    with open(path, "r", encoding="utf-8") as f:
        return CN.load_cfg(f)


def _read_results(run_dir: str) -> Optional[Dict[str, Any]]:
    path = osp.join(run_dir, "results.json")
    if not osp.isfile(path):
        return None
    with open(path, "r", encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as exc:
            raise ExportError(f"{path} is not valid JSON ({exc}); re-run the evaluation or pass --checkpoint") from exc


def choose_checkpoint(run_dir: str, results: Optional[Dict[str, Any]]) -> str:
    """The checkpoint results.json was computed with (see the module docstring)."""
    folder = osp.join(run_dir, _MODEL_FOLDER)
    if results is None:
        raise ExportError(f"{run_dir} has no results.json: the run did not finish (or was never evaluated). Finish it "
                          "(python train.py ... --resume auto) or pass --checkpoint FILE to export a given checkpoint")
    selection = results.get("selection")
    if selection in ("best_val", "best_test_reference"):
        path = osp.join(folder, "model-best.pth.tar")
    elif selection == "loaded_checkpoint" and results.get("checkpoint"):
        path = str(results["checkpoint"])
    else:
        epoch = results.get("epoch")
        path = osp.join(folder, numbered_checkpoint_name(epoch))
        if epoch is None or not osp.isfile(path):
            numbered = numbered_checkpoints(folder)
            path = numbered[-1][1] if numbered else path
    if not osp.isfile(path):
        have = sorted(os.listdir(folder)) if osp.isdir(folder) else []
        raise ExportError(f"Checkpoint {path} (selection {selection!r} in results.json) not found; files in {folder}: "
                          f"{have or 'folder missing'}. Pass --checkpoint FILE")
    return path


def _preprocessing(cfg) -> Dict[str, Any]:
    """The run's INPUT node as plain values (tools/predict.py rebuilds the exact test transform from it)."""
    out = {}
    for key, value in cfg.INPUT.items():
        out[key] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def _portable(obj: Any) -> Any:
    """``obj`` with every absolute local path replaced by its file name (the artefact must not depend on,
    nor reveal, the exporting machine's folders)."""
    if isinstance(obj, str):
        return osp.basename(obj) if osp.isabs(obj) else obj
    if isinstance(obj, dict):
        return {k: _portable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_portable(v) for v in obj]
    return obj


def _check_run(run_dir: str):
    """The run's config and trainer name; a clear error unless it is a PromptKD student run with the teacher's
    class vectors."""
    from engine.trainer import TRAINER_REGISTRY
    from trainers.promptkd import PromptKDStudent

    if not osp.isdir(run_dir):
        raise ExportError(f"Run directory not found: {run_dir}")
    cfg = _read_run_config(run_dir)
    name = cfg.TRAINER.NAME
    trainer_cls = TRAINER_REGISTRY.get(name)
    if not (isinstance(trainer_cls, type) and issubclass(trainer_cls, PromptKDStudent)):
        raise ExportError(f"{run_dir} is a {name} run; tools/export_student.py exports PromptKD students "
                          "(--trainer PromptKD / PromptKDStudent)")
    pk = cfg.TRAINER.PROMPTKD
    if str(pk.get("CLASS_VECTORS_SOURCE", "teacher")) != "teacher":
        raise ExportError(f"{run_dir}: TRAINER.PROMPTKD.CLASS_VECTORS_SOURCE is {pk.CLASS_VECTORS_SOURCE!r}; the "
                          "artefact stores the teacher's class vectors, so only runs with CLASS_VECTORS_SOURCE teacher "
                          "(the paper's setting) can be exported")
    return cfg, name


def _read_student_state(ckpt_path: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The checkpoint and a CPU copy of its state_dict (this code's PromptKD layout only)."""
    from engine.checkpoint import load_checkpoint
    from trainers.common.checkpoints import is_reference_vl_state

    ckpt = load_checkpoint(ckpt_path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise ExportError(f"{ckpt_path} is not a checkpoint with a state_dict")
    state = {k: v.detach().cpu().clone() for k, v in ckpt["state_dict"].items()}
    if is_reference_vl_state(state) or any(k.startswith("VPT_image_trans.") for k in state):
        raise ExportError(f"{ckpt_path} is in the reference PromptKD layout (whole CustomCLIP); export needs a checkpoint "
                          "written by this code's PromptKD trainer (VLPromptLearner/model.pth.tar-N of a train.py run)")
    return ckpt, state


def _class_vectors_file(run_dir: str, class_vectors: Optional[str], results: Optional[Dict[str, Any]],
                        meta: Dict[str, Any]) -> str:
    """``--class-vectors``, else the file recorded in results.json (or the checkpoint's meta)."""
    cv_path = class_vectors
    if cv_path is None:
        teacher = (results or {}).get("teacher") or meta.get("teacher") or {}
        cv_path = teacher.get("class_vectors")
    if not cv_path:
        raise ExportError(f"No class-vectors file is recorded for {run_dir} (results.json teacher.class_vectors); pass "
                          "--class-vectors FILE")
    if not osp.isfile(cv_path) and class_vectors is None and osp.isfile(osp.join(run_dir, osp.basename(cv_path))):
        cv_path = osp.join(run_dir, osp.basename(cv_path))  # a relative path recorded from another working directory
    if not osp.isfile(cv_path):
        raise ExportError(f"Class-vectors file {cv_path} (recorded by the run) not found; pass --class-vectors FILE "
                          "(the file of the teacher that trained this student)")
    return cv_path


def _class_subsets(cv, cv_path: str, train_names: List[str]) -> Dict[str, List[str]]:
    """All classes of the class-vectors file with the base / novel halves (and the run's training classes)."""
    from datasets.utils import base_new_labels

    missing = [c for c in train_names if c not in cv.classnames]
    if missing:
        raise ExportError(f"Class-vectors file {cv_path} lacks {len(missing)} training class(es) of the run, e.g. "
                          f"{missing[:5]}; pass the class-vectors file of this dataset with --class-vectors")
    base, novel = base_new_labels(range(len(cv.classnames)))
    subsets = {"all": list(cv.classnames), "base": [cv.classnames[i] for i in base],
               "novel": [cv.classnames[i] for i in novel]}
    if train_names:
        subsets["train"] = train_names
    return subsets


def _student_tower(cfg, state: Dict[str, Any], ckpt_path: str,
                   dtype: str) -> Tuple[Dict[str, Any], Dict[str, Any], float]:
    """The student image tower as the run loaded it (fp32): its architecture, weights (with a fine-tuned tower's
    weights from the checkpoint) and logit scale."""
    import clip
    from trainers.common.backbone import build_clip

    clip_model = build_clip(cfg, prec="fp32", what="MODEL.BACKBONE.NAME of the run")
    vision = clip.config_from_model(clip_model)
    vision = {"embed_dim": vision["embed_dim"], "quick_gelu": vision["quick_gelu"], "vision_cfg": vision["vision_cfg"]}
    visual_state = {k: v.detach().cpu().clone() for k, v in clip_model.visual.state_dict().items()}
    tuned = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}  # TRAIN_MODE full_finetune
    unknown = sorted(set(tuned) - set(visual_state))
    if unknown:
        raise ExportError(f"{ckpt_path}: image-tower keys {unknown[:5]} do not exist in the backbone "
                          f"{cfg.MODEL.BACKBONE.NAME!r}; export with the run's backbone")
    visual_state.update(tuned)
    if dtype == "fp16":
        visual_state = {k: v.half() if v.is_floating_point() else v for k, v in visual_state.items()}
    return vision, visual_state, float(clip_model.logit_scale.detach().float().exp().item())


def _projector_dims(state: Dict[str, Any], ckpt_path: str) -> Tuple[int, int]:
    """Input and output width of the checkpoint's projector (its first and last ``projector.N.weight``)."""
    linears = sorted((int(k.split(".")[1]), k) for k, v in state.items()
                     if k.startswith("projector.") and k.endswith(".weight") and v.dim() == 2)
    if not linears:
        raise ExportError(f"{ckpt_path} has no projector weights (projector.N.weight): not a PromptKD student checkpoint")
    return int(state[linears[0][1]].shape[1]), int(state[linears[-1][1]].shape[0])


def _student_projector(state: Dict[str, Any], ckpt_path: str, dims: Tuple[int, int], project_layer: int):
    """The projector rebuilt from the checkpoint's ``projector.`` weights."""
    from trainers.promptkd import build_projector

    projector = build_projector(dims[0], dims[1], project_layer)
    projector_state = {k[len("projector."):]: v for k, v in state.items() if k.startswith("projector.")}
    try:
        projector.load_state_dict(projector_state, strict=True)
    except RuntimeError as exc:
        raise ExportError(f"{ckpt_path}: the projector weights do not fit PROJECT_LAYER {project_layer}: {exc}") from exc
    return projector


def export_student(run_dir: str, out_file: str, checkpoint: Optional[str] = None,
                   class_vectors: Optional[str] = None, dtype: str = "fp32") -> Dict[str, Any]:
    """Build the artefact of the PromptKD run in ``run_dir`` and write it to ``out_file``; returns it.
    ``dtype``: storage of the image tower's weights (fp32 | fp16)."""
    if dtype not in ("fp32", "fp16"):
        raise ExportError(f"--dtype {dtype!r}: expected fp32 or fp16")
    import trainers  # registers the trainers
    from engine.fileio import atomic_torch_save
    from stage3.artefact import projector_layers
    from trainers.common.checkpoints import file_sha256
    from trainers.common.class_vectors import load_class_vectors

    del trainers
    cfg, name = _check_run(run_dir)
    pk = cfg.TRAINER.PROMPTKD
    results = _read_results(run_dir)
    ckpt_path = checkpoint or choose_checkpoint(run_dir, results)
    ckpt, state = _read_student_state(ckpt_path)
    meta = dict(ckpt.get("meta") or {})
    cv_path = _class_vectors_file(run_dir, class_vectors, results, meta)
    in_dim, out_dim = _projector_dims(state, ckpt_path)
    cv = load_class_vectors(cv_path, expected_dim=out_dim)
    subsets = _class_subsets(cv, cv_path, list(meta.get("classnames") or []))
    vision, visual_state, logit_scale = _student_tower(cfg, state, ckpt_path, dtype)
    prompt_keys = sorted((int(k[len("image_prompts.layer"):]), k) for k in state if k.startswith("image_prompts.layer"))
    prompts = [state[k].float() for _, k in prompt_keys]
    projector = _student_projector(state, ckpt_path, (in_dim, out_dim), int(pk.PROJECT_LAYER))
    backbone = str(cfg.MODEL.BACKBONE.NAME)
    if osp.sep in backbone or osp.isfile(backbone):  # a local weight file: keep its name only
        backbone = osp.basename(backbone)

    artefact: Dict[str, Any] = {
        "format": ARTEFACT_FORMAT,
        "version": ARTEFACT_VERSION,
        "backbone": backbone,
        "vision": vision,
        "visual_state": visual_state,
        "prompts": prompts,
        "projector": projector_layers(projector),
        "projector_state": {k: v.detach().cpu().clone() for k, v in projector.state_dict().items()},
        "logit_scale": logit_scale,
        "architecture": {
            "n_ctx_vision": int(pk.N_CTX_VISION),
            "prompt_depth_vision": len(prompts),
            "project_layer": int(pk.PROJECT_LAYER),
            "train_mode": str(pk.get("TRAIN_MODE", "prompts_projector")),
            "in_dim": in_dim,
            "out_dim": out_dim,
        },
        "class_vectors": cv.features.float().contiguous(),
        "classnames": list(cv.classnames),
        "class_subsets": subsets,
        "preprocessing": _preprocessing(cfg),
        "teacher": _portable(dict(cv.teacher)),
        "source": {
            "run": osp.basename(osp.normpath(run_dir)),
            "trainer": name,
            "dataset": str(cfg.DATASET.NAME),
            "seed": int(cfg.SEED),
            "checkpoint": osp.basename(ckpt_path),
            "checkpoint_sha256": file_sha256(ckpt_path),
            "epoch": ckpt.get("epoch"),
            "class_vectors": osp.basename(cv_path),
            "visual_dtype": dtype,
            "exported_at": datetime.datetime.now().isoformat(timespec="seconds"),
        },
        "results": {k: results[k] for k in ("protocol", "base_acc", "novel_acc", "hm", "accuracy") if results and k in results},
    }
    atomic_torch_save(artefact, out_file)
    n_params = sum(v.numel() for v in state.values() if not isinstance(v, (int, float)))
    logger.info("Exported %s (%s, epoch %s): %d tensors / %s values, %d classes x %d dims -> %s", run_dir, name,
                ckpt.get("epoch"), len(state), f"{n_params:,}", len(cv.classnames), cv.dim, out_file)
    return artefact


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", metavar="RUN_DIR", help="output directory of a PromptKD student run (train.py --output-dir)")
    p.add_argument("out_file", metavar="OUT_FILE", help="artefact file to write (e.g. student.pt)")
    p.add_argument("--checkpoint", default=None, help="checkpoint file to export (default: the one results.json used)")
    p.add_argument("--class-vectors", default=None, help="class-vectors file (default: the one the run recorded)")
    p.add_argument("--dtype", choices=["fp32", "fp16"], default="fp32",
                   help="storage of the image tower's weights (fp16 halves the file; default fp32)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        art = export_student(args.run_dir, args.out_file, checkpoint=args.checkpoint, class_vectors=args.class_vectors,
                             dtype=args.dtype)
    except (ExportError, FileNotFoundError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = os.path.getsize(args.out_file)
    print(f"Wrote {args.out_file} ({size / 2**20:.2f} MiB): backbone {art['backbone']}, {len(art['classnames'])} classes, "
          f"checkpoint epoch {art['source']['epoch']}")
    return 0


if __name__ == "__main__":
    from engine.cli_errors import run_cli

    sys.exit(run_cli(main, "export_student"))
