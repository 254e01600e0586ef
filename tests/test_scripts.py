"""scripts/** and configs/trainers/**: syntax, dry-run commands, referenced configs, yaml loading."""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from yacs.config import CfgNode

REPO = Path(__file__).resolve().parents[1]
# scripts/demo.sh (the README's main job) is not a per-method script: tests/test_demo_pipeline.py covers it
DEMO_SCRIPT = REPO / "scripts" / "demo.sh"
SCRIPTS = sorted(p for p in (REPO / "scripts").rglob("*.sh") if p != DEMO_SCRIPT)
METHOD_SCRIPTS = [p for p in SCRIPTS if p.parent.name not in ("tables", "lib") and p.name != "common.sh"]
TABLE_SCRIPTS = sorted((REPO / "scripts" / "tables").glob("*.sh"))
TRAINER_YAMLS = sorted((REPO / "configs" / "trainers").rglob("*.yaml"))
# variables the scripts read; removed from the test environment so the user's shell cannot leak in
SCRIPT_ENV = ("DATA", "OUTPUT_ROOT", "PYTHON", "DRY_RUN", "FORCE", "CFG", "RUN_DIR", "LOADEP", "MODEL_DIR",
              "SHOTS", "SOURCE", "SEEDS", "DATASETS", "METHODS", "SMOKE", "TEACHER_CKPT", "CLASS_VECTORS",
              "TRAIN_TEACHERS", "TEACHER_ROOT", "TEACHER_SEED", "TEACHER_PROTOCOL", "TEACHER_TRAINER", "TEMPS",
              "DEPTHS", "TEACHERS", "IMAGES_PER_CLASS", "NCTX", "CSC", "CTP", "VALUES", "REFERENCE_ROWS",
              "MAPLE_TEACHER_CKPT", "LAUNCHER", "SWEEP_ARGS", "SWEEP_PLAN")


def run_script(script, *args, cwd=REPO, **env):
    e = {k: v for k, v in os.environ.items() if k not in SCRIPT_ENV}
    e.update({k: str(v) for k, v in env.items()})
    return subprocess.run(["bash", str(script), *map(str, args)], cwd=cwd, env=e, capture_output=True,
                          text=True, timeout=120)


def commands(stdout):
    """The printed (DRY_RUN=1) command lines, split like the shell would."""
    return [shlex.split(line) for line in stdout.splitlines() if line.strip()]


def flag(cmd, name):
    return cmd[cmd.index(name) + 1]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_bash_syntax(script):
    res = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_scripts_follow_the_rules():
    for script in SCRIPTS:
        text = script.read_text()
        assert "CUDA_VISIBLE_DEVICES=" not in text, script
        assert "/ossfs" not in text, script
        assert "DATA=\"/path/to" not in text and "DATA='/" not in text, script
        assert not re.search(r"(^|\s)/(work|home|root|tmp)/", text), script  # no machine paths
        if script.name != "common.sh" and script.parent.name != "lib":  # sourced libraries
            assert text.startswith("#!/usr/bin/env bash\n"), script
            assert 'source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"' in text, script
    assert "set -euo pipefail" in (REPO / "scripts" / "common.sh").read_text()
    demo = DEMO_SCRIPT.read_text()  # the main job follows the same rules, without sourcing common.sh
    assert demo.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in demo
    assert "CUDA_VISIBLE_DEVICES=" not in demo and not re.search(r"(^|\s)/(work|home|root|tmp)/", demo)


def test_promptkd_base2new_train_dry_run():
    res = run_script(REPO / "scripts/promptkd/base2new_train.sh", "dtd", 1, DRY_RUN=1)
    assert res.returncode == 0, res.stderr
    (cmd,) = commands(res.stdout)
    assert cmd[:2] == ["python", "train.py"]
    assert flag(cmd, "--root") == "./data"
    assert flag(cmd, "--seed") == "1"
    assert flag(cmd, "--trainer") == "PromptKD"
    assert flag(cmd, "--dataset-config-file") == "configs/datasets/dtd.yaml"
    assert flag(cmd, "--config-file") == "configs/trainers/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx.yaml"
    assert flag(cmd, "--output-dir") == "output/base2new/train_base/dtd/shots_0/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx/seed_1"
    # the per-dataset KD weight and the protocol come from the yaml files, not the command line
    assert not any("KD_WEIGHT" in a or "MODAL" in a for a in cmd)
    assert cmd[-1] == flag(cmd, "--output-dir")  # no opts when none are given


