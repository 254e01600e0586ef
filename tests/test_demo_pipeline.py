"""The proving-ground demo (scripts/demo.sh): pipeline planning, claims, and the reduced preset end to end.

The end-to-end test builds the reduced proving ground from scratch in tmp_path (world + pre-training of
both tiny CLIPs), runs the real pipeline for one seed (PromptSRCTeacher, PromptKD, CoOp, PromptSRC,
zero-shot CLIP through train.py) and checks the paper's claims on it (test_reduced_preset_claims says which
are asserted).
"""

import json
import os
from pathlib import Path

import pytest

from engine.run_record import harmonic_mean
from proving_ground import claims as C
from proving_ground import pipeline as P
from proving_ground.build import preset

MARGIN = 1.0  # points of HM every ordering must hold by in the end-to-end test


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------------------------------------- claims
def _row(label, base, novel, seeds=(1, 2)):
    """A tools/results.py base-to-novel row; ``base``/``novel`` are per-seed lists."""
    mb, mn = sum(base) / len(base), sum(novel) / len(novel)
    return {"dataset": "ProvingGround", "method": f"X/{label}", "label": label, "config": "proving_ground",
            "seeds": list(seeds), "base": {"mean": mb, "std": 0.0, "values": list(base)},
            "novel": {"mean": mn, "std": 0.0, "values": list(novel)}, "hm": harmonic_mean(mb, mn)}


def _table(**over):
    rows = {
        C.TEACHER_ZS: ([60, 60], [50, 50]),
        C.TEACHER: ([80, 80], [70, 70]),
        C.STUDENT_ZS: ([40, 40], [30, 30]),
        C.COOP: ([60, 60], [20, 20]),
        C.PROMPTSRC: ([55, 55], [35, 35]),
        C.PROMPTKD: ([75, 77], [65, 63]),
    }
    rows.update(over)
    return {"table": "base2novel", "metric": "bnh", "rows": [_row(k, *v) for k, v in rows.items()]}


def test_claims_pass_with_numbers_and_per_seed_counts():
    claims = C.check_claims(_table())
    by_id = {c["id"]: c for c in claims}
    assert [c["status"] for c in claims] == ["PASS"] * 5
    kd = by_id["kd_recovers_teacher"]
    assert kd["left"]["hm"] == pytest.approx(harmonic_mean(76, 64))
    assert kd["right"]["hm"] == pytest.approx(harmonic_mean(80, 70))
    assert kd["ratio"] == pytest.approx(harmonic_mean(76, 64) / harmonic_mean(80, 70))
    assert kd["threshold"] == pytest.approx(0.9 * harmonic_mean(80, 70))
    assert by_id["kd_beats_coop"]["seeds_holding"] == "2/2"
    text = C.render(claims)
    assert "5 of 5 claims hold." in text and "recovers" in text


def test_claims_fail_and_margin_and_per_seed():
    # seed 2 of PromptKD falls below CoOp; the mean still beats it by 1.5 points
    t = _table(**{C.PROMPTKD: ([75, 40], [65, 30]), C.COOP: ([50, 50], [40, 40])})
    kd_hm, coop_hm = harmonic_mean(57.5, 47.5), harmonic_mean(50, 40)
    by_id = {c["id"]: c for c in C.check_claims(t)}
    assert by_id["kd_beats_coop"]["holds"] is (kd_hm > coop_hm)
    assert by_id["kd_beats_coop"]["per_seed"] == {"1": True, "2": False}
    assert by_id["kd_beats_coop"]["seeds_holding"] == "1/2"
    # the same ordering with a margin larger than the gap fails
    by_id = {c["id"]: c for c in C.check_claims(t, margin=kd_hm - coop_hm + 0.01)}
    assert by_id["kd_beats_coop"]["status"] == "FAIL"
    # recovery below 90 %
    t = _table(**{C.PROMPTKD: ([60, 60], [50, 50])})
    by_id = {c["id"]: c for c in C.check_claims(t)}
    assert by_id["kd_recovers_teacher"]["status"] == "FAIL"
    assert by_id["kd_recovers_teacher"]["ratio"] == pytest.approx(harmonic_mean(60, 50) / harmonic_mean(80, 70))
    # the teacher's zero-shot below the student's
    t = _table(**{C.TEACHER_ZS: ([30, 30], [30, 30])})
    assert {c["id"]: c for c in C.check_claims(t)}["teacher_zs_beats_student_zs"]["status"] == "FAIL"


