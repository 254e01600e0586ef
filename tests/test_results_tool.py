"""tools/results.py: aggregation over seeds, HM of the means, paper column, renderers, plot, CLI."""
import csv
import io
import json
import math
import re
import statistics

import pytest

from tools import results as R

PAPER = R.load_paper_numbers()

# known values: dataset -> seed -> (base, novel)
VALUES = {
    "DescribableTextures": {1: (85.0, 70.0), 2: (86.0, 72.0), 3: (84.0, 71.0)},
    "EuroSAT": {1: (97.0, 80.0), 2: (98.0, 84.0), 3: (97.5, 82.0)},
}
CFG_PATH = "configs/trainers/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx.yaml"


def hm(b, n):
    return 2 * b * n / (b + n)


def pstd(xs):
    return statistics.pstdev(xs)


def write_run(root, rel, **fields):
    d = root / rel
    d.mkdir(parents=True, exist_ok=True)
    (d / "results.json").write_text(json.dumps(fields))
    return d


def make_b2n_runs(root, trainer="PromptKD", values=VALUES):
    for ds, seeds in values.items():
        for seed, (b, n) in seeds.items():
            write_run(root, f"{ds}/{trainer}/seed_{seed}", trainer=trainer, dataset=ds, seed=seed,
                      protocol="base2novel", base_acc=b, novel_acc=n, hm=hm(b, n), config=CFG_PATH,
                      metrics={"base": {"accuracy": b}, "novel": {"accuracy": n}})


def row_of(agg, dataset, method):
    rows = [r for r in agg["rows"] if r["dataset"] == dataset and r["method"] == method]
    assert len(rows) == 1, rows
    return rows[0]


def test_aggregate_means_stds_hm_and_average(tmp_path):
    make_b2n_runs(tmp_path)
    runs = R.collect_runs([tmp_path])
    assert len(runs) == 6
    agg = R.aggregate(runs, "base2novel", PAPER)
    for ds, seeds in VALUES.items():
        bases = [b for b, _ in seeds.values()]
        novels = [n for _, n in seeds.values()]
        row = row_of(agg, ds, "PromptKD")
        assert row["seeds"] == [1, 2, 3]
        assert row["config"] == "vit_b16_c2_ep20_batch8_4+4ctx"
        assert row["base"]["mean"] == pytest.approx(statistics.mean(bases))
        assert row["base"]["std"] == pytest.approx(pstd(bases))
        assert row["novel"]["mean"] == pytest.approx(statistics.mean(novels))
        assert row["novel"]["std"] == pytest.approx(pstd(novels))
        # HM of the means, not the mean of per-seed HMs (those differ here)
        assert row["hm"] == pytest.approx(hm(statistics.mean(bases), statistics.mean(novels)))
        per_seed = [hm(b, n) for b, n in seeds.values()]
        assert row["hm_per_seed"]["mean"] == pytest.approx(statistics.mean(per_seed))
        assert row["hm_per_seed"]["mean"] != pytest.approx(row["hm"], abs=1e-6)
    avg = agg["average"][0]
    mb = statistics.mean(statistics.mean(b for b, _ in s.values()) for s in VALUES.values())
    mn = statistics.mean(statistics.mean(n for _, n in s.values()) for s in VALUES.values())
    assert avg["dataset"] == "Average" and avg["n"] == 2
    assert avg["base"] == pytest.approx(mb) and avg["novel"] == pytest.approx(mn)
    assert avg["hm"] == pytest.approx(hm(mb, mn))
    # 2 of the paper's 11 datasets: the paper average is shown but no delta is claimed
    assert avg["complete"] is False and avg["delta"] is None


def test_paper_column_and_deltas(tmp_path):
    make_b2n_runs(tmp_path)
    agg = R.aggregate(R.collect_runs([tmp_path]), "base2novel", PAPER)
    row = row_of(agg, "DescribableTextures", "PromptKD")
    assert row["paper"]["table"] == "table1_base2novel"
    assert (row["paper"]["base"], row["paper"]["novel"], row["paper"]["hm"]) == (85.84, 71.37, 77.94)
    assert row["delta"]["base"] == pytest.approx(85.0 - 85.84)
    assert row["delta"]["novel"] == pytest.approx(71.0 - 71.37)
    assert row["delta"]["hm"] == pytest.approx(hm(85.0, 71.0) - 77.94)
    eu = row_of(agg, "EuroSAT", "PromptKD")
    assert eu["paper"]["novel"] == 82.08


