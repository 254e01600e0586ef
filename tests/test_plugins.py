"""Plug-ins (``train.py --plugin``, ``PROMPTKD_PLUGINS``) and the worked example examples/plugins/kgcoop.py.

- the KgCoOp plug-in trains and evaluates through ``python train.py --plugin ...`` on a generated DTD root
  with a tiny CLIP, and its loss equals CE + W * (1 - mean cos) computed here from open_clip directly;
- a dataset registered by a plug-in (given as a module name in PROMPTKD_PLUGINS) feeds a run;
- a plug-in that reuses a registered name gets RegistryNameCollision naming the file that registered the
  name first (the built-in engine here; the Dassl test below runs the same check on a real Dassl).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import clip
import train
from engine import api, plugins
from tests.helpers.fake_roots import write_image
from tests.helpers.tiny_env import make_tiny_env

REPO = Path(__file__).resolve().parents[1]
KGCOOP = REPO / "examples" / "plugins" / "kgcoop.py"
KGCOOP_CFG = REPO / "examples" / "plugins" / "configs" / "KgCoOp"

pytestmark = pytest.mark.usefixtures("run_hygiene", "one_torch_thread")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_tiny_env(tmp_path_factory.mktemp("plugins"))


@pytest.fixture(autouse=True)
def no_env_plugins(monkeypatch):
    monkeypatch.delenv(plugins.ENV_VAR, raising=False)


def kgcoop_argv(env, out, *extra):
    return ["--root", str(env["root"]), "--seed", "1", "--trainer", "KgCoOp",
            "--dataset-config-file", str(REPO / "configs/datasets/dtd.yaml"),
            "--config-file", str(KGCOOP_CFG / "tiny_smoke.yaml"), "--output-dir", str(out), *extra,
            "MODEL.BACKBONE.NAME", str(env["student"]), "OPTIM.MAX_EPOCH", "2",
            "DATASET.NUM_SHOTS", "2", "DATASET.SUBSAMPLE_CLASSES", "base", "DATASET.EVAL_PROTOCOL", "base2novel"]


def write_plugin(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return path


# ------------------------------------------------------------------------------------------------
def test_kgcoop_trains_and_evaluates_through_the_cli(env, tmp_path):
    out = tmp_path / "kgcoop"
    child_env = {k: v for k, v in os.environ.items() if k not in (plugins.ENV_VAR, "PROMPTKD_ENGINE")}
    child_env["OMP_NUM_THREADS"] = "1"
    res = subprocess.run([sys.executable, str(REPO / "train.py"), "--plugin", str(KGCOOP), *kgcoop_argv(env, out)],
                         cwd=tmp_path, env=child_env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    assert result["trainer"] == "KgCoOp" and result["epoch"] == 2 and result["protocol"] == "base2novel"
    assert set(result["metrics"]) == {"base", "novel"}
    assert result["metrics"]["base"]["num_images"] == 4 and result["metrics"]["novel"]["num_images"] == 4
    # only the shared context trains: N_CTX 4 x text width 64 of the tiny student
    assert result["trainable_params"] == 4 * 64
    state = torch.load(out / "prompt_learner" / "model.pth.tar-2", map_location="cpu", weights_only=True)
    assert list(state["state_dict"]) == ["ctx"] and state["state_dict"]["ctx"].shape == (4, 64)
    log = (out / "log.txt").read_text()
    assert "Plug-ins: " in log and "kgcoop.py (from --plugin; trainer: KgCoOp)" in log
    assert "lambda (TRAINER.KGCOOP.W) = 8" in log
    assert "loss_kg" in (out / "metrics.csv").read_text().splitlines()[0]

    # the same checkpoint evaluated in this process (the plug-in is imported once more, here)
    ev = tmp_path / "kgcoop_eval"
    train.main(["--plugin", str(KGCOOP), *kgcoop_argv(env, ev, "--eval-only", "--model-dir", str(out),
                                                      "--load-epoch", "2")])
    assert json.loads((ev / "results.json").read_text())["metrics"] == result["metrics"]


def test_kgcoop_loss_is_ce_plus_weighted_distance_to_handcrafted_features(env, tmp_path):
    tr = train.main(["--plugin", str(KGCOOP), *kgcoop_argv(env, tmp_path / "unit", "--no-train"),
                     "TRAINER.KGCOOP.W", "3.5"])
    assert type(tr).__name__ == "KgCoOp" and tr.kg_weight == 3.5
    # the dataset's hand-crafted prompts through the frozen open_clip model, computed independently
    backbone = tr.model.backbone
    template = "a photo of a {}, a type of texture."  # the released code's DTD template
    assert tr.kg_template == template
    ids = clip.tokenize([template.format(c.replace("_", " ")) for c in tr.train_classnames],
                        clip.model_info(backbone).context_length)
    with torch.no_grad():
        ref = F.normalize(backbone.encode_text(ids).float(), dim=-1)
    assert torch.allclose(tr.kg_text_features, ref, atol=1e-6)

    batch = next(iter(tr.train_loader_x))
    tr.set_model_mode("train")
    with torch.no_grad():
        learned = tr.model.encode_text()
        logits = tr.model(batch["img"], text_features=learned)
        ce = F.cross_entropy(logits, batch["label"])
        w, wc = F.normalize(learned, dim=-1), ref
        half_sq_dist = 0.5 * ((w - wc) ** 2).sum(dim=-1).mean()  # = 1 - mean cos for unit vectors
    ctx_before = tr.model.prompt_learner.ctx.detach().clone()
    out = tr.forward_backward(batch)
    assert out["loss_ce"] == pytest.approx(ce.item(), rel=1e-5)
    assert out["loss_kg"] == pytest.approx(half_sq_dist.item(), rel=1e-4, abs=1e-7)
    assert out["loss"] == pytest.approx(ce.item() + 3.5 * half_sq_dist.item(), rel=1e-5)
    assert not torch.equal(tr.model.prompt_learner.ctx.detach(), ctx_before)  # the step updated the context


def test_dataset_plugin_from_env_as_module_name(env, tmp_path, monkeypatch):
    pkg = tmp_path / "site"
    write_plugin(pkg / "toy_shapes_plugin.py", """
        import os
        from engine.api import DATASET_REGISTRY
        from datasets.base import BenchmarkDataset, require_dir
        from datasets.utils import classnames_from_items, read_and_split_data

        @DATASET_REGISTRY.register()
        class ToyShapes(BenchmarkDataset):
            dataset_dir = "toy_shapes"

            def read_full_splits(self, cfg):
                image_dir = require_dir(os.path.join(self.dataset_dir, "images"), self.name, "image folder",
                                        "put one folder per class under toy_shapes/images")
                train, val, test = read_and_split_data(image_dir)
                self.images_listed = True
                names = classnames_from_items({"train": train, "val": val, "test": test}, self.split_source)
                return train, val, test, names
    """)
    for label, name in enumerate(["circle", "square", "triangle", "star"]):
        for i in range(10):
            write_image(tmp_path / "data" / "toy_shapes" / "images" / name / f"{i}.png", label, i)
    monkeypatch.syspath_prepend(str(pkg))
    monkeypatch.setenv(plugins.ENV_VAR, f"toy_shapes_plugin:{KGCOOP}")
    out = tmp_path / "zs"
    train.main(["--root", str(tmp_path / "data"), "--trainer", "ZeroshotCLIP", "--eval-only",
                "--config-file", str(REPO / "configs/trainers/ZeroshotCLIP/tiny_smoke.yaml"), "--output-dir", str(out),
                "--plugin", str(KGCOOP),  # given twice (environment and flag): imported once
                "DATASET.NAME", "ToyShapes", "MODEL.BACKBONE.NAME", str(env["student"]),
                "DATASET.EVAL_PROTOCOL", "base2novel"])
    result = json.loads((out / "results.json").read_text())
    assert result["dataset"] == "ToyShapes"
    # 10 images per class, 50/20/30 split: 3 test images for each of 2 base and 2 novel classes
    assert result["metrics"]["base"]["num_images"] == 6 and result["metrics"]["novel"]["num_images"] == 6
    loaded = {p.spec: p.registered for p in plugins.loaded_plugins()}
    assert loaded["toy_shapes_plugin"] == {"DATASET_REGISTRY": ["ToyShapes"]}
    assert loaded[str(KGCOOP)] == {"TRAINER_REGISTRY": ["KgCoOp"]}
    assert [p.spec for p in plugins.loaded_plugins()].count(str(KGCOOP)) == 1


def test_colliding_plugin_names_the_file_that_registered_first(tmp_path):
    bad = write_plugin(tmp_path / "my_coop.py", """
        from engine.api import TRAINER_REGISTRY
        from trainers.coop import CoOp

        @TRAINER_REGISTRY.register()
        class MyFirstTrainer(CoOp):
            pass

        @TRAINER_REGISTRY.register()
        class CoOp(CoOp):  # the built-in trainer's name
            pass
    """)
    with pytest.raises(plugins.RegistryNameCollision) as info:
        train.main(["--plugin", str(bad), "--trainer", "CoOp"])
    msg = str(info.value)
    assert f"plug-in {bad}: TRAINER_REGISTRY already has a 'CoOp', registered first by " in msg
    assert f"{os.path.join('trainers', 'coop.py')} (trainers.coop.CoOp)" in msg
    assert "Rename the plug-in's class" in msg
    # nothing of the failed plug-in stays registered; the built-in CoOp is untouched
    assert "MyFirstTrainer" not in api.TRAINER_REGISTRY
    assert api.TRAINER_REGISTRY.get("CoOp").__module__ == "trainers.coop"

    # two plug-ins that use one name: the second is reported, naming the first one's file
    first = write_plugin(tmp_path / "a" / "method.py", """
        from engine.api import TRAINER_REGISTRY
        from trainers.coop import CoOp

        @TRAINER_REGISTRY.register()
        class SharedNameTrainer(CoOp):
            pass
    """)
    second = write_plugin(tmp_path / "b" / "method.py", first.read_text())
    plugins.load_plugins([(str(first), "--plugin")])
    with pytest.raises(plugins.RegistryNameCollision, match=r"already has a 'SharedNameTrainer', registered first "
                       r"by .*a[/\\]method\.py"):
        plugins.load_plugins([(str(first), "--plugin"), (str(second), plugins.ENV_VAR)])
    api.TRAINER_REGISTRY.unregister("SharedNameTrainer")


def test_missing_or_broken_plugin_is_a_named_error(tmp_path):
    with pytest.raises(plugins.PluginError, match=r"plug-in 'nowhere/x\.py' \(from PROMPTKD_PLUGINS\) does not exist"):
        plugins.load_plugins(plugins.plugin_specs([], {plugins.ENV_VAR: "nowhere/x.py"}))
    with pytest.raises(plugins.PluginError, match=r"plug-in module 'no_such_plugin_module' \(from --plugin\) is not "
                       r"importable"):
        plugins.load_plugins(plugins.plugin_specs(["no_such_plugin_module"], {}))
    broken = write_plugin(tmp_path / "broken.py", "raise RuntimeError('boom')\n")
    with pytest.raises(plugins.PluginError, match=r"broken\.py \(from --plugin\) failed while it was imported: "
                       r"RuntimeError: boom"):
        plugins.load_plugins([(str(broken), "--plugin")])
    assert plugins.plugin_specs(["c"], {plugins.ENV_VAR: "a.py::b"}) == [
        ("a.py", plugins.ENV_VAR), ("b", plugins.ENV_VAR), ("c", "--plugin")]


def test_kgcoop_configs_merge_and_the_script_runs_it(tmp_path):
    from engine.config import add_engine_extras, merge_from_file_checked

    modules = plugins.load_plugins([(str(KGCOOP), "--plugin")])
    for path in sorted(KGCOOP_CFG.glob("*.yaml")):
        cfg = api.get_cfg_default()
        add_engine_extras(cfg)
        train.extend_cfg(cfg, modules)
        merge_from_file_checked(cfg, str(REPO / "configs/datasets/dtd.yaml"))
        merge_from_file_checked(cfg, str(path))
        assert cfg.TRAINER.KGCOOP.W == 8.0
    res = subprocess.run(["bash", str(REPO / "scripts/kgcoop/base2new_train.sh"), "dtd", "2", "TRAINER.KGCOOP.W", "2.0"],
                         cwd=tmp_path, env={**os.environ, "DRY_RUN": "1"}, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "with PROMPTKD_PLUGINS=examples/plugins/kgcoop.py" in res.stderr
    cmd = res.stdout.split()
    assert cmd[cmd.index("--config-file") + 1] == "examples/plugins/configs/KgCoOp/vit_b16_ep100_ctxv1.yaml"
    assert cmd[cmd.index("--trainer") + 1] == "KgCoOp" and cmd[-2:] == ["TRAINER.KGCOOP.W", "2.0"]


def test_results_tool_puts_the_kgcoop_paper_average_beside_ours(tmp_path):
    from tools import results as R

    datasets = ["ImageNet", "Caltech101", "OxfordPets", "StanfordCars", "OxfordFlowers", "Food101", "FGVCAircraft",
                "SUN397", "DescribableTextures", "EuroSAT", "UCF101"]
    for i, ds in enumerate(datasets):
        base, novel = 80.0 + i, 70.0 + i
        d = tmp_path / ds / "seed1"
        d.mkdir(parents=True)
        (d / "results.json").write_text(json.dumps({
            "trainer": "KgCoOp", "dataset": ds, "seed": 1, "protocol": "base2novel", "base_acc": base,
            "novel_acc": novel, "config": "examples/plugins/configs/KgCoOp/vit_b16_ep100_ctxv1.yaml",
            "metrics": {"base": {"accuracy": base}, "novel": {"accuracy": novel}}}))
    agg = R.aggregate(R.collect_runs([tmp_path]), "base2novel", R.load_paper_numbers())
    (avg,) = agg["average"]
    assert avg["n"] == 11 and avg["base"] == pytest.approx(85.0) and avg["novel"] == pytest.approx(75.0)
    # the published KgCoOp average (paper and README of its code): base 80.73, novel 73.60, HM 77.00
    assert avg["paper"] == {"table": "kgcoop_base2novel_average", "method": "KgCoOp", "base": 80.73,
                            "novel": 73.6, "hm": 77.0}
    assert avg["complete"] and avg["delta"]["base"] == pytest.approx(85.0 - 80.73)
    assert 2 * 80.73 * 73.6 / (80.73 + 73.6) == pytest.approx(77.0, abs=0.005)


@pytest.mark.dassl
def test_kgcoop_and_collision_under_real_dassl(real_dassl, env, tmp_path):
    """On a real Dassl the plug-in registers into Dassl's registry, KgCoOp trains and evaluates, and a reused
    name is our named error (Dassl's own duplicate-name KeyError names no file)."""
    bad = write_plugin(tmp_path / "dup.py", """
        from engine.api import TRAINER_REGISTRY
        from trainers.coop import CoOp

        @TRAINER_REGISTRY.register()
        class CoOp(CoOp):
            pass
    """)
    out = tmp_path / "kgcoop_dassl"
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        import train
        from engine import api, plugins
        import dassl.engine
        assert api.ENGINE_NAME == "dassl" and api.TRAINER_REGISTRY is dassl.engine.TRAINER_REGISTRY
        train.main({["--plugin", str(KGCOOP), *kgcoop_argv(env, out)]!r})
        assert dassl.engine.TRAINER_REGISTRY.get("KgCoOp").__module__.startswith("promptkd_plugin_kgcoop")
        try:
            plugins.load_plugins([({str(bad)!r}, "--plugin")])
        except plugins.RegistryNameCollision as exc:
            print("COLLISION:", exc)
        else:
            print("NO ERROR")
    """)
    child_env = {**os.environ, "PROMPTKD_ENGINE": "dassl", "OMP_NUM_THREADS": "1"}
    child_env.pop(plugins.ENV_VAR, None)
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=child_env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    assert result["trainer"] == "KgCoOp" and result["epoch"] == 2 and set(result["metrics"]) == {"base", "novel"}
    assert "COLLISION: plug-in " in res.stdout and "already has a 'CoOp', registered first by " in res.stdout
    assert f"{os.path.join('trainers', 'coop.py')} (trainers.coop.CoOp)" in res.stdout