def test_claims_missing_rows_and_bad_tables():
    t = _table()
    t["rows"] = [r for r in t["rows"] if r["label"] != C.COOP]
    by_id = {c["id"]: c for c in C.check_claims(t)}
    assert by_id["kd_beats_coop"]["status"] == "MISSING" and "student CoOp" in by_id["kd_beats_coop"]["detail"]
    assert C.summary(C.check_claims(t)) == {"PASS": 4, "FAIL": 0, "MISSING": 1}
    with pytest.raises(ValueError, match="base/novel/HM table"):
        C.check_claims({"metric": "acc", "rows": []})
    dup = _table()
    dup["rows"].append(dict(dup["rows"][0]))
    with pytest.raises(ValueError, match="two rows are labelled 'teacher zero-shot'"):
        C.check_claims(dup)
    bad = _table()
    bad["rows"][0]["seeds"] = [1]
    with pytest.raises(ValueError, match="1 seeds but 2 base"):
        C.check_claims(bad)
    with pytest.raises(ValueError, match="margin"):
        C.check_claims(_table(), margin=-1)


def test_claims_cli_writes_json_and_exits_zero_on_fail(tmp_path, capsys):
    path = tmp_path / "results_base2novel.json"
    path.write_text(json.dumps(_table(**{C.PROMPTKD: ([10, 10], [10, 10])})))
    assert C.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "FAIL" in out and "PASS" in out
    saved = json.loads((tmp_path / C.CLAIMS_FILE).read_text())
    assert saved["summary"]["FAIL"] == 4 and saved["summary"]["PASS"] == 1
    assert C.main([str(path), "--strict"]) == 1
    assert C.main([str(tmp_path / "nope.json")]) == 2
    assert "run python -m proving_ground.pipeline first" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- planning
def _res(root, cfg):
    """A BuildResult as build() returns it (pretrain.json contents in ``stats``), without building."""
    from proving_ground.build import BuildResult, ModelArtifact

    def art(mcfg):
        d = Path(root) / "models" / mcfg.name
        return ModelArtifact(mcfg.name, mcfg.name, d / f"{mcfg.name}.pt", d / f"{mcfg.name}.json",
                             stats={"model": mcfg.to_dict()})

    data_root = Path(root) / "data" / "abc"
    return BuildResult(data_root, data_root / "proving_ground", art(cfg.teacher), art(cfg.student))


def _argv_opts(argv):
    """trailing KEY VALUE opts of a planned train.py argv (they start with MODEL.BACKBONE.NAME) -> dict."""
    rest = argv[argv.index("MODEL.BACKBONE.NAME"):]
    assert len(rest) % 2 == 0 and not any(a.startswith("--") for a in rest)
    return dict(zip(rest[::2], rest[1::2]))


