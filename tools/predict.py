"""Classify images with an exported PromptKD student (tools/export_student.py): top-k class names with
probabilities, from the artefact plus the student backbone weights only (no teacher, no text encoder).

    python tools/predict.py student_dtd.pt img1.jpg img2.png --topk 3
    python tools/predict.py student_dtd.pt imgs/*.jpg --subset novel --json

The computation is the trainer's evaluation (paper stage III): the frozen student image tower with the
learned visual prompts, the projector, L2 normalisation, cosine logits against the teacher's class
vectors times the student's logit scale, softmax. Images are read and preprocessed exactly as the
run's test loader did (RGB, the run's INPUT config through ``build_transform(is_train=False)``).
``--subset`` restricts the classes (all | base | novel | train, as stored in the artefact).

The backbone weights are found like in training: the backbone name stored in the artefact (or
``--backbone``) is a weight file or an OpenAI CLIP name looked up in ``--weights-dir`` /
``$CLIP_WEIGHTS_DIR`` / the default folders.
"""

from __future__ import annotations

import argparse
import json
import logging
import os.path as osp
import sys
from typing import Any, Dict, List, Optional, Sequence

_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import torch  # noqa: E402
from torch import nn  # noqa: E402

logger = logging.getLogger("predict")

__all__ = ["StudentPredictor", "load_artefact", "predict", "build_parser", "main"]


def load_artefact(path: str) -> Dict[str, Any]:
    """Read and check an artefact written by tools/export_student.py."""
    from tools.export_student import ARTEFACT_FORMAT, ARTEFACT_VERSION

    if not osp.isfile(path):
        raise FileNotFoundError(f"Student artefact not found: {path} (write it with tools/export_student.py RUN_DIR OUT_FILE)")
    from engine.safe_load import safe_torch_load

    art = safe_torch_load(path, "student artefact")
    if not isinstance(art, dict) or art.get("format") != ARTEFACT_FORMAT:
        raise ValueError(f"{path} is not a PromptKD student artefact (expected format {ARTEFACT_FORMAT!r}); "
                         "write it with tools/export_student.py")
    if art.get("version") != ARTEFACT_VERSION:
        raise ValueError(f"{path}: artefact version {art.get('version')!r} is not supported (this code reads "
                         f"version {ARTEFACT_VERSION}); re-export it with tools/export_student.py")
    return art


class StudentPredictor:
    """The exported student on a device: ``probabilities(images)`` -> [B, C] over the selected classes."""

    def __init__(self, artefact: Dict[str, Any], device: str = "cpu", backbone: Optional[str] = None,
                 weights_dir: Optional[str] = None, subset: str = "all", source: str = "artefact") -> None:
        import clip
        from engine.config import get_cfg_default
        from engine.data.transforms import build_transform
        from trainers.common.checkpoints import strict_load
        from trainers.promptkd import PromptKDStudentModel

        self.device = torch.device(device)
        arch = artefact["architecture"]
        name = backbone or artefact["backbone"]
        # a tiny test architecture has the same (name-seeded) weights in every process: serve it as trained
        tiny = str(name).replace("/", "-") in clip.tiny_model_names()
        clip_model = clip.load(name, weights_dir=weights_dir, precision="fp32", device=self.device, allow_random=tiny)
        info = clip.model_info(clip_model)
        if int(info.embed_dim) != int(arch["in_dim"]):
            raise ValueError(f"{source} was exported for a backbone with {arch['in_dim']}-d image features "
                             f"({artefact['backbone']!r}) but {name!r} has {info.embed_dim}-d features; pass the "
                             "student backbone of the run with --backbone")
        scale = float(clip_model.logit_scale.detach().float().exp().item())
        visual = clip_model.visual
        del clip_model  # the text tower is never used
        kwargs = {}
        if arch.get("train_mode", "prompts_projector") != "prompts_projector":
            kwargs["train_mode"] = arch["train_mode"]
        self.model: nn.Module = PromptKDStudentModel(
            visual, int(arch["n_ctx_vision"]), int(arch["prompt_depth_vision"]), int(info.vision_width),
            in_dim=int(arch["in_dim"]), out_dim=int(arch["out_dim"]), project_layers=int(arch["project_layer"]),
            logit_scale=scale, **kwargs,
        )
        strict_load(self.model, artefact["state_dict"], source)
        self.model.to(self.device).eval()

        subsets = artefact.get("class_subsets") or {"all": list(artefact["classnames"])}
        if subset not in subsets:
            raise KeyError(f"--subset {subset!r}: the artefact provides {sorted(subsets)}")
        self.classnames: List[str] = list(subsets[subset])
        index = {c: i for i, c in enumerate(artefact["classnames"])}
        weights = artefact["class_vectors"].float()[[index[c] for c in self.classnames]]
        self.class_weights = weights.to(self.device)

        cfg = get_cfg_default()
        for key, value in artefact["preprocessing"].items():
            if key not in cfg.INPUT:
                raise KeyError(f"{source}: unknown preprocessing key INPUT.{key} (exported by a newer version?)")
            cfg.INPUT[key] = tuple(value) if isinstance(cfg.INPUT[key], tuple) else value
        self.transform = build_transform(cfg, is_train=False)
        self.input_size = tuple(int(s) for s in cfg.INPUT.SIZE)

    def load_images(self, paths: Sequence[str]) -> torch.Tensor:
        """Read (RGB) and preprocess images as the run's test loader; an unreadable file is named."""
        from engine.utils import read_image

        tensors = []
        for path in paths:
            img = read_image(path)
            tensors.append(self.transform(img) if self.transform is not None else torch.as_tensor(img))
        return torch.stack(tensors)

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        from trainers.common.vl_model import cosine_logits

        feats = self.model(images.to(self.device))
        return cosine_logits(feats, self.class_weights, self.model.logit_scale).float()

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(images).softmax(dim=-1)