def test_trailing_args_and_environment_are_passed():
    res = run_script(REPO / "scripts/promptkd/base2new_train.sh", "dtd", 2, "TRAINER.PROMPTKD.TEMPERATURE",
                     "2.0", "OPTIM.MAX_EPOCH", 3, DRY_RUN=1, DATA="/data root", TEACHER_CKPT="teachers/dtd dir",
                     OUTPUT_ROOT="out")
    assert res.returncode == 0, res.stderr
    (cmd,) = commands(res.stdout)
    assert flag(cmd, "--root") == "/data root"
    assert flag(cmd, "--output-dir").startswith("out/base2new/train_base/dtd/")
    # teacher opts from the environment first, then the trailing KEY VALUE pairs, in order
    assert cmd[-6:] == ["TRAINER.PROMPTKD.TEACHER_CKPT", "teachers/dtd dir", "TRAINER.PROMPTKD.TEMPERATURE", "2.0",
                        "OPTIM.MAX_EPOCH", "3"]


def test_relative_data_path_is_kept_relative_to_the_caller(tmp_path):
    res = run_script(REPO / "scripts/promptkd/xd_train.sh", "eurosat", 3, cwd=tmp_path, DRY_RUN=1, DATA="mydata")
    assert res.returncode == 0, res.stderr
    (cmd,) = commands(res.stdout)
    assert flag(cmd, "--root") == str(tmp_path / "mydata")
    assert flag(cmd, "--output-dir") == "output/eurosat/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx_cross_datasets_0shots/seed3"


def test_baseline_scripts_keep_reference_output_dirs():
    expect = {
        "promptsrc/base2new_train.sh": "output/base2new/train_base/dtd/shots_16/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx/seed1",
        "promptsrc/base2new_test.sh": "output/base2new/test_new/dtd/shots_16/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx/seed1",
        "maple/base2new_test.sh": "output/base2new/test_new/dtd/shots_16/MaPLe/vit_b16_c2_ep5_batch4_2ctx/seed1",
        "cocoop/xd_test.sh": "output/evaluation/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1_16shots/dtd/seed1",
        "ivlp/base2new_train.sh": "output/base2new/train_base/dtd/shots_16/IVLP/vit_b16_c2_ep20_batch4_4+4ctx/seed1",
    }
    for rel, out in expect.items():
        res = run_script(REPO / "scripts" / rel, "dtd", 1, DRY_RUN=1)
        assert res.returncode == 0, (rel, res.stderr)
        (cmd,) = commands(res.stdout)
        assert flag(cmd, "--output-dir") == out, rel
    res = run_script(REPO / "scripts/maple/base2new_test.sh", "dtd", 1, DRY_RUN=1)
    (cmd,) = commands(res.stdout)
    # evaluation of the train_base checkpoint at the config's last epoch (MaPLe: 5) on the new classes
    assert flag(cmd, "--model-dir") == expect["maple/base2new_test.sh"].replace("test_new", "train_base")
    assert flag(cmd, "--load-epoch") == "5" and "--eval-only" in cmd
    assert cmd[cmd.index("DATASET.SUBSAMPLE_CLASSES") + 1] == "new"


def test_bad_arguments_fail_with_a_clear_message():
    script = REPO / "scripts/promptkd/base2new_train.sh"
    res = run_script(script, "dtdd", 1, DRY_RUN=1)
    assert res.returncode == 2 and "unknown dataset 'dtdd'" in res.stderr and "dtd" in res.stderr
    res = run_script(script, "dtd", DRY_RUN=1)
    assert res.returncode == 2 and "Usage:" in res.stderr
    res = run_script(script, "dtd", "one", DRY_RUN=1)
    assert res.returncode == 2 and "SEED must be a non-negative integer" in res.stderr
    res = run_script(script, "dtd", 1, DRY_RUN=1, CFG="no_such_cfg")
    assert res.returncode == 2 and "configs/trainers/PromptKD/no_such_cfg.yaml not found" in res.stderr
    res = run_script(script, "dtd", 1, DATA="/nonexistent/data/root")  # real run: the data root is checked
    assert res.returncode == 2 and "data root DATA=/nonexistent/data/root does not exist" in res.stderr


