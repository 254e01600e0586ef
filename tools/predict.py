"""Classify images with an exported PromptKD student (tools/export_student.py): top-k class names with
probabilities, from the artefact alone (no teacher, no text tower, no dataset, no weight files).

    python tools/predict.py student_dtd.pt img1.jpg img2.png --topk 3
    python tools/predict.py student_dtd.pt imgs/*.jpg --subset novel --json --workers 4 --batch-size 64
    python tools/predict.py student_dtd.pt imgs/*.jpg --precision bf16      # fp32 | fp16 | bf16
    python tools/predict.py student_dtd.pt --export-onnx student_dtd.onnx  # ONNX: images -> logits

The computation is the trainer's evaluation (paper stage III): the frozen student image tower with the
learned visual prompts, the projector, L2 normalisation, cosine logits against the teacher's class
vectors times the student's logit scale, softmax (:mod:`stage3.model`). Images are read and preprocessed
as the run's test loader did (RGB, the run's INPUT config through ``build_transform(is_train=False)``;
JPEGs decoded at a reduced scale where that transform downsizes anyway, ``--full-decode`` to turn it
off), in batches by ``--workers`` processes. ``--subset`` restricts the classes (all | base | novel |
train, as stored in the artefact). ``--precision fp16 / bf16`` runs the image tower in half precision
(LayerNorms, projector and logits in fp32).

This tool imports only the modules inference needs (clip, stage3, the engine's config, image reading
and transforms): no trainer, teacher, teacher cache or dataset module.
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

from stage3.artefact import load_artefact  # noqa: E402
from stage3.data import ImageFiles, image_loader, test_transform  # noqa: E402
from stage3.model import PRECISIONS, from_artefact  # noqa: E402

logger = logging.getLogger("predict")

__all__ = ["StudentPredictor", "load_artefact", "predict", "build_parser", "main"]


class StudentPredictor:
    """The exported student on a device: ``probabilities(images)`` -> [B, C] over the selected classes."""

    def __init__(self, artefact: Dict[str, Any], device: str = "cpu", subset: str = "all", source: str = "artefact",
                 precision: str = "fp32", reduced_decode: bool = True) -> None:
        self.device = torch.device(device)
        self.model = from_artefact(artefact, precision=precision, device=self.device, subset=subset, source=source)
        self.classnames: List[str] = list(self.model.classnames)
        self.transform = test_transform(artefact["preprocessing"], source)
        self.reduced_decode = reduced_decode
        size = artefact["preprocessing"].get("SIZE", (224, 224))
        self.input_size = tuple(int(s) for s in size)

    def load_images(self, paths: Sequence[str]) -> torch.Tensor:
        """Read (RGB) and preprocess images as the run's test loader; an unreadable file is named."""
        files = ImageFiles(paths, self.transform, self.reduced_decode)
        return torch.stack([files[i][0] for i in range(len(files))])

    def loader(self, paths: Sequence[str], batch_size: int = 32, workers: int = 0):
        return image_loader(paths, self.transform, batch_size, workers, self.reduced_decode,
                            pin_memory=self.device.type == "cuda")

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images.to(self.device, non_blocking=True)).float()

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(images).softmax(dim=-1)


def predict(artefact_path: str, images: Sequence[str], topk: int = 5, subset: str = "all", device: str = "cpu",
            batch_size: int = 32, workers: int = 0, precision: str = "fp32",
            reduced_decode: bool = True) -> List[Dict[str, Any]]:
    """Top-k predictions per image: ``[{"image", "top": [{"class", "probability"}, ...]}, ...]``."""
    if not images:
        raise ValueError("predict: no image given")
    if topk < 1:
        raise ValueError(f"--topk must be >= 1, got {topk}")
    art = load_artefact(artefact_path)
    predictor = StudentPredictor(art, device=device, subset=subset, source=artefact_path, precision=precision,
                                 reduced_decode=reduced_decode)
    k = min(topk, len(predictor.classnames))
    out: List[Dict[str, Any]] = []
    for batch, index in predictor.loader(list(images), batch_size, workers):
        values, indices = predictor.probabilities(batch).cpu().topk(k, dim=-1)
        for i, vals, idxs in zip(index.tolist(), values.tolist(), indices.tolist()):
            out.append({"image": images[i], "top": [{"class": predictor.classnames[j], "probability": v}
                                                    for v, j in zip(vals, idxs)]})
    return out


def export_onnx(artefact_path: str, out_path: str, subset: str = "all") -> str:
    """Write the artefact's student (fp32) as ONNX: ``images`` [B, 3, H, W] -> ``logits`` [B, C]."""
    from stage3.onnx_export import export_onnx as _export

    art = load_artefact(artefact_path)
    predictor = StudentPredictor(art, subset=subset, source=artefact_path)
    return _export(predictor.model, out_path, predictor.input_size)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("artefact", metavar="ARTEFACT", help="file written by tools/export_student.py")
    p.add_argument("images", metavar="IMAGE", nargs="*", help="image files")
    p.add_argument("--topk", type=int, default=5, help="number of classes shown per image (default 5)")
    p.add_argument("--subset", default="all", help="class set: all | base | novel | train (default all)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="image tower precision (default fp32)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=0, help="image decoding processes (default 0: in this process)")
    p.add_argument("--full-decode", action="store_true", help="decode every JPEG pixel (no reduced-scale decoding)")
    p.add_argument("--export-onnx", metavar="FILE", default=None,
                   help="write the student as ONNX (images -> logits over --subset) and exit")
    p.add_argument("--json", action="store_true", help="print the predictions as JSON")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.export_onnx:
            path = export_onnx(args.artefact, args.export_onnx, subset=args.subset)
            print(f"Wrote {path} (ONNX: images [B, 3, H, W] -> logits [B, C])")
            return 0
        results = predict(args.artefact, args.images, topk=args.topk, subset=args.subset, device=args.device,
                          batch_size=args.batch_size, workers=args.workers, precision=args.precision,
                          reduced_decode=not args.full_decode)
    except (FileNotFoundError, KeyError, ValueError, OSError, ImportError) as exc:
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