def test_plan_runs_protocols_models_and_dependencies(tmp_path):
    cfg = preset("default")
    specs = P.plan_runs(_res(tmp_path / "pg", cfg), [1, 3], tmp_path / "out")
    assert len(specs) == 12 and {s.row for s in specs} == set(P.ROWS)
    by_key = {s.key: s for s in specs}
    kd = by_key["student_promptkd/seed3"]
    assert kd.needs == ["teacher_promptsrc/seed3"]
    o = _argv_opts(kd.argv)
    assert o["TRAINER.PROMPTKD.TEACHER_CKPT"].endswith(os.path.join("runs", "teacher_promptsrc", "seed3"))
    assert o["TRAINER.PROMPTKD.TEACHER_NAME"].endswith("pg_teacher.pt")
    assert o["MODEL.BACKBONE.NAME"].endswith("pg_student.pt")
    assert o["TRAINER.PROMPTKD.PROMPT_DEPTH_VISION"] == str(min(9, cfg.student.vision_layers))
    assert "DATASET.NUM_SHOTS" not in o  # the PromptKD yaml's protocol: all unlabeled images
    t = _argv_opts(by_key["teacher_promptsrc/seed1"].argv)
    assert t["MODEL.BACKBONE.NAME"].endswith("pg_teacher.pt")
    assert (t["DATASET.NUM_SHOTS"], t["DATASET.SUBSAMPLE_CLASSES"], t["DATASET.EVAL_PROTOCOL"]) == ("16", "base", "base2novel")
    assert t["TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION"] == str(cfg.teacher.vision_layers)
    assert t["TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT"] == str(cfg.teacher.text_layers)
    s = _argv_opts(by_key["student_promptsrc/seed1"].argv)
    assert s["MODEL.BACKBONE.NAME"].endswith("pg_student.pt")
    assert s["TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION"] == str(cfg.student.vision_layers)
    zs = by_key["teacher_zeroshot/seed1"]
    assert "--eval-only" in zs.argv and _argv_opts(zs.argv)["MODEL.BACKBONE.NAME"].endswith("pg_teacher.pt")
    assert by_key["student_zeroshot/seed1"].argv[by_key["student_zeroshot/seed1"].argv.index("--trainer") + 1] == "ZeroshotCLIP"
    assert by_key["student_coop/seed3"].argv[by_key["student_coop/seed3"].argv.index("--seed") + 1] == "3"
    # the critical path (teachers, then PromptKD) is scheduled first
    order = sorted(specs, key=lambda s: s.priority)
    assert [s.row for s in order[:2]] == ["teacher_promptsrc"] * 2
    with pytest.raises(ValueError, match="distinct"):
        P.plan_runs(_res(tmp_path, cfg), [1, 1], tmp_path / "out")
    with pytest.raises(ValueError, match="at least one seed"):
        P.plan_runs(_res(tmp_path, cfg), [], tmp_path / "out")
    broken = _res(tmp_path, cfg)
    broken.student.stats = {}
    with pytest.raises(ValueError, match="lacks"):
        P.plan_runs(broken, [1], tmp_path / "out")


def test_plan_runs_pass_the_world_image_size_and_refuse_mismatched_models(tmp_path):
    # every run reads the images at the size both CLIPs were pre-trained on (16 px in the reduced preset,
    # while the dataset yaml says 32)
    # visual prompt tokens are capped at a quarter of the patch tokens: the yaml's 4 beside the default
    # world's 16 patches, 1 beside the reduced world's 4
    for name, side, n_ctx in (("default", 32, "4"), ("reduced", 16, "1")):
        specs = P.plan_runs(_res(tmp_path / name, preset(name)), [1], tmp_path / name / "out")
        assert {_argv_opts(s.argv)["INPUT.SIZE"] for s in specs} == {f"({side}, {side})"}
        by_row = {s.row: _argv_opts(s.argv) for s in specs}
        assert by_row["teacher_promptsrc"]["TRAINER.PROMPTSRC.N_CTX_VISION"] == n_ctx
        assert by_row["student_promptsrc"]["TRAINER.PROMPTSRC.N_CTX_VISION"] == n_ctx
        assert by_row["student_promptkd"]["TRAINER.PROMPTKD.N_CTX_VISION"] == n_ctx
        assert "TRAINER.COOP.N_CTX_VISION" not in by_row["student_coop"]
    mixed = _res(tmp_path / "mixed", preset("default"))
    mixed.student.stats = {"model": preset("reduced").student.to_dict()}
    with pytest.raises(ValueError, match="different image sizes"):
        P.plan_runs(mixed, [1], tmp_path / "mixed" / "out")
    del mixed.student.stats["model"]["image_size"]
    with pytest.raises(ValueError, match="lacks 'image_size'"):
        P.plan_runs(mixed, [1], tmp_path / "mixed" / "out")


