"""docs/RESULTS.md's machinery (proving_ground/experiments.py, protocols.py, results_doc.py).

Unit tests: the cross-dataset / DG datasets have the class sets and styles they claim, the plan changes one key
per ablation row and wires every evaluation to the run it evaluates, the verdict rule. The slow test runs the
reduced variant of the regenerating command end to end (reduced world, one seed) and checks the document against
the runs' own results.json files.
"""
import json
import statistics
from pathlib import Path

import pytest

from proving_ground import experiments as E
from proving_ground import protocols
from proving_ground import results_doc as D
from proving_ground.build import preset
from proving_ground.world import classnames
from tests.test_demo_pipeline import _argv_opts, _res

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------------------------------------- datasets
@pytest.mark.parametrize("name", ["default", "reduced"])
def test_protocol_datasets_have_the_class_sets_and_styles_they_claim(name):
    world = preset(name).world
    by_name = {d.name: d for d in protocols.protocol_datasets(world)}
    source = set(classnames(by_name[protocols.SOURCE].world))
    assert len(source) == world.num_classes // 2
    a, b = (set(classnames(by_name[n].world)) for n in protocols.CROSS_TARGETS)
    assert a and b and not (a & source) and not (b & source) and not (a & b)  # disjoint class sets
    for n in protocols.DG_TARGETS:
        dg = by_name[n].world
        assert set(classnames(dg)) == source and dg.image_size == world.image_size
        assert dg.seed != by_name[protocols.SOURCE].world.seed  # other images
    src_style = by_name[protocols.SOURCE].world.target
    assert by_name["DG-V2"].world.target == src_style
    assert by_name["DG-F"].world.target.contrast[1] < src_style.contrast[0]
    assert by_name["DG-C"].world.target.scale[1] < src_style.scale[1]
    assert {t for t, _ in by_name["DG-R"].world.target.textures} == {"striped", "checkered"}
    assert len({d.world.digest() for d in by_name.values()}) == len(by_name)  # one data root each
    with pytest.raises(ValueError, match="at least 4 colours and 4 shapes"):
        protocols.protocol_datasets(preset("tiny").world)


def test_protocol_dataset_is_read_under_its_own_name(tmp_path):
    """The registered ProvingGround reader serves every protocol dataset; results carry world.json's name."""
    import datasets
    from engine.api import DATASET_REGISTRY, get_cfg_default
    from proving_ground.dataset import DatasetConfig, write_dataset

    world = next(d.world for d in protocols.protocol_datasets(preset("reduced").world) if d.name == "PG-XD-A")
    write_dataset(world, DatasetConfig(2, 1, 2), tmp_path, name="PG-XD-A")
    cfg = get_cfg_default()
    datasets.extend_cfg(cfg)
    cfg.DATASET.ROOT, cfg.DATASET.NAME = str(tmp_path), "ProvingGround"
    ds = DATASET_REGISTRY.get("ProvingGround")(cfg)
    assert ds.display_name == "PG-XD-A" and ds.all_classnames == classnames(world)


