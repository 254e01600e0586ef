"""tools/export_student.py + tools/predict.py: the exported artefact, used with the student backbone weights
only, gives the trainer's evaluation predictions (same classes, same probabilities, same accuracy)."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

import clip
import train
from engine.utils import read_image
from tests.helpers.tiny_env import make_tiny_env, reset_run_state, skip_env_probe
from tests.test_reliability_resume import student_argv
from tools import export_student, predict

torch.set_num_threads(1)


pytestmark = pytest.mark.usefixtures("run_hygiene")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("export_predict")
    env = make_tiny_env(base)
    out = base / "run"
    with pytest.MonkeyPatch.context() as mp:  # module scope: no function-scoped monkeypatch fixture
        skip_env_probe(mp)
        try:
            trainer = train.main(student_argv(env, out))
        finally:
            reset_run_state()
    artefact = base / "student.pt"
    assert export_student.main([str(out), str(artefact)]) == 0
    return {"env": env, "out": out, "trainer": trainer, "artefact": artefact}


def trainer_probabilities(trainer, items, classnames):
    """The trainer's own evaluation computation (test transform + model_inference) on ``items``."""
    trainer.set_model_mode("eval")
    trainer.set_eval_classnames(classnames)
    try:
        images = torch.stack([trainer.dm.tfm_test(read_image(it.impath)) for it in items])
        with torch.no_grad():
            return trainer.model_inference(images).float().softmax(dim=-1)
    finally:
        trainer.set_eval_classnames(trainer.train_classnames)


# ------------------------------------------------------------------------------------------------
def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _strings(v)


def test_artefact_is_self_contained(trained, tmp_path):
    art = torch.load(trained["artefact"], map_location="cpu", weights_only=True)
    assert art["format"] == "promptkd-student" and art["version"] == 2
    trainer = trained["trainer"]
    assert art["classnames"] == list(trainer.dm.dataset.all_classnames)
    assert art["class_subsets"]["base"] == trainer.dm.dataset.eval_sets["base"].classnames
    assert art["class_subsets"]["novel"] == trainer.dm.dataset.eval_sets["novel"].classnames
    assert torch.equal(art["class_vectors"], trainer.class_vectors.features)
    # the image tower: its open_clip architecture and the very weights the trainer ran
    tower = trainer.model.visual.state_dict()
    assert sorted(art["visual_state"]) == sorted(tower)
    assert all(torch.equal(art["visual_state"][k], tower[k].float()) for k in tower)
    assert art["vision"]["vision_cfg"]["layers"] == len(trainer.model.visual.transformer.resblocks)
    assert art["vision"]["embed_dim"] == trainer.model.visual.output_dim
    prompts = trainer.model.image_prompts.prompts()
    assert len(art["prompts"]) == len(prompts) and all(torch.equal(a, b) for a, b in zip(art["prompts"], prompts))
    proj = trainer.model.projector.state_dict()
    assert sorted(art["projector_state"]) == sorted(proj)
    assert all(torch.equal(art["projector_state"][k], proj[k]) for k in proj)
    assert art["logit_scale"] == pytest.approx(float(trainer.model.logit_scale))
    assert art["preprocessing"]["SIZE"] == [32, 32] and "normalize" in art["preprocessing"]["TRANSFORMS"]
    assert art["source"]["epoch"] == 2 and art["results"]["hm"] == trainer_results(trained)["hm"]
    # portable: no local path anywhere (the backbone was a weight file in a temporary folder)
    assert art["backbone"] == os.path.basename(trained["env"]["student"])
    assert not [s for s in _strings(art) if os.path.isabs(s) or str(tmp_path.parent) in s]
    # --dtype fp16 stores the tower in half precision: about half the file
    half = tmp_path / "half.pt"
    assert export_student.main([str(trained["out"]), str(half), "--dtype", "fp16"]) == 0
    assert os.path.getsize(half) < 0.6 * os.path.getsize(trained["artefact"])


def trainer_results(trained):
    with open(trained["out"] / "results.json") as f:
        return json.load(f)


