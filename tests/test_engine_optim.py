"""LR schedules of engine.optim against Dassl's semantics (docs/REFERENCE.md A6)."""

import math

import pytest
import torch

from engine.config import get_cfg_default
from engine.optim import ConstantWarmupScheduler, LinearWarmupScheduler, build_lr_scheduler, build_optimizer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# docs/REFERENCE.md A6: lr 0.005, 20 epochs, cosine, constant warm-up 1 epoch at 1e-5.
PROMPTKD_OPTIM = dict(NAME="sgd", LR=0.005, MAX_EPOCH=20, LR_SCHEDULER="cosine", WARMUP_EPOCH=1,
                      WARMUP_TYPE="constant", WARMUP_CONS_LR=1e-5)
REFERENCE_LRS = [
    1e-5,
    5.000e-3,
    4.969e-3,
    4.878e-3,
    4.728e-3,
    4.523e-3,
    4.268e-3,
    3.969e-3,
    3.635e-3,
    3.273e-3,
    2.891e-3,
    2.500e-3,
    2.109e-3,
    1.727e-3,
    1.365e-3,
    1.031e-3,
    7.32e-4,
    4.78e-4,
    2.73e-4,
    1.22e-4,
]


def _printed_tol(value):
    """Tolerance of a value printed with 3 significant digits.

    1.5 units of the last digit (rel. <= 1.5e-3 for leading digit >= 1): the table in docs/REFERENCE.md A6
    is rounded, and two entries (4.78e-4, 2.73e-4) are one unit above the exact 4.7746e-4 / 2.7248e-4;
    the exact closed form is checked separately to 1e-9.
    """
    return 1.5 * 10 ** (math.floor(math.log10(value)) - 2)


def _optim_cfg(**kw):
    cfg = get_cfg_default()
    for k, v in kw.items():
        setattr(cfg.OPTIM, k, v)
    return cfg.OPTIM