# ---------------------------------------------------------------------------------------------- plan
def test_plan_changes_one_key_per_ablation_row_and_wires_every_evaluation(tmp_path):
    res = _res(tmp_path / "pg", preset("default"))
    roots = {n: tmp_path / "data" / n for n in (protocols.SOURCE, *protocols.CROSS_TARGETS, *protocols.DG_TARGETS)}
    specs = E.Planner(res, roots, tmp_path / "out", train_per_class=80).plan([1, 2])
    by_key = {s.key: s for s in specs}
    assert len(by_key) == len(specs)
    assert all(n in by_key for s in specs for n in s.needs)  # every dependency is planned
    ref = _argv_opts(by_key["ablation/kd_reference/seed1"].argv)
    assert ref["DATASET.MAX_IMAGES_PER_CLASS"] == "40"  # half of 80
    assert ref["TRAINER.PROMPTKD.TEACHER_CKPT"] == str(Path(by_key["b2n/teacher_promptsrc/seed1"].out_dir))
    for row, (_, opts, capped) in E.ABLATION_ROWS.items():
        got = _argv_opts(by_key[f"ablation/{row}/seed1"].argv)
        changed = {k for k in set(got) | set(ref) if got.get(k) != ref.get(k)}
        expected = set(opts[::2]) | (set() if capped else {"DATASET.MAX_IMAGES_PER_CLASS"})
        if row == "kd_teacher_maple":
            expected.add("TRAINER.PROMPTKD.TEACHER_CKPT")
            assert got["TRAINER.PROMPTKD.TEACHER_CKPT"] == str(Path(by_key["ablation/teacher_maple/seed1"].out_dir))
        if row == "kd_ensemble":
            expected |= {"TRAINER.PROMPTKD.ENSEMBLE." + k for k in ("NAMES", "CKPTS", "CLASS_VECTORS")}
        assert changed == expected, row
    # evaluations load the source run of the same seed at its last epoch; PromptKD students distil on the target
    for name in (*protocols.CROSS_TARGETS, *protocols.DG_TARGETS):
        for row, epoch in (("student_coop", "50"), ("student_promptsrc", "20"), ("teacher_promptsrc", "20")):
            spec = by_key[f"xd/{name}/{row}/seed2"]
            argv = spec.argv
            source_run = by_key[f"xd/{protocols.SOURCE}/{row}/seed2"].out_dir
            assert argv[argv.index("--model-dir") + 1] == str(Path(source_run)) and "--eval-only" in argv
            assert argv[argv.index("--load-epoch") + 1] == epoch and argv[argv.index("--root") + 1] == str(roots[name])
        kd = by_key[f"xd/{name}/student_promptkd/seed2"]
        opts = _argv_opts(kd.argv)
        assert opts["TRAINER.PROMPTKD.TEACHER_CKPT"] == str(Path(by_key[f"xd/{protocols.SOURCE}/teacher_promptsrc/seed2"].out_dir))
        assert opts["TRAINER.PROMPTKD.CLASS_VECTORS"].startswith(str(Path(kd.out_dir)))  # per target: own classes
        assert kd.argv[kd.argv.index("--config-file") + 1].endswith("proving_ground_cross_datasets.yaml")
        # the diagnostics: KD weight x C / 64 and the base-to-novel student's 1,600 steps (5120 images / 32 x 10)
        classes = 16 if name in protocols.CROSS_TARGETS else 32
        scaled = _argv_opts(by_key[f"xd/{name}/student_promptkd_scaled/seed2"].argv)
        assert float(scaled["TRAINER.PROMPTKD.KD_WEIGHT"]) == 1000.0 * classes / 64
        steps = _argv_opts(by_key[f"xd/{name}/student_promptkd_steps/seed2"].argv)
        assert int(steps["OPTIM.MAX_EPOCH"]) * (classes * 64 // 32) == 1600
    assert "xd/PG-Source/student_promptkd/seed1" not in by_key
    assert sorted(specs, key=lambda s: s.priority)[0].rank == 0  # teachers first


def test_verdict_rule_needs_the_mean_and_a_majority_of_seeds():
    assert D.compare((2.0, {1: 3, 2: 3, 3: 0}), (1.0, {1: 1, 2: 1, 3: 1}))["verdict"] == D.HOLDS
    # the mean is higher but only one seed of three is
    assert D.compare((2.0, {1: 6, 2: 0, 3: 0}), (1.0, {1: 1, 2: 1, 3: 1}))["verdict"] == D.FAILS
    r = D.compare((1.0, {1: 1}), (2.0, {1: 2}))
    assert r["verdict"] == D.FAILS and r["diff"] == -1.0 and r["seeds"] == "0/1"
    assert D.compare((95.0, {1: 95}), (100.0, {1: 100}), factor=0.9)["verdict"] == D.HOLDS  # ratio claims
    assert D.compare(None, (1.0, {1: 1}))["verdict"] == D.NOT_MEASURABLE


def test_cli_refuses_bad_arguments_before_building(capsys, tmp_path):
    assert E.main(["--seeds", "1", "1", "--out", str(tmp_path / "x")]) == 2
    assert "seeds must be distinct" in capsys.readouterr().err
    assert E.main(["--build-json", str(tmp_path / "missing.json"), "--out", str(tmp_path / "x")]) == 2
    assert "missing.json" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------------- document
def _synthetic_runs(tmp_path, seeds=(1, 2)):
    """Every planned run as a finished run folder with known numbers (results.json + log.txt)."""
    from engine.run_record import RunRecord, write_run_record

    res = _res(tmp_path / "pg", preset("default"))
    roots = {n: tmp_path / "data" / n for n in (protocols.SOURCE, *protocols.CROSS_TARGETS, *protocols.DG_TARGETS)}
    specs = E.Planner(res, roots, tmp_path / "out", train_per_class=80).plan(list(seeds))
    # every row scores its own level + the seed; PromptKD rows score highest, feature L1 above the KL reference
    level = {"student PromptKD": 80, "feature L1": 75, "PromptKD (ablation setting)": 70}
    for i, spec in enumerate(specs):
        run = Path(spec.out_dir)
        run.mkdir(parents=True)
        (run / "log.txt").write_text("...\nElapsed: 0:00:10\n")
        value = level.get(spec.label, 50 + (i % 7)) + spec.seed
        xd = spec.key.startswith("xd/")
        record = RunRecord(trainer=spec.trainer, dataset=spec.key.split("/")[1] if xd else "ProvingGround",
                           seed=spec.seed, label=spec.label, config=spec.argv[spec.argv.index("--config-file") + 1],
                           accuracy=value if xd else None, base_acc=None if xd else value + 4,
                           novel_acc=None if xd else value - 4)
        write_run_record(record, run / "results.json")
    return specs, {"specs": {s.key: s.out_dir for s in specs}, "seeds": list(seeds), "jobs": 2,
                   "runs": {s.key: {} for s in specs}, "seconds": {"build": 1.0},
                   "world": {"classes": 64, "colours": 8, "shapes": 8, "image_size": 32, "train_per_class": 80,
                             "ablation_images": 40, "preset": "default"}}


def test_document_tables_and_verdicts_come_from_the_runs(tmp_path):
    specs, record = _synthetic_runs(tmp_path)
    doc = D.write_document(tmp_path / "docs" / "RESULTS.md", record)
    text = doc.read_text()
    assert f"take {10 * len(specs)} s of one core" in text  # the logged elapsed times, summed
    # the PromptKD row of Table 1: mean over seeds 1, 2 of base (84 + s) and novel (76 + s), HM of the means
    b, n = 85.5, 77.5
    row = next(l for l in text.split("## Table 1 analogue")[1].splitlines() if l.startswith("| student PromptKD |"))
    assert f"{b:.2f} +- 0.50" in row and f"**{2 * b * n / (b + n):.2f}**" in row
    assert "- PromptKD student HM beats CoOp (student backbone) HM (paper: 83.73 vs 71.66): ours" in text
    verdicts = {l.split(" (paper:")[0][2:]: l.rsplit("**", 2)[1] for l in text.splitlines()
                if l.startswith("- ") and l.endswith("**.")}
    assert verdicts["PromptKD student HM beats CoOp (student backbone) HM"] == D.HOLDS
    assert verdicts["logit KL beats feature L1"] == D.FAILS  # feature L1 scored above the KL reference
    assert verdicts["PromptKD beats student PromptSRC on the cross-dataset target average"] == D.HOLDS
    assert verdicts["PromptKD beats the test-time prompt-tuning methods (TPT, CoOp+TPT, PromptAlign)"] == D.NOT_MEASURABLE
    # every plot the document links exists
    for png in {l.split("(results/")[1].rstrip(")") for l in text.splitlines() if "](results/" in l}:
        assert (doc.parent / "results" / png).stat().st_size > 1000, png


# ---------------------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_reduced_variant_regenerates_the_document_from_its_runs(reduced_cache, tmp_path):
    out, doc = tmp_path / "results", tmp_path / "docs" / "RESULTS.md"
    record = E.run_experiments([1], out, "reduced", jobs=2, cache_dir=reduced_cache, doc=doc)
    assert {r["status"] for r in record["runs"].values()} == {"done"}
    text = doc.read_text()
    for title in ("Table 1 analogue", "Table 2 analogue", "Table 9 analogue", "Table 4 analogue", "Table 5 analogue",
                  "Table 6 analogue", "Transductive or inductive", "Beyond the paper"):
        assert f"## {title}" in text, title
    for png in sorted(set(l.split("(results/")[1].rstrip(")") for l in text.splitlines() if "](results/" in l)):
        assert (doc.parent / "results" / png).stat().st_size > 1000, png
    # the numbers come from the runs: the inductive row's HM, recomputed from its results.json
    rec = json.loads((out / "ablation/runs/kd_inductive/seed1/results.json").read_text())
    hm = 2 * rec["base_acc"] * rec["novel_acc"] / (rec["base_acc"] + rec["novel_acc"])
    row = next(l for l in text.splitlines() if l.startswith("| inductive: base-class images only |"))
    assert f"**{hm:.2f}**" in row
    # and the cross-dataset PromptKD target average from its two results.json files
    accs = [json.loads((out / f"xd/runs/{t}/student_promptkd/seed1/results.json").read_text())["accuracy"]
            for t in protocols.CROSS_TARGETS]
    table2 = text.split("## Table 2 analogue")[1].split("## ")[0]
    row = next(l for l in table2.splitlines() if l.startswith("| student PromptKD |"))
    assert f"{statistics.fmean(accs):.2f} +- 0.00" in row
    verdicts = [l for l in text.splitlines() if l.startswith("- ") and l.endswith("**.")]
    assert verdicts and all(any(v in l for v in (D.HOLDS, D.FAILS, D.NOT_MEASURABLE)) for l in verdicts)
    # a second call reuses every run
    again = E.run_experiments([1], out, "reduced", jobs=0, cache_dir=reduced_cache, doc=None)
    assert {r["status"] for r in again["runs"].values()} == {"reused"}
