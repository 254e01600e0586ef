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
from tests.helpers.tiny_env import make_tiny_env, reset_run_state, stub_env_info
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
        stub_env_info(mp)
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
def test_artefact_is_small_and_self_contained(trained):
    art = torch.load(trained["artefact"], map_location="cpu", weights_only=True)
    assert art["format"] == "promptkd-student" and art["backbone"] == trained["env"]["student"]
    trainer = trained["trainer"]
    assert art["classnames"] == list(trainer.dm.dataset.all_classnames)
    assert art["class_subsets"]["base"] == trainer.dm.dataset.eval_sets["base"].classnames
    assert art["class_subsets"]["novel"] == trainer.dm.dataset.eval_sets["novel"].classnames
    assert torch.equal(art["class_vectors"], trainer.class_vectors.features)
    assert sorted(art["state_dict"]) == sorted(k for k in trainer.model.state_dict() if not k.startswith("visual."))
    assert art["preprocessing"]["SIZE"] == [32, 32] and "normalize" in art["preprocessing"]["TRANSFORMS"]
    assert art["source"]["epoch"] == 2 and art["results"]["hm"] == trainer_results(trained)["hm"]
    # only the learned tensors: a small fraction of the backbone weight file
    assert os.path.getsize(trained["artefact"]) < 0.25 * os.path.getsize(trained["env"]["student"])


def trainer_results(trained):
    with open(trained["out"] / "results.json") as f:
        return json.load(f)


def test_predict_reproduces_the_trainer_evaluation_without_teacher_or_text_encoder(trained, monkeypatch):
    import open_clip

    import trainers.common.teacher as teacher_mod

    def forbidden(*args, **kwargs):
        raise AssertionError("a teacher or a text encoder was used by predict")

    monkeypatch.setattr(clip, "encode_text", forbidden)
    monkeypatch.setattr(open_clip.model.CLIP, "encode_text", forbidden)
    monkeypatch.setattr(teacher_mod, "build_teacher", forbidden)
    monkeypatch.setattr(teacher_mod, "load_teacher_checkpoint", forbidden)

    trainer, results = trained["trainer"], trainer_results(trained)
    for set_name in ("base", "novel"):
        es = trainer.dm.dataset.eval_sets[set_name]
        expected = trainer_probabilities(trainer, es.items, es.classnames)
        preds = predict.predict(str(trained["artefact"]), [it.impath for it in es.items], topk=len(es.classnames),
                                subset=set_name)
        assert [p["image"] for p in preds] == [it.impath for it in es.items]
        for pred, row in zip(preds, expected):
            assert pred["top"][0]["class"] == es.classnames[int(row.argmax())]
            got = torch.tensor([next(t["probability"] for t in pred["top"] if t["class"] == c) for c in es.classnames])
            assert torch.allclose(got, row, atol=1e-6)
        correct = sum(p["top"][0]["class"] == es.classnames[it.label] for p, it in zip(preds, es.items))
        assert 100.0 * correct / len(es.items) == pytest.approx(results["metrics"][set_name]["accuracy"])


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
    with pytest.raises(ValueError, match=r"exported for a backbone with 64-d image features .* has 96-d features; "
                                         r"pass the student backbone of the run with --backbone"):
        predict.predict(str(trained["artefact"]), [img], backbone=trained["env"]["teacher"])
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    assert predict.main([str(trained["artefact"]), str(bad)]) == 2
    assert f"Cannot read image {bad}" in capsys.readouterr().err