def test_predict_reproduces_the_trainer_evaluation_without_teacher_or_text_encoder(trained, monkeypatch):
    import open_clip

    import trainers.common.teacher as teacher_mod

    def forbidden(*args, **kwargs):
        raise AssertionError("a teacher or a text encoder was used by predict")

    monkeypatch.setattr(clip, "encode_text", forbidden)
    monkeypatch.setattr(clip, "load", forbidden)  # no backbone weight file is read
    monkeypatch.setattr(open_clip.model.CLIP, "encode_text", forbidden)
    monkeypatch.setattr(open_clip.model, "_build_text_tower", forbidden)
    monkeypatch.setattr(teacher_mod, "build_teacher", forbidden)
    monkeypatch.setattr(teacher_mod, "load_teacher_checkpoint", forbidden)

    trainer, results = trained["trainer"], trainer_results(trained)
    for set_name in ("base", "novel"):
        es = trainer.dm.dataset.eval_sets[set_name]
        expected = trainer_probabilities(trainer, es.items, es.classnames)
        preds = predict.predict(str(trained["artefact"]), [it.impath for it in es.items], topk=len(es.classnames),
                                subset=set_name, batch_size=5)
        assert [p["image"] for p in preds] == [it.impath for it in es.items]
        for pred, row in zip(preds, expected):
            assert pred["top"][0]["class"] == es.classnames[int(row.argmax())]
            got = torch.tensor([next(t["probability"] for t in pred["top"] if t["class"] == c) for c in es.classnames])
            assert torch.allclose(got, row, atol=1e-6)
        correct = sum(p["top"][0]["class"] == es.classnames[it.label] for p, it in zip(preds, es.items))
        assert 100.0 * correct / len(es.items) == pytest.approx(results["metrics"][set_name]["accuracy"])


def _probs(preds):
    return torch.tensor([[t["probability"] for t in sorted(p["top"], key=lambda t: t["class"])] for p in preds])


def test_predict_workers_and_precisions(trained):
    """Worker processes give the same predictions in the same order (other batch sizes: within float
    rounding); fp16 / bf16 towers stay within a
    stated tolerance of fp32 (probabilities within 0.05 absolute; measured below 0.01)."""
    items = trained["trainer"].dm.dataset.test
    paths = [it.impath for it in items][:12]
    art = str(trained["artefact"])
    n = len(trained["trainer"].dm.dataset.all_classnames)
    base = predict.predict(art, paths, topk=n, batch_size=4)
    assert predict.predict(art, paths, topk=n, batch_size=4, workers=2) == base
    other = predict.predict(art, paths, topk=n, batch_size=5, workers=2)  # other batches: rounding only
    assert [p["image"] for p in other] == paths and torch.allclose(_probs(other), _probs(base), atol=1e-5)
    for precision in ("fp16", "bf16"):
        low = predict.predict(art, paths, topk=n, batch_size=4, precision=precision)
        assert [p["image"] for p in low] == paths
        assert (_probs(low) - _probs(base)).abs().max().item() < 0.05, precision


def test_predict_imports_only_inference_modules(trained, tmp_path):
    """A fresh interpreter runs tools/predict.py: no trainer, teacher, teacher-cache or dataset module is
    imported and no text tower is built."""
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    img = trained["trainer"].dm.dataset.test[0].impath
    script = tmp_path / "run_predict.py"
    script.write_text(
        "import json, runpy, sys\n"
        "import open_clip.model as m, open_clip.transformer as t\n"
        "built = []\n"
        "orig = t.TextTransformer.__init__\n"
        "def init(self, *a, **k):\n"
        "    built.append('text')\n"
        "    orig(self, *a, **k)\n"
        "t.TextTransformer.__init__ = init\n"
        f"sys.argv = ['predict.py', {str(trained['artefact'])!r}, {img!r}, '--json']\n"
        "try:\n"
        f"    runpy.run_path({os.path.join(repo, 'tools', 'predict.py')!r}, run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    code = e.code\n"
        "print('@@' + json.dumps({'code': code, 'built': built, 'modules': sorted(sys.modules)}))\n")
    proc = subprocess.run([sys.executable, str(script)], cwd=str(tmp_path), capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": repo, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(next(line[2:] for line in proc.stdout.splitlines() if line.startswith("@@")))
    assert report["code"] == 0 and report["built"] == []
    project = [m for m in report["modules"] if m.split(".")[0] in ("clip", "engine", "trainers", "datasets", "tools",
                                                                    "stage3")]
    assert not [m for m in project if m.split(".")[0] in ("trainers", "datasets")]
    assert not [m for m in project if "teacher" in m or "dataset" in m or "data_manager" in m]
    assert "stage3.model" in project and "clip.encoders" in project


def test_onnx_export_matches_pytorch(trained, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "student.onnx"
    assert predict.main([str(trained["artefact"]), "--export-onnx", str(out), "--subset", "base"]) == 0
    art = predict.load_artefact(str(trained["artefact"]))
    predictor = predict.StudentPredictor(art, subset="base")
    paths = [it.impath for it in trained["trainer"].dm.dataset.test][:5]
    images = predictor.load_images(paths)
    want = predictor.logits(images)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {"images": images.numpy()})[0])  # batch 5: the batch axis is dynamic
    assert got.shape == want.shape == (5, len(art["class_subsets"]["base"]))
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4), (got - want).abs().max()