def test_run_all_reports_failures_and_skips_dependants(tmp_path, capsys):
    # a teacher run whose trainer config does not exist fails fast inside train.main; its PromptKD student
    # is skipped with the reason, an unrelated run still runs (and fails the same way, independently)
    bad = ["--config-file", str(tmp_path / "missing.yaml"), "--output-dir"]
    specs = [
        P.RunSpec("teacher_promptsrc/seed1", "teacher_promptsrc", "t", "PromptSRCTeacher", 1, str(tmp_path / "t"),
                  bad + [str(tmp_path / "t")]),
        P.RunSpec("student_promptkd/seed1", "student_promptkd", "k", "PromptKD", 1, str(tmp_path / "k"),
                  bad + [str(tmp_path / "k")], needs=["teacher_promptsrc/seed1"]),
        P.RunSpec("student_coop/seed1", "student_coop", "c", "CoOp", 1, str(tmp_path / "c"),
                  bad + [str(tmp_path / "c")]),
    ]
    seen = []
    out = P.run_all(specs, jobs=0, progress=lambda n, total, o: seen.append((n, total, o.key, o.status)))
    assert out["teacher_promptsrc/seed1"].status == "failed"
    assert "missing.yaml" in out["teacher_promptsrc/seed1"].error
    assert out["student_promptkd/seed1"].status == "skipped"
    assert out["student_promptkd/seed1"].error == "needs teacher_promptsrc/seed1, which failed"
    assert out["student_coop/seed1"].status == "failed"
    assert [s[:2] for s in seen] == [(1, 3), (2, 3), (3, 3)]
    with pytest.raises(ValueError, match="not planned"):
        P.run_all([specs[1]], jobs=0)


def test_out_dir_guard_refuses_runs_of_another_configuration(tmp_path):
    out = tmp_path / "out"
    (out / P.RUNS_DIR / "x").mkdir(parents=True)
    with pytest.raises(ValueError, match="runs of unknown origin"):
        P._check_out_dir(out, {"teacher": "a"}, force=False)
    P.atomic_write_json(out / P.PLAN_FILE, {"fingerprint": {"teacher": "a"}})
    P._check_out_dir(out, {"teacher": "a"}, force=False)  # same configuration: reused
    with pytest.raises(ValueError, match="a different world, models or trainer configs"):
        P._check_out_dir(out, {"teacher": "b"}, force=False)
    P._check_out_dir(out, {"teacher": "b"}, force=True)
    assert not (out / P.RUNS_DIR).exists()


def test_load_build_json_reads_a_finished_build_and_names_missing_pieces(tmp_path):
    cfg = preset("reduced")
    mdir = tmp_path / "models" / "k1"
    mdir.mkdir(parents=True)
    (mdir / "pg_teacher.pt").write_bytes(b"x")
    (mdir / "pretrain.json").write_text(json.dumps({"model": cfg.teacher.to_dict()}))
    sdir = tmp_path / "models" / "k2"
    sdir.mkdir(parents=True)
    (sdir / "pretrain.json").write_text(json.dumps({"model": cfg.student.to_dict()}))
    data_root = tmp_path / "data"
    (data_root / "proving_ground").mkdir(parents=True)
    desc = {"data_root": str(data_root), "dataset_dir": str(data_root / "proving_ground"),
            "teacher": {"name": "pg_teacher", "key": "k1", "weights": str(mdir / "pg_teacher.pt"),
                        "config": str(mdir / "pg_teacher.json")},
            "student": {"name": "pg_student", "key": "k2", "weights": str(sdir / "pg_student.pt"),
                        "config": str(sdir / "pg_student.json")}}
    path = tmp_path / "build.json"
    path.write_text(json.dumps(desc))
    with pytest.raises(FileNotFoundError, match="student weights .*pg_student.pt do not exist"):
        P.load_build_json(path)
    (sdir / "pg_student.pt").write_bytes(b"x")
    res = P.load_build_json(path)
    assert res.teacher.key == "k1" and res.student.cached
    assert P.model_shape(res.student) == {"vision_layers": cfg.student.vision_layers,
                                          "text_layers": cfg.student.text_layers, "image_size": 16,
                                          "patch_tokens": 4}
    del desc["data_root"]
    path.write_text(json.dumps(desc))
    with pytest.raises(ValueError, match="missing key 'data_root'"):
        P.load_build_json(path)


def test_pipeline_cli_rejects_bad_arguments(capsys):
    assert P.main(["--preset", "reduced", "--seeds", "1", "--out", "unused", "--jobs", "-1"]) == 2
    assert P.main(["--preset", "reduced", "--seeds", "1", "1", "--out", "unused"]) == 2
    assert "seeds must be distinct" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        P.main(["--preset", "tiny"])