def test_finished_runs_are_skipped_unless_forced(tmp_path):
    script = REPO / "scripts/promptkd/base2new_test.sh"
    res = run_script(script, "dtd", 1, DRY_RUN=1, OUTPUT_ROOT=tmp_path)
    (cmd,) = commands(res.stdout)
    out = Path(flag(cmd, "--output-dir"))
    assert flag(cmd, "--model-dir") == str(tmp_path / "base2new/train_base/dtd/shots_0/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx/seed_1")
    out.mkdir(parents=True)
    (out / "results.json").write_text("{}")
    # results.json without DONE: killed between the two, so the job runs again (it resumes)
    res = run_script(script, "dtd", 1, DRY_RUN=1, OUTPUT_ROOT=tmp_path)
    assert res.returncode == 0 and len(commands(res.stdout)) == 1
    (out / "DONE").write_text("{}")
    res = run_script(script, "dtd", 1, DRY_RUN=1, OUTPUT_ROOT=tmp_path)
    assert res.returncode == 0 and res.stdout == "" and "skipping" in res.stderr
    res = run_script(script, "dtd", 1, DRY_RUN=1, OUTPUT_ROOT=tmp_path, FORCE=1)
    assert len(commands(res.stdout)) == 1


def _config_paths(cmds):
    for cmd in cmds:
        if cmd[:2] == ["python", "train.py"]:
            yield flag(cmd, "--config-file")
            yield flag(cmd, "--dataset-config-file")