def test_predict_cli_prints_topk_names_with_probabilities(trained, capsys):
    items = trained["trainer"].dm.dataset.eval_sets["base"].items[:2]
    paths = [it.impath for it in items]
    assert predict.main([str(trained["artefact"]), *paths, "--topk", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == paths[0] and lines[4] == paths[1] and len(lines) == 8
    names = set(trained["trainer"].dm.dataset.all_classnames)
    probs = []
    for line in lines[1:4]:
        rank, name, prob = line.split()
        assert rank in ("1.", "2.", "3.") and name in names
        probs.append(float(prob))
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-4
    assert predict.main([str(trained["artefact"]), paths[0], "--json", "--topk", "1"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert parsed[0]["image"] == paths[0] and parsed[0]["top"][0]["class"] == lines[1].split()[1]


def test_export_and_predict_errors(trained, tmp_path, capsys):
    out = trained["out"]
    # an unfinished run (no results.json) is refused with the way out
    unfinished = tmp_path / "unfinished"
    shutil.copytree(out, unfinished)
    os.remove(unfinished / "results.json")
    with pytest.raises(export_student.ExportError, match="has no results.json: the run did not finish.*--checkpoint"):
        export_student.export_student(str(unfinished), str(tmp_path / "a.pt"))
    export_student.export_student(str(unfinished), str(tmp_path / "b.pt"),
                                  checkpoint=str(unfinished / "VLPromptLearner" / "model.pth.tar-2"))
    # another trainer's run
    other = tmp_path / "ivlp_run"
    shutil.copytree(out, other)
    cfg_text = (other / "config.yaml").read_text().replace("NAME: PromptKD\n", "NAME: IVLP\n")
    (other / "config.yaml").write_text(cfg_text)
    assert export_student.main([str(other), str(tmp_path / "c.pt")]) == 2
    assert "is a IVLP run; tools/export_student.py exports PromptKD students" in capsys.readouterr().err
    # predict: not an artefact / a backbone of another size / an unreadable image
    ckpt = out / "VLPromptLearner" / "model.pth.tar-2"
    with pytest.raises(ValueError, match="is not a PromptKD student artefact"):
        predict.predict(str(ckpt), [trained["trainer"].dm.dataset.test[0].impath])
    img = trained["trainer"].dm.dataset.test[0].impath
    art = torch.load(trained["artefact"], map_location="cpu", weights_only=True)
    old = tmp_path / "v1.pt"
    torch.save({**art, "version": 1}, old)
    with pytest.raises(ValueError, match="artefact version 1 is not supported.*re-export the run"):
        predict.predict(str(old), [img])
    broken = tmp_path / "nostate.pt"
    torch.save({k: v for k, v in art.items() if k != "visual_state"}, broken)
    with pytest.raises(ValueError, match=r"lacks \['visual_state'\]"):
        predict.predict(str(broken), [img])
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    assert predict.main([str(trained["artefact"]), str(bad)]) == 2
    assert f"Cannot read image {bad}" in capsys.readouterr().err


def test_predict_benchmark_tool(trained):
    from tools import predict_benchmark

    paths = [it.impath for it in trained["trainer"].dm.dataset.test][:3]
    out = predict_benchmark.main([str(trained["artefact"]), *paths, "--repeat", "2", "--batch-size", "2",
                                  "--precision", "bf16"])
    assert out["images"] == 6 and out["images_per_s"] > 0 and out["images_per_cpu_s"] > 0
    assert out["options"] == {"batch_size": 2, "workers": 0, "precision": "bf16", "reduced_decode": True}