def test_demo_script_is_strict_bash_and_runs_the_pipeline():
    text = (Path(P.REPO_ROOT) / "scripts" / "demo.sh").read_text()
    assert "set -euo pipefail" in text
    assert "pip install -e ." in text and "import open_clip, yacs, torchvision" in text
    assert "tools/build_proving_ground.py" in text and "-m proving_ground.pipeline" in text


# ---------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def reduced_run(tmp_path_factory, reduced_cache):
    """World + pre-training (shared cache) + the whole pipeline (1 seed) on the reduced preset, run once per module."""
    tmp = tmp_path_factory.mktemp("reduced")
    out = tmp / "demo"
    record = P.run_pipeline("reduced", [1], out, jobs=2, threads=1, cache_dir=reduced_cache)
    return reduced_cache, out, record


@pytest.mark.slow
def test_reduced_preset_end_to_end_pipeline(reduced_run):
    """Every stage ran with the real trainers, the table/claims were written, and finished runs are reused."""
    tmp, out, record = reduced_run
    for name in ("results_base2novel.md", "results_base2novel.json", "hm_base2novel.png", "claims.json",
                 "pipeline.json"):
        assert (out / name).is_file(), name
    assert all(o["status"] == "done" for o in record["runs"].values()), record["runs"]
    labels = {json.loads((out / P.RUNS_DIR / row / "seed1" / "results.json").read_text())["label"]
              for row in P.ROWS}
    assert labels == {v["label"] for v in P.ROWS.values()}
    rows = C.find_rows(record["table"])
    assert set(rows) >= {C.TEACHER_ZS, C.STUDENT_ZS, C.COOP, C.PROMPTSRC, C.PROMPTKD, C.TEACHER}
    assert {c["status"] for c in record["claims"]} <= {"PASS", "FAIL"}
    # stage III evaluated the student without a teacher; the student's teacher is this seed's stage-I run
    kd = json.loads((out / P.RUNS_DIR / "student_promptkd" / "seed1" / "results.json").read_text())
    assert kd["trainer"] in ("PromptKD", "PromptKDStudent") and kd["teacher"] is not None
    # a second call reuses every finished run (and the cached proving ground)
    again = P.run_pipeline("reduced", [1], out, jobs=0, cache_dir=tmp)
    assert {o["status"] for o in again["runs"].values()} == {"reused"}
    assert again["seconds"]["pretrain_reused"] is True


def _reduced_hm(record):
    rows = C.find_rows(record["table"])
    hm = {label: rows[label]["hm"] for label in rows}
    return hm, json.dumps(hm, indent=1)


@pytest.mark.slow
def test_reduced_preset_claims(reduced_run):
    """The paper's claims on the reduced world. Asserted with a margin: the teacher's zero-shot beats the
    student's (a property of the pre-trained pair) and the PromptKD student recovers at least 90% of its stage-I
    teacher's HM. With the reference's few-shot subsets (Dassl's draw) the three orderings against the
    student's own baselines do not hold in this small world (seeds 1-3 measured in proving_ground/README.md,
    "The reduced preset"): they are reported by the pipeline, not asserted. The pipeline's claim report must
    agree with the orderings recomputed here from the table."""
    _, _, record = reduced_run
    hm, report = _reduced_hm(record)
    assert hm[C.TEACHER_ZS] > hm[C.STUDENT_ZS] + MARGIN, report
    assert hm[C.PROMPTKD] >= 0.9 * hm[C.TEACHER], report
    expected = {
        "teacher_zs_beats_student_zs": hm[C.TEACHER_ZS] > hm[C.STUDENT_ZS],
        "kd_beats_student_zs": hm[C.PROMPTKD] > hm[C.STUDENT_ZS],
        "kd_beats_coop": hm[C.PROMPTKD] > hm[C.COOP],
        "kd_beats_promptsrc": hm[C.PROMPTKD] > hm[C.PROMPTSRC],
        "kd_recovers_teacher": hm[C.PROMPTKD] >= 0.9 * hm[C.TEACHER],
    }
    assert {c["id"]: c["holds"] for c in record["claims"]} == expected, report
