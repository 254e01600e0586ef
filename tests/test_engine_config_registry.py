"""Registry lookups and checked config merges (clear errors with suggestions)."""

import pytest

from engine.config import add_engine_extras, get_cfg_default, merge_from_file_checked, merge_from_list_checked
from engine.registry import Registry


def test_registry_register_get_contains_and_alias():
    reg = Registry("THING")

    @reg.register()
    class PromptKD:
        pass

    def coop():
        return 1

    reg.register(coop)
    reg.register(name="Alias")(PromptKD)
    assert reg.get("PromptKD") is PromptKD and reg.get("coop") is coop and reg.get("Alias") is PromptKD
    assert "PromptKD" in reg and "Nope" not in reg
    assert reg.registered_names() == ["PromptKD", "coop", "Alias"]


def test_registry_duplicate_needs_force():
    reg = Registry("THING")

    class A:
        pass

    class B:
        pass

    reg.register(A, name="X")
    with pytest.raises(KeyError, match="already registered"):
        reg.register(B, name="X")
    reg.register(B, name="X", force=True)
    assert reg.get("X") is B


def test_registry_unknown_name_lists_names_and_closest():
    reg = Registry("TRAINER")
    for name in ("PromptKD", "PromptSRC", "CoOp"):
        reg.register(type(name, (), {}))
    with pytest.raises(KeyError) as exc:
        reg.get("PromptDK")
    msg = str(exc.value)
    assert "Did you mean 'PromptKD'" in msg
    assert "['CoOp', 'PromptKD', 'PromptSRC']" in msg
    assert "'TRAINER' registry" in msg


def test_defaults_have_dassl_keys_and_engine_extras():
    cfg = get_cfg_default()
    assert cfg.SEED == -1 and cfg.OUTPUT_DIR == "./output" and cfg.RESUME == ""
    assert cfg.OPTIM.NAME == "adam" and cfg.OPTIM.WEIGHT_DECAY == 5e-4 and cfg.OPTIM.WARMUP_RECOUNT is True
    assert cfg.DATALOADER.TRAIN_X.SAMPLER == "RandomSampler" and cfg.DATALOADER.TEST.BATCH_SIZE == 32
    assert cfg.TEST.FINAL_MODEL == "last_step" and cfg.TEST.SPLIT == "test" and cfg.INPUT.RRCROP_SCALE == (0.08, 1.0)
    assert cfg.ENGINE.DETERMINISTIC is False and cfg.TRAIN.DIST == "auto"
    cfg.defrost()
    del cfg["ENGINE"]
    add_engine_extras(cfg)
    assert cfg.ENGINE.DETERMINISTIC is False


def test_unknown_key_in_yaml_names_file_key_and_suggestions(tmp_path):
    path = tmp_path / "trainer.yaml"
    path.write_text("OPTIM:\n  NAME: sgd\n  LR_SCHEDULR: cosine\n")
    cfg = get_cfg_default()
    with pytest.raises(KeyError) as exc:
        merge_from_file_checked(cfg, str(path))
    msg = str(exc.value)
    assert str(path) in msg and "OPTIM.LR_SCHEDULR" in msg and "OPTIM.LR_SCHEDULER" in msg
    assert cfg.OPTIM.NAME == "adam"  # nothing merged from a bad file


def test_valid_yaml_merges(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("OPTIM:\n  NAME: sgd\n  LR: 0.005\nINPUT:\n  SIZE: (32, 32)\n")
    cfg = get_cfg_default()
    merge_from_file_checked(cfg, str(path))
    assert cfg.OPTIM.NAME == "sgd" and cfg.OPTIM.LR == 0.005 and cfg.INPUT.SIZE == (32, 32)


def test_missing_yaml_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="Config file not found: .*nope.yaml"):
        merge_from_file_checked(get_cfg_default(), str(tmp_path / "nope.yaml"))


def test_opts_unknown_key_odd_length_and_bad_type():
    cfg = get_cfg_default()
    with pytest.raises(KeyError) as exc:
        merge_from_list_checked(cfg, ["DATALOADER.TRAIN_X.BATCHSIZE", "8"])
    assert "DATALOADER.TRAIN_X.BATCHSIZE" in str(exc.value) and "DATALOADER.TRAIN_X.BATCH_SIZE" in str(exc.value)
    assert "command-line" in str(exc.value)
    with pytest.raises(ValueError, match="odd number"):
        merge_from_list_checked(cfg, ["OPTIM.LR", "0.1", "SEED"])
    with pytest.raises(ValueError, match="OPTIM.LR"):
        merge_from_list_checked(cfg, ["OPTIM.LR", "fast"])
    merge_from_list_checked(cfg, ["OPTIM.LR", "0.1", "SEED", "3"])
    assert cfg.OPTIM.LR == 0.1 and cfg.SEED == 3
