"""engine/run_record.py: the typed results.json record (writer key order, reader checks) and the harmonic mean."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.run_record import RunRecord, harmonic_mean, read_run_record, write_run_record

REPO = Path(__file__).resolve().parent.parent

# the key order docs/ARCHITECTURE.md shows, with a trainer-specific entry after "teacher"
WRITTEN = {"trainer": "PromptKD", "dataset": "DescribableTextures", "seed": 1, "protocol": "base2novel",
           "subsample_classes": "all", "num_shots": -1, "backbone": "ViT-B/16", "precision": "fp16",
           "selection": "last_step", "epoch": 20,
           "metrics": {"base": {"accuracy": 85.1, "macro_f1": 84.0, "num_images": 864},
                       "novel": {"accuracy": 71.0, "macro_f1": 70.2, "num_images": 828}},
           "base_acc": 85.1, "novel_acc": 71.0, "hm": 77.4, "teacher": {"source": "x"},
           "distillation": {"kd_weight": 200.0}, "trainable_params": 1234, "config": "c.yaml",
           "output_dir": "out", "collapse": {"flagged": False}}


def test_harmonic_mean_is_2bn_over_b_plus_n():
    assert harmonic_mean(85.84, 71.37) == pytest.approx(2 * 85.84 * 71.37 / (85.84 + 71.37))
    assert harmonic_mean(50.0, 50.0) == 50.0
    assert harmonic_mean(0.0, 0.0) == 0.0


def test_round_trip_keeps_the_file_byte_for_byte(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(WRITTEN, indent=4) + "\n")
    rec = read_run_record(path)
    assert (rec.trainer, rec.seed, rec.base_acc, rec.accuracy) == ("PromptKD", 1, 85.1, None)
    assert rec.extra == {"distillation": {"kd_weight": 200.0}}
    assert rec.set_accuracy("novel", "w") == 71.0 and rec.set_accuracy("test", "w") is None
    before = path.read_text()
    write_run_record(rec, path)
    assert path.read_text() == before
    rec.label = "student PromptKD"
    write_run_record(rec, path)
    assert list(json.loads(path.read_text()))[-1] == "label"


def test_reader_errors_name_the_file_and_key(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("{oops")
    with pytest.raises(ValueError, match=r"results\.json: not valid JSON"):
        read_run_record(path)
    cases = [({"dataset": "d"}, "missing or empty string key 'trainer'"),
             ({"trainer": "T", "dataset": "d", "hm": float("nan")}, "hm: expected a finite number"),
             ({"trainer": "T", "dataset": "d", "seed": "1"}, "'seed' must be an integer"),
             ({"trainer": "T", "dataset": "d", "metrics": [1]}, "'metrics' must be an object"),
             ([1], "expected a JSON object")]
    for data, message in cases:
        with pytest.raises(ValueError, match=message):
            RunRecord.from_dict(data, "where.json")
    with pytest.raises(ValueError, match=r"where: metrics.base has no 'accuracy' key"):
        RunRecord.from_dict({"trainer": "T", "dataset": "d", "metrics": {"base": {}}}, "w").set_accuracy("base", "where")
    # the older spelling of the subsample key
    assert RunRecord.from_dict({"trainer": "T", "dataset": "d", "subsample": "new"}, "w").subsample_classes == "new"


def test_results_tools_import_without_torch():
    code = "import sys, tools.results, engine.run_record; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