@pytest.mark.parametrize("script", METHOD_SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_method_script_points_at_existing_configs(script):
    second = "vit_b16" if script.name == "zeroshot.sh" else ("4" if script.name == "few_shot.sh" else "1")
    args = {"main.sh": ["vit_b16", "end", "16", "1", "False"], "eval.sh": ["vit_b16_ep50"]}.get(script.name, [second])
    res = run_script(script, "dtd", *args, DRY_RUN=1)
    assert res.returncode == 0, res.stderr
    paths = list(_config_paths(commands(res.stdout)))
    assert paths, res.stdout
    for p in paths:
        assert (REPO / p).is_file(), f"{script.name} references missing {p}"


@pytest.mark.parametrize("smoke", ["0", "1"])
@pytest.mark.parametrize("script", [p for p in TABLE_SCRIPTS if p.name != "table7_inference_cost.sh"],
                         ids=lambda p: p.name)
def test_table_scripts_dry_run(script, smoke):
    env = dict(DRY_RUN=1, SMOKE=smoke, DATASETS="dtd eurosat", METHODS="zsclip coop cocoop maple promptsrc promptkd",
               OUTPUT_ROOT="o")
    if smoke == "0":
        env["SEEDS"] = "1 2"  # SMOKE=1 defaults to one seed
    res = run_script(script, **env)
    assert res.returncode == 0, res.stderr
    cmds = commands(res.stdout)
    for p in _config_paths(cmds):
        assert (REPO / p).is_file(), f"{script.name} references missing {p}"
        if smoke == "1" and "trainers" in p:
            assert Path(p).stem.startswith("tiny_smoke"), p
    trains = [c for c in cmds if c[:2] == ["python", "train.py"]]
    assert trains
    seeds = {flag(c, "--seed") for c in trains if "--seed" in c}
    assert seeds == ({"1", "2"} if smoke == "0" else {"1"}) or "teacher_type" in script.name
    # the table is built by tools/results.py at the end
    assert cmds[-1][:2] == ["python", "tools/results.py"]
    assert "--table" in cmds[-1] and "--out" in cmds[-1]


def test_table1_runs_every_method_dataset_and_seed():
    res = run_script(REPO / "scripts/tables/table1_base2new.sh", DRY_RUN=1, SEEDS="1 2 3", DATASETS="dtd eurosat")
    assert res.returncode == 0, res.stderr
    trains = [c for c in commands(res.stdout) if c[:2] == ["python", "train.py"]]
    got = {(flag(c, "--trainer"), flag(c, "--dataset-config-file"), flag(c, "--seed")) for c in trains}
    for trainer in ("CoOp", "CoCoOp", "MaPLe", "PromptSRC", "PromptKD"):
        for ds in ("dtd", "eurosat"):
            for s in "123":
                assert (trainer, f"configs/datasets/{ds}.yaml", s) in got
    zs = [c for c in trains if flag(c, "--trainer") == "ZeroshotCLIP"]
    assert len(zs) == 2 and all("--eval-only" in c for c in zs)  # deterministic: one seed per dataset
    kd = [c for c in trains if flag(c, "--trainer") == "PromptKD"]
    ckpts = {c[c.index("TRAINER.PROMPTKD.TEACHER_CKPT") + 1] for c in kd}
    assert ckpts == {"teacher_model/DescribableTextures/VLPromptLearner", "teacher_model/EuroSAT/VLPromptLearner"}


def test_table7_calls_the_benchmark_tool():
    res = run_script(REPO / "scripts/tables/table7_inference_cost.sh", "--device", "cpu", DRY_RUN=1)
    assert res.returncode == 0, res.stderr
    assert commands(res.stdout) == [["python", "tools/benchmark.py", "--device", "cpu"]]


def test_config_maps_in_common_sh_point_at_existing_files():
    text = (REPO / "scripts" / "common.sh").read_text()
    trainer_of = dict(re.findall(r"\[(\w+)\]=(\w+)", re.search(r"TRAINER_OF=\((.*?)\n\)", text, re.S).group(1)))
    assert set(trainer_of) >= {"promptkd", "promptsrc", "ivlp", "maple", "cocoop", "coop", "zsclip", "teacher"}
    n = 0
    for array in ("B2N_CFG", "XD_CFG", "SMOKE_CFG", "SMOKE_XD_CFG"):
        body = re.search(array + r"=\((.*?)\n\)", text, re.S).group(1)
        for method, cfg in re.findall(r"\[(\w+)\]=\"?([\w.+-]+)\"?", body):
            path = REPO / "configs" / "trainers" / trainer_of[method] / f"{cfg}.yaml"
            assert path.is_file(), f"{array}[{method}] -> missing {path}"
            n += 1
    assert n >= 20
    # literal config paths anywhere in the scripts exist too
    for script in SCRIPTS:
        for p in re.findall(r"configs/(?:trainers|datasets)/[\w.+/-]+\.yaml", script.read_text()):
            assert (REPO / p).is_file(), f"{script.name}: {p}"


@pytest.mark.parametrize("path", TRAINER_YAMLS, ids=lambda p: str(p.relative_to(REPO / "configs/trainers")))
def test_trainer_yaml_loads_with_yacs(path):
    with open(path) as f:
        cfg = CfgNode.load_cfg(f)  # yacs' safe yaml loader
    if path.stem.startswith("proving_ground"):
        # the proving-ground dataset yaml owns INPUT (32 px images); these trainer files must not touch it
        assert "INPUT" not in cfg
    else:
        assert cfg.INPUT.INTERPOLATION == "bicubic" and cfg.INPUT.PIXEL_MEAN == [0.48145466, 0.4578275, 0.40821073]
    if "OPTIM" in cfg:
        assert cfg.OPTIM.NAME == "sgd" and cfg.OPTIM.LR_SCHEDULER == "cosine"
        assert isinstance(cfg.OPTIM.WARMUP_CONS_LR, float)
    if "TEST" in cfg:
        assert cfg.TEST.FINAL_MODEL == "last_step"
    if path.stem.startswith("tiny_smoke"):
        assert cfg.INPUT.SIZE == "(32, 32)" and cfg.DATALOADER.NUM_WORKERS == 0
        assert cfg.MODEL.BACKBONE.NAME.startswith("tiny-vit-") and cfg.MODEL.BACKBONE.ALLOW_RANDOM_INIT is True
        assert cfg.DATALOADER.TRAIN_X.BATCH_SIZE == 4
        assert "OPTIM" not in cfg or cfg.OPTIM.MAX_EPOCH <= 2
        node = [v for v in cfg.get("TRAINER", {}).values() if isinstance(v, dict)]
        assert all(n["PREC"] == "fp32" for n in node)
    if path.parent.name == "PromptKD":
        if path.stem.endswith("cross_datasets"):  # cross-dataset / DG: the reference's 1000 for every target
            assert cfg.TRAINER.PROMPTKD.KD_WEIGHT == 1000.0
        else:  # base-to-novel: the per-dataset value lives in configs/datasets
            assert "KD_WEIGHT" not in cfg.TRAINER.PROMPTKD
        assert cfg.DATASET.TRAIN_LABELS == "drop"


def _full_default_cfg():
    sys.path.insert(0, str(REPO))
    import train
    from engine import api
    from engine.config import add_engine_extras

    cfg = api.get_cfg_default()
    add_engine_extras(cfg)
    train.extend_cfg(cfg)
    return cfg


def test_trainer_yamls_merge_into_the_project_config():
    """Every key of every trainer yaml exists in the project's config (catches key typos)."""
    from engine.config import merge_from_file_checked

    for path in TRAINER_YAMLS:
        cfg = _full_default_cfg()
        merge_from_file_checked(cfg, str(REPO / "configs/datasets/dtd.yaml"))
        merge_from_file_checked(cfg, str(path))
        if path.parent.name == "PromptKD":
            assert cfg.TEST.FINAL_MODEL == "last_step"
    kd = _full_default_cfg()
    merge_from_file_checked(kd, str(REPO / "configs/trainers/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx.yaml"))
    assert (kd.DATASET.EVAL_PROTOCOL, kd.DATASET.SUBSAMPLE_CLASSES, kd.DATASET.NUM_SHOTS) == ("base2novel", "all", 0)
    assert kd.OPTIM.LR == 0.005 and kd.DATALOADER.TRAIN_X.BATCH_SIZE == 8 and kd.OPTIM.MAX_EPOCH == 20
    big = _full_default_cfg()
    merge_from_file_checked(big, str(REPO / "configs/trainers/PromptKD/vit_b16_c2_ep20_batch256_lr0.16_imagenet.yaml"))
    assert big.OPTIM.LR == pytest.approx(0.005 * 256 / 8) and big.DATALOADER.TRAIN_X.BATCH_SIZE == 256
    xd = _full_default_cfg()
    merge_from_file_checked(xd, str(REPO / "configs/trainers/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx_cross_datasets.yaml"))
    assert (xd.DATASET.EVAL_PROTOCOL, xd.TRAINER.MODAL, xd.TRAINER.PROMPTKD.PROMPT_DEPTH_VISION) == ("subsample", "cross", 3)


def test_kd_weight_per_protocol():
    """Base-to-novel keeps the dataset yaml's weight (200 for DTD / FGVCAircraft / OxfordFlowers, 1000
    otherwise); the cross-dataset / DG yamls, merged after the dataset yaml, give 1000 for every target."""
    from engine.config import merge_from_file_checked

    expected_b2n = {"dtd": 200.0, "fgvc_aircraft": 200.0, "oxford_flowers": 200.0, "caltech101": 1000.0,
                    "eurosat": 1000.0, "imagenet": 1000.0}
    b2n = ("vit_b16_c2_ep20_batch8_4+4ctx", "tiny_smoke")
    xd = ("vit_b16_c2_ep20_batch8_4+4ctx_cross_datasets", "tiny_smoke_cross_datasets")
    for dataset, weight in expected_b2n.items():
        for name in b2n + xd:
            cfg = _full_default_cfg()
            merge_from_file_checked(cfg, str(REPO / f"configs/datasets/{dataset}.yaml"))
            merge_from_file_checked(cfg, str(REPO / f"configs/trainers/PromptKD/{name}.yaml"))
            assert cfg.TRAINER.PROMPTKD.KD_WEIGHT == (weight if name in b2n else 1000.0), (dataset, name)
    for variant in ("imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r"):
        cfg = _full_default_cfg()
        merge_from_file_checked(cfg, str(REPO / f"configs/datasets/{variant}.yaml"))
        merge_from_file_checked(cfg, str(REPO / f"configs/trainers/PromptKD/{xd[0]}.yaml"))
        assert cfg.TRAINER.PROMPTKD.KD_WEIGHT == 1000.0


def test_zero_shot_script_end_to_end(tmp_path):
    """A real (tiny) run through a script, train.py and tools/results.py."""
    sys.path.insert(0, str(REPO / "tests"))
    from helpers.fake_roots import make_root

    data = make_root("dtd", tmp_path / "data")
    res = run_script(REPO / "scripts/zsclip/base2new_test.sh", "dtd", 1, DATA=data, OUTPUT_ROOT=tmp_path / "out",
                     CFG="tiny_smoke")
    assert res.returncode == 0, res.stderr[-3000:] + res.stdout[-3000:]
    run_dir = tmp_path / "out/base2new/zeroshot/dtd/ZeroshotCLIP/tiny_smoke/seed1"
    result = json.loads((run_dir / "results.json").read_text())
    assert result["trainer"] == "ZeroshotCLIP" and result["protocol"] == "base2novel"
    from tools import results as R

    agg = R.aggregate(R.collect_runs([tmp_path / "out"]), "base2novel", R.load_paper_numbers())
    (row,) = agg["rows"]
    assert row["base"]["mean"] == pytest.approx(result["base_acc"])
    assert row["novel"]["mean"] == pytest.approx(result["novel_acc"])
    assert row["paper"]["hm"] == 56.37  # CLIP row of Table 1, DTD
    # a second call finds DONE and skips the job
    res = run_script(REPO / "scripts/zsclip/base2new_test.sh", "dtd", 1, DATA=data, OUTPUT_ROOT=tmp_path / "out",
                     CFG="tiny_smoke")
    assert res.returncode == 0 and "skipping" in res.stderr


# The reference repositories' own entry points (thin wrappers here). Each pattern is the output folder the
# reference script builds, transcribed from that script (repository and path in the comment) into a
# format string, so the expected folder is derived independently of scripts/common.sh.
REFERENCE_CALL_FORMS = [
    # KaiyangZhou/CoOp scripts/coop/main.sh: DATASET CFG CTP NCTX SHOTS CSC, loop over seeds 1 2 3
    ("coop/main.sh", ["caltech101", "rn50_ep50", "middle", "16", "2", "True"],
     dict(dataset="caltech101", cfg="rn50_ep50", ctp="middle", nctx="16", shots="2", csc="True"),
     "output/{dataset}/CoOp/{cfg}_{shots}shots/nctx{nctx}_csc{csc}_ctp{ctp}/seed{seed}", [1, 2, 3]),
    # KaiyangZhou/CoOp scripts/coop/eval.sh: DATASET CFG; SHOTS 16, NCTX 16, CSC False, CTP end fixed; seeds 1 2 3
    ("coop/eval.sh", ["imagenet_sketch", "vit_b16_ep50"],
     dict(dataset="imagenet_sketch", cfg="vit_b16_ep50", shots="16", nctx="16", csc="False", ctp="end"),
     "output/evaluation/CoOp/{cfg}_{shots}shots/nctx{nctx}_csc{csc}_ctp{ctp}/{dataset}/seed{seed}", [1, 2, 3]),
    # KaiyangZhou/CoOp scripts/cocoop/xd_train.sh: SEED; DATASET imagenet, CFG vit_b16_c4_ep10_batch1_ctxv1, SHOTS 16
    ("cocoop/xd_train.sh", ["2"], dict(dataset="imagenet", cfg="vit_b16_c4_ep10_batch1_ctxv1", shots="16"),
     "output/{dataset}/CoCoOp/{cfg}_{shots}shots/seed{seed}", [2]),
    # muzairkhattak/multimodal-prompt-learning scripts/maple/base2new_train_maple.sh: DATASET SEED
    ("maple/base2new_train_maple.sh", ["eurosat", "3"], dict(dataset="eurosat", cfg="vit_b16_c2_ep5_batch4_2ctx", shots="16"),
     "output/base2new/train_base/{dataset}/shots_{shots}/MaPLe/{cfg}/seed{seed}", [3]),
    # muzairkhattak/multimodal-prompt-learning scripts/maple/base2new_test_maple.sh: DATASET SEED (SUB new)
    ("maple/base2new_test_maple.sh", ["eurosat", "3"], dict(dataset="eurosat", cfg="vit_b16_c2_ep5_batch4_2ctx", shots="16"),
     "output/base2new/test_new/{dataset}/shots_{shots}/MaPLe/{cfg}/seed{seed}", [3]),
    # muzairkhattak/multimodal-prompt-learning scripts/maple/xd_train_maple.sh: DATASET SEED
    ("maple/xd_train_maple.sh", ["imagenet", "1"],
     dict(dataset="imagenet", cfg="vit_b16_c2_ep5_batch4_2ctx_cross_datasets", shots="16"),
     "output/{dataset}/MaPLe/{cfg}_{shots}shots/seed{seed}", [1]),
    # muzairkhattak/multimodal-prompt-learning scripts/maple/xd_test_maple.sh: DATASET SEED
    ("maple/xd_test_maple.sh", ["imagenet_a", "1"],
     dict(dataset="imagenet_a", cfg="vit_b16_c2_ep5_batch4_2ctx_cross_datasets", shots="16"),
     "output/evaluation/MaPLe/{cfg}_{shots}shots/{dataset}/seed{seed}", [1]),
    # muzairkhattak/multimodal-prompt-learning scripts/independent-vlp/base2new_train_ivlp.sh: DATASET SEED
    ("independent-vlp/base2new_train_ivlp.sh", ["dtd", "2"], dict(dataset="dtd", cfg="vit_b16_c2_ep5_batch4_2+2ctx", shots="16"),
     "output/base2new/train_base/{dataset}/shots_{shots}/IVLP/{cfg}/seed{seed}", [2]),
    # muzairkhattak/multimodal-prompt-learning scripts/independent-vlp/base2new_test_ivlp.sh: DATASET SEED (SUB new)
    ("independent-vlp/base2new_test_ivlp.sh", ["dtd", "2"], dict(dataset="dtd", cfg="vit_b16_c2_ep5_batch4_2+2ctx", shots="16"),
     "output/base2new/test_new/{dataset}/shots_{shots}/IVLP/{cfg}/seed{seed}", [2]),
]


@pytest.mark.parametrize("rel,args,values,pattern,seeds", REFERENCE_CALL_FORMS, ids=[c[0] for c in REFERENCE_CALL_FORMS])
def test_reference_call_forms_dry_run(rel, args, values, pattern, seeds):
    """The reference command line works here and writes to the reference's output folder."""
    res = run_script(REPO / "scripts" / rel, *args, DRY_RUN=1)
    assert res.returncode == 0, res.stderr
    cmds = commands(res.stdout)
    assert [flag(c, "--output-dir") for c in cmds] == [pattern.format(seed=s, **values) for s in seeds]
    for cmd, seed in zip(cmds, seeds):
        assert flag(cmd, "--seed") == str(seed) and flag(cmd, "--dataset-config-file") == f"configs/datasets/{values['dataset']}.yaml"
        assert flag(cmd, "--config-file").endswith(f"/{values['cfg']}.yaml")
        assert (REPO / flag(cmd, "--config-file")).is_file()
    if rel == "coop/main.sh":
        for cmd in cmds:
            opts = dict(zip(cmd[cmd.index("DATASET.NUM_SHOTS")::2], cmd[cmd.index("DATASET.NUM_SHOTS") + 1::2]))
            assert opts["DATASET.NUM_SHOTS"] == "2" and opts["TRAINER.COOP.N_CTX"] == "16"
            assert opts["TRAINER.COOP.CSC"] == "True" and opts["TRAINER.COOP.CLASS_TOKEN_POSITION"] == "middle"
    if rel == "coop/eval.sh":  # the reference loads epoch 50 of the ImageNet model trained by main.sh
        assert [flag(c, "--model-dir") for c in cmds] == [
            f"output/imagenet/CoOp/vit_b16_ep50_16shots/nctx16_cscFalse_ctpend/seed{s}" for s in seeds]
        assert all(flag(c, "--load-epoch") == "50" and "--eval-only" in c for c in cmds)
    if rel.endswith("base2new_test_maple.sh") or rel.endswith("base2new_test_ivlp.sh"):
        (cmd,) = cmds
        assert flag(cmd, "--model-dir") == pattern.replace("test_new", "train_base").format(seed=seeds[0], **values)
        assert flag(cmd, "--load-epoch") == "5" and cmd[cmd.index("DATASET.SUBSAMPLE_CLASSES") + 1] == "new"
    if rel == "maple/xd_test_maple.sh":
        (cmd,) = cmds
        assert flag(cmd, "--load-epoch") == "2"
        assert flag(cmd, "--model-dir") == f"output/imagenet/MaPLe/{values['cfg']}_16shots/seed1"


def test_reference_call_forms_reject_bad_arguments():
    res = run_script(REPO / "scripts/coop/main.sh", "caltech101", "rn50_ep50", "end", "16", DRY_RUN=1)
    assert res.returncode == 2 and "expected 6 arguments, got 4" in res.stderr and "DATASET CFG CTP NCTX SHOTS CSC" in res.stderr
    res = run_script(REPO / "scripts/coop/main.sh", "caltech101", "rn50_ep50", "end", "16", "1", "yes", DRY_RUN=1)
    assert res.returncode == 2 and "CSC must be True or False, got 'yes'" in res.stderr
    res = run_script(REPO / "scripts/coop/eval.sh", "imagenetv2", DRY_RUN=1)
    assert res.returncode == 2 and "Usage:" in res.stderr
    res = run_script(REPO / "scripts/cocoop/xd_train.sh", "one", DRY_RUN=1)
    assert res.returncode == 2 and "Usage:" in res.stderr