def _per_epoch_lrs(optim_cfg, n_epochs, model=None):
    model = model or torch.nn.Linear(3, 2)
    opt = build_optimizer(model, optim_cfg)
    sched = build_lr_scheduler(opt, optim_cfg)
    lrs = []
    for _ in range(n_epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()  # Dassl trainers step once per epoch (update_lr at the last batch)
    return lrs, opt, sched


def test_promptkd_schedule_matches_reference_numbers():
    ocfg = _optim_cfg(**PROMPTKD_OPTIM)
    lrs, _, sched = _per_epoch_lrs(ocfg, 20)
    assert isinstance(sched, ConstantWarmupScheduler)
    for got, want in zip(lrs, REFERENCE_LRS):
        assert got == pytest.approx(want, abs=_printed_tol(want))
    # closed form for k >= 2 (1-based): lr * (1 + cos(pi (k-2) / E)) / 2
    for k in range(2, 21):
        assert lrs[k - 1] == pytest.approx(0.005 * (1 + math.cos(math.pi * (k - 2) / 20)) / 2, rel=1e-9)


def test_sgd_hyper_parameters_from_dassl_defaults():
    opt = build_optimizer(torch.nn.Linear(3, 2), _optim_cfg(NAME="sgd", LR=0.01))
    group = opt.param_groups[0]
    assert isinstance(opt, torch.optim.SGD)
    assert (group["lr"], group["momentum"], group["weight_decay"], group["dampening"], group["nesterov"]) == (
        0.01,
        0.9,
        5e-4,
        0,
        False,
    )


def test_linear_warmup_then_cosine():
    ocfg = _optim_cfg(
        NAME="sgd", LR=0.1, MAX_EPOCH=4, LR_SCHEDULER="cosine", WARMUP_EPOCH=2, WARMUP_TYPE="linear", WARMUP_MIN_LR=1e-4
    )
    lrs, _, sched = _per_epoch_lrs(ocfg, 6)
    assert isinstance(sched, LinearWarmupScheduler)
    # step 0: min lr; step 1: base * 1/2; step 2: successor's initial lr; then cosine (recounted)
    expected = [
        1e-4,
        0.05,
        0.1,
        0.1 * (1 + math.cos(math.pi / 4)) / 2,
        0.1 * (1 + math.cos(math.pi * 2 / 4)) / 2,
        0.1 * (1 + math.cos(math.pi * 3 / 4)) / 2,
    ]
    assert lrs == pytest.approx(expected, rel=1e-9)


def test_warmup_recount_false_continues_successor_count():
    ocfg = _optim_cfg(
        NAME="sgd",
        LR=0.1,
        MAX_EPOCH=4,
        LR_SCHEDULER="single_step",
        STEPSIZE=(3,),
        GAMMA=0.5,
        WARMUP_EPOCH=2,
        WARMUP_TYPE="constant",
        WARMUP_CONS_LR=1e-3,
        WARMUP_RECOUNT=False,
    )
    lrs, _, _ = _per_epoch_lrs(ocfg, 5)
    # successor starts counting at 2, so its first decay (epoch 3) comes one step after warm-up
    assert lrs == pytest.approx([1e-3, 1e-3, 0.1, 0.05, 0.05])


def test_single_step_default_stepsize_is_max_epoch():
    lrs, _, _ = _per_epoch_lrs(
        _optim_cfg(NAME="sgd", LR=1.0, MAX_EPOCH=3, LR_SCHEDULER="single_step", STEPSIZE=(-1,), GAMMA=0.1), 5
    )
    assert lrs == pytest.approx([1.0, 1.0, 1.0, 0.1, 0.1])


def test_multi_step():
    lrs, _, _ = _per_epoch_lrs(_optim_cfg(NAME="sgd", LR=1.0, LR_SCHEDULER="multi_step", STEPSIZE=(1, 3), GAMMA=0.5), 5)
    assert lrs == pytest.approx([1.0, 0.5, 0.5, 0.25, 0.25])


def test_warmup_scheduler_state_round_trip_resumes_the_schedule():
    ocfg = _optim_cfg(**PROMPTKD_OPTIM)
    model = torch.nn.Linear(3, 2)
    _, opt, sched = _per_epoch_lrs(ocfg, 5, model)
    state_o, state_s = opt.state_dict(), sched.state_dict()
    assert isinstance(state_s["successor"], dict)  # state, not a pickled scheduler object
    opt2 = build_optimizer(model, ocfg)
    sched2 = build_lr_scheduler(opt2, ocfg)
    opt2.load_state_dict(state_o)
    sched2.load_state_dict(state_s)
    lrs = []
    for _ in range(15):
        lrs.append(opt2.param_groups[0]["lr"])
        opt2.step()
        sched2.step()
    for got, want in zip(lrs, REFERENCE_LRS[5:]):
        assert got == pytest.approx(want, abs=_printed_tol(want))


def test_staged_lr_and_errors():
    model = torch.nn.Sequential()
    model.add_module("backbone", torch.nn.Linear(3, 3))
    model.add_module("classifier", torch.nn.Linear(3, 2))
    opt = build_optimizer(
        model, _optim_cfg(NAME="adam", LR=0.1, STAGED_LR=True, NEW_LAYERS=("classifier",), BASE_LR_MULT=0.1)
    )
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.01, 0.1])
    assert opt.param_groups[1]["params"][0] is model.classifier.weight
    with pytest.raises(ValueError, match="unsupported optimizer 'lion'.*sgd"):
        build_optimizer(model, _optim_cfg(NAME="lion"))
    with pytest.raises(ValueError, match="unsupported scheduler 'poly'"):
        build_lr_scheduler(torch.optim.SGD(model.parameters(), lr=0.1), _optim_cfg(LR_SCHEDULER="poly"))
    with pytest.raises(ValueError, match="WARMUP_TYPE"):
        build_lr_scheduler(torch.optim.SGD(model.parameters(), lr=0.1), _optim_cfg(WARMUP_EPOCH=1, WARMUP_TYPE="exp"))