def predict(artefact_path: str, images: Sequence[str], topk: int = 5, subset: str = "all", device: str = "cpu",
            backbone: Optional[str] = None, weights_dir: Optional[str] = None,
            batch_size: int = 32) -> List[Dict[str, Any]]:
    """Top-k predictions per image: ``[{"image", "top": [{"class", "probability"}, ...]}, ...]``."""
    if not images:
        raise ValueError("predict: no image given")
    if topk < 1:
        raise ValueError(f"--topk must be >= 1, got {topk}")
    art = load_artefact(artefact_path)
    predictor = StudentPredictor(art, device=device, backbone=backbone, weights_dir=weights_dir, subset=subset,
                                 source=artefact_path)
    k = min(topk, len(predictor.classnames))
    out: List[Dict[str, Any]] = []
    for start in range(0, len(images), batch_size):
        chunk = list(images[start:start + batch_size])
        probs = predictor.probabilities(predictor.load_images(chunk)).cpu()
        values, indices = probs.topk(k, dim=-1)
        for path, vals, idxs in zip(chunk, values.tolist(), indices.tolist()):
            out.append({"image": path, "top": [{"class": predictor.classnames[i], "probability": v}
                                               for v, i in zip(vals, idxs)]})
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("artefact", metavar="ARTEFACT", help="file written by tools/export_student.py")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files")
    p.add_argument("--topk", type=int, default=5, help="number of classes shown per image (default 5)")
    p.add_argument("--subset", default="all", help="class set: all | base | novel | train (default all)")
    p.add_argument("--backbone", default=None, help="student backbone name or weight file (default: the artefact's)")
    p.add_argument("--weights-dir", default=None, help="folder with CLIP weight files (default $CLIP_WEIGHTS_DIR, ...)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--json", action="store_true", help="print the predictions as JSON")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        results = predict(args.artefact, args.images, topk=args.topk, subset=args.subset, device=args.device,
                          backbone=args.backbone, weights_dir=args.weights_dir, batch_size=args.batch_size)
    except (FileNotFoundError, KeyError, ValueError, OSError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {msg}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for res in results:
        print(res["image"])
        for rank, top in enumerate(res["top"], 1):
            print(f"  {rank}. {top['class']}  {top['probability']:.4f}")
    return 0


if __name__ == "__main__":
    from engine.cli_errors import run_cli

    sys.exit(run_cli(main, "predict"))