def test_markdown_output_numbers(tmp_path):
    make_b2n_runs(tmp_path)
    md = R.render_markdown(R.aggregate(R.collect_runs([tmp_path]), "base2novel", PAPER))
    line = next(ln for ln in md.splitlines() if ln.startswith("| DescribableTextures | PromptKD"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[3] == "1,2,3"
    assert cells[4] == f"85.00 ± {pstd([85, 86, 84]):.2f}"
    assert cells[5] == f"71.00 ± {pstd([70, 72, 71]):.2f}"
    assert float(cells[6]) == pytest.approx(hm(85.0, 71.0), abs=0.005)
    assert cells[8] == "85.84 / 71.37 / 77.94"
    deltas = [float(x) for x in cells[9].split("/")]
    assert deltas == pytest.approx([-0.84, -0.37, hm(85.0, 71.0) - 77.94], abs=0.006)
    avg_line = next(ln for ln in md.splitlines() if ln.startswith("| **Average**"))
    assert "91.25" in avg_line and "76.50" in avg_line
    md_np = R.render_markdown(R.aggregate(R.collect_runs([tmp_path]), "base2novel", None))
    assert "Paper" not in md_np and "77.94" not in md_np


def test_cli_csv_json_png(tmp_path, capsys):
    make_b2n_runs(tmp_path / "runs")
    out = tmp_path / "tables"
    rc = R.main([str(tmp_path / "runs"), "--table", "base2novel", "--format", "csv", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(printed)))
    dtd = next(r for r in rows if r["dataset"] == "DescribableTextures")
    assert float(dtd["base_mean"]) == pytest.approx(85.0)
    assert float(dtd["novel_std"]) == pytest.approx(pstd([70, 72, 71]))
    assert float(dtd["hm"]) == pytest.approx(hm(85.0, 71.0))
    assert float(dtd["paper_hm"]) == 77.94
    assert float(dtd["delta_base"]) == pytest.approx(-0.84)
    avg = next(r for r in rows if r["dataset"] == "Average")
    assert float(avg["base_mean"]) == pytest.approx(91.25)
    # files: the same CSV, the aggregated JSON, and a real PNG
    assert (out / "results_base2novel.csv").read_text() == printed
    data = json.loads((out / "results_base2novel.json").read_text())
    assert data["table"] == "base2novel" and len(data["rows"]) == 2
    png = out / "hm_base2novel.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image as mpimg

    img = mpimg.imread(str(png))
    assert img.shape[0] > 100 and img.shape[1] > 100
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_plot_hm_bars_direct(tmp_path):
    make_b2n_runs(tmp_path / "runs")
    agg = R.aggregate(R.collect_runs([tmp_path / "runs"]), "base2novel", PAPER)
    path = R.plot_hm_bars(agg, tmp_path / "x" / "bars.png")
    assert path.is_file() and path.stat().st_size > 1000


def test_cross_table_accuracy(tmp_path):
    accs = {1: 55.0, 2: 57.0, 3: 53.0}
    for seed, a in accs.items():
        write_run(tmp_path, f"dtd/PromptKD/seed{seed}", trainer="PromptKD", dataset="DescribableTextures",
                  seed=seed, protocol="subsample", accuracy=a, metrics={"test": {"accuracy": a}})
        write_run(tmp_path, f"dtd/CoOp/seed{seed}", trainer="CoOp", dataset="DescribableTextures", seed=seed,
                  protocol="subsample", metrics={"test": {"accuracy": a - 10}})
    agg = R.aggregate(R.collect_runs([tmp_path]), "cross", PAPER)
    kd = row_of(agg, "DescribableTextures", "PromptKD")
    assert kd["accuracy"]["mean"] == pytest.approx(55.0)
    assert kd["accuracy"]["std"] == pytest.approx(pstd(list(accs.values())))
    assert kd["paper"]["accuracy"] == 55.08 and kd["delta"]["accuracy"] == pytest.approx(55.0 - 55.08)
    coop = row_of(agg, "DescribableTextures", "CoOp")
    assert coop["accuracy"]["mean"] == pytest.approx(45.0) and coop["paper"]["accuracy"] == 41.92
    md = R.render_markdown(agg)
    assert re.search(r"\| DescribableTextures \| PromptKD \| - \| 1,2,3 \| 55\.00 ± 1\.63 \| 55\.08 \| -0\.08 \|", md)


def test_reference_style_base_and_new_runs_are_paired(tmp_path):
    # train run on base classes, eval-only run on new classes (reference two-run protocol)
    for seed, (b, n) in {1: (80.0, 60.0), 2: (82.0, 62.0)}.items():
        write_run(tmp_path, f"train_base/seed{seed}", trainer="MaPLe", dataset="dtd", seed=seed,
                  protocol="subsample", subsample_classes="base", accuracy=b, config="MaPLe/x.yaml")
        d = tmp_path / f"test_new/seed{seed}"
        d.mkdir(parents=True)
        (d / "results.json").write_text(json.dumps({"trainer": "MaPLe", "dataset": "dtd", "seed": seed,
                                                    "metrics": {"test": {"accuracy": n}},
                                                    "config": "MaPLe/x.yaml"}))
        (d / "config.yaml").write_text("DATASET:\n  SUBSAMPLE_CLASSES: new\n")  # subsample read from here
    agg = R.aggregate(R.collect_runs([tmp_path]), "base2novel", PAPER)
    row = row_of(agg, "DescribableTextures", "MaPLe")
    assert row["n"] == 2
    assert row["base"]["mean"] == pytest.approx(81.0) and row["novel"]["mean"] == pytest.approx(61.0)
    assert row["hm"] == pytest.approx(hm(81.0, 61.0))
    assert row["paper"]["base"] == 80.36


def test_ablation_rows_from_resolved_config(tmp_path):
    for t, (b, n) in {"0.5": (79.0, 73.0), "1.0": (79.5, 73.5)}.items():
        for seed in (1, 2):
            d = write_run(tmp_path, f"T{t}/seed_{seed}", trainer="PromptKD", dataset="ImageNet", seed=seed,
                          base_acc=b + seed, novel_acc=n, hm=hm(b + seed, n))
            (d / "config.yaml").write_text(f"TRAINER:\n  PROMPTKD:\n    TEMPERATURE: {t}\n")
    runs = R.collect_runs([tmp_path], R.TABLES["ablation-temperature"].vary)
    agg = R.aggregate(runs, "ablation-temperature", PAPER)
    r05 = row_of(agg, "ImageNet", "PromptKD TEMPERATURE=0.5")
    r10 = row_of(agg, "ImageNet", "PromptKD TEMPERATURE=1")
    assert r05["base"]["mean"] == pytest.approx(80.5) and r10["base"]["mean"] == pytest.approx(81.0)
    assert r05["paper"]["method"] == "PromptKD (T=0.5)" and r05["paper"]["hm"] == 76.21
    assert r10["paper"]["method"] == "PromptKD (T=1)" and r10["paper"]["base"] == 79.27


def test_teacher_type_ablation_matches_two_keys(tmp_path):
    for kind, name in (("promptsrc", "ViT-B/32"), ("zeroshot", "ViT-L/14")):
        d = write_run(tmp_path, f"{kind}/seed_1", trainer="PromptKD", dataset="ImageNet", seed=1,
                      base_acc=70.0, novel_acc=65.0)
        (d / "config.yaml").write_text(f"TRAINER:\n  PROMPTKD:\n    TEACHER_TYPE: {kind}\n"
                                       f"    TEACHER_NAME: {name}\n")
    runs = R.collect_runs([tmp_path], R.TABLES["ablation-teacher-type"].vary)
    agg = R.aggregate(runs, "ablation-teacher-type", PAPER)
    b32 = row_of(agg, "ImageNet", "PromptKD TEACHER_TYPE=promptsrc TEACHER_NAME=ViT-B/32")
    zs = row_of(agg, "ImageNet", "PromptKD TEACHER_TYPE=zeroshot TEACHER_NAME=ViT-L/14")
    assert b32["paper"]["table"] == "fig5_teacher_capacity" and b32["paper"]["hm"] == 71.87
    assert zs["paper"]["table"] == "table6_teacher_type" and zs["paper"]["base"] == 76.53


def test_teacher_and_zeroshot_names_map_to_paper_rows(tmp_path):
    write_run(tmp_path, "t/seed1", trainer="PromptSRCTeacher", dataset="OxfordFlowers", seed=1,
              base_acc=99.0, novel_acc=82.0)
    write_run(tmp_path, "z/seed1", trainer="ZeroshotCLIP", dataset="oxford_flowers", seed=1,
              base_acc=72.0, novel_acc=77.0)
    agg = R.aggregate(R.collect_runs([tmp_path]), "auto", PAPER)
    assert agg["table"] == "base2novel"
    assert row_of(agg, "OxfordFlowers", "PromptSRCTeacher")["paper"]["base"] == 99.05
    assert row_of(agg, "OxfordFlowers", "ZeroshotCLIP")["paper"]["hm"] == 74.83


def test_label_field_separates_methods(tmp_path):
    write_run(tmp_path, "a/seed1", trainer="PromptKD", dataset="DescribableTextures", seed=1,
              base_acc=80.0, novel_acc=70.0)
    write_run(tmp_path, "b/seed1", trainer="PromptKD", label="batchmean", dataset="DescribableTextures",
              seed=1, base_acc=81.0, novel_acc=71.0)
    agg = R.aggregate(R.collect_runs([tmp_path]), "base2novel", PAPER)
    assert {r["method"] for r in agg["rows"]} == {"PromptKD", "PromptKD/batchmean"}


def test_errors_are_clear(tmp_path, capsys):
    bad = tmp_path / "bad" / "seed1"
    bad.mkdir(parents=True)
    (bad / "results.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad.*results\.json: not valid JSON"):
        R.collect_runs([tmp_path / "bad"])
    (bad / "results.json").write_text(json.dumps({"dataset": "dtd", "accuracy": 1.0}))
    with pytest.raises(ValueError, match="missing or empty string key 'trainer'"):
        R.collect_runs([tmp_path / "bad"])
    (bad / "results.json").write_text(json.dumps({"trainer": "X", "dataset": "dtd", "seed": 1}))
    with pytest.raises(ValueError, match="no accuracy found"):
        R.collect_runs([tmp_path / "bad"])
    (bad / "results.json").write_text(json.dumps({"trainer": "X", "dataset": "dtd", "accuracy": "high"}))
    with pytest.raises(ValueError, match="accuracy: expected a finite number"):
        R.collect_runs([tmp_path / "bad"])
    with pytest.raises(FileNotFoundError, match="no such output directory"):
        R.collect_runs([tmp_path / "nope"])
    # the same seed twice for one (method, dataset, config) is refused, naming both files
    for sub in ("x", "y"):
        write_run(tmp_path / "dup", f"{sub}/seed1", trainer="PromptKD", dataset="dtd", seed=1,
                  base_acc=1.0, novel_acc=2.0)
    with pytest.raises(ValueError, match=r"two base-to-novel results .* seed 1"):
        R.aggregate(R.collect_runs([tmp_path / "dup"]), "base2novel", PAPER)
    # --vary without the resolved config beside the run
    with pytest.raises(ValueError, match=r"needs the resolved config"):
        R.collect_runs([tmp_path / "dup"], ["TRAINER.PROMPTKD.TEMPERATURE"])
    with pytest.raises(ValueError, match="unknown table"):
        R.aggregate(R.collect_runs([tmp_path / "dup" / "x"]), "table99", PAPER)
    # the CLI turns these into exit code 2 and a one-line message
    assert R.main([str(tmp_path / "nope")]) == 2
    assert "no such output directory" in capsys.readouterr().err


def test_paper_numbers_file_is_consistent():
    tables = PAPER["tables"]
    t1 = tables["table1_base2novel"]["data"]
    datasets = [d for d in t1 if d != "Average"]
    assert len(datasets) == 11 and set(datasets) <= set(R.DATASET_ORDER)
    for method, avg in t1["Average"].items():
        assert statistics.mean(t1[d][method]["base"] for d in datasets) == pytest.approx(avg["base"], abs=0.011)
        assert statistics.mean(t1[d][method]["novel"] for d in datasets) == pytest.approx(avg["novel"], abs=0.011)
        assert hm(avg["base"], avg["novel"]) == pytest.approx(avg["hm"], abs=0.011)
    for key in ("table2_cross_dataset", "table9_domain_generalization"):
        data = tables[key]["data"]
        targets = [d for d in data if d != "Average"]
        for method, avg in data["Average"].items():
            mean = statistics.mean(data[d][method]["accuracy"] for d in targets)
            assert mean == pytest.approx(avg["accuracy"], abs=0.011), (key, method)
    # every entry is a finite percentage (or cost figures for Table 7)
    for key, table in tables.items():
        assert table["data"], key
        for dataset, methods in table["data"].items():
            for method, entry in methods.items():
                assert entry and all(isinstance(v, float) and math.isfinite(v) for v in entry.values()), (key, method)
        vary = table.get("vary")
        if vary:
            rows = table["data"]["ImageNet"]
            assert set(vary["values"]) <= set(rows), key
    required = {"table1_base2novel", "table2_cross_dataset", "table3_flowers_unlabeled", "table4_distillation_form",
                "table5_distillation_variants", "table6_teacher_type", "table7_inference_cost",
                "table9_domain_generalization", "table10_teacher_base2novel", "table11_teacher_cross",
                "table12_projector_depth", "table13_student_size", "table14_epochs", "fig4_images_per_class",
                "fig5_teacher_capacity", "fig6_temperature"}
    assert required <= set(tables)


def test_auto_picks_the_domain_generalisation_table(tmp_path):
    for seed, acc in ((1, 70.0), (2, 71.0)):
        write_run(tmp_path, f"a/seed{seed}", trainer="PromptKDStudent", dataset="imagenet_a", seed=seed,
                  accuracy=acc)
    agg = R.aggregate(R.collect_runs([tmp_path]), "auto", PAPER)
    assert agg["table"] == "dg"
    row = row_of(agg, "ImageNetA", "PromptKDStudent")
    assert row["accuracy"]["mean"] == pytest.approx(70.5)
    assert row["paper"]["accuracy"] == 70.36 and row["delta"]["accuracy"] == pytest.approx(0.14)
