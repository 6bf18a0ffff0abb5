"""The per-step learning-rate schedules: closed forms, torch's schedulers, epoch factors,
validation and application to parameter groups (deepobs/runners/schedules.py)."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from deepobs.errors import ConfigurationError
from deepobs.runners.schedules import (SCHEDULES, LRSchedule, all_schedule_parameters,
                                       check_schedule, schedule_parameters)

BASE_LR = 0.1


def close(ours, theirs, scale=BASE_LR):
    """Equal to 1e-12 relative (absolute 1e-12·scale near zero, where torch's recursive
    formulas leave rounding noise)."""
    assert len(ours) == len(theirs)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12 * scale), (step, a, b)


def our_lrs(schedule, base=BASE_LR):
    return [base * schedule.factor(step) for step in range(schedule.total_steps)]


def torch_lrs(make_scheduler, total_steps, base=BASE_LR):
    """The lr of each of ``total_steps`` optimizer steps under a torch scheduler stepped per step."""
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=base)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheduler = make_scheduler(optimizer)
        lrs = []
        for _ in range(total_steps):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
    return lrs


def warmup_scheduler(optimizer, warmup):
    return torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1 / warmup, end_factor=1.0,
                                             total_iters=warmup - 1)


# ------------------------------------------------------------------ closed forms
def cosine_closed(s, start, total, final):
    p = 0.0 if s < start else min(1.0, (s - start) / (total - 1 - start))
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * p))


def linear_closed(s, start, total, final):
    p = 0.0 if s < start else min(1.0, (s - start) / (total - 1 - start))
    return final + (1 - final) * (1 - p)


@pytest.mark.parametrize("final", [0.0, 0.1])
def test_cosine_is_its_closed_form_and_torch_cosine_annealing(final):
    schedule = LRSchedule("cosine", {"final_lr_factor": final}, 7, 5)
    total = 35
    assert [schedule.factor(s) for s in range(total)] == \
        pytest.approx([cosine_closed(s, 0, total, final) for s in range(total)], rel=1e-15, abs=1e-15)
    assert schedule.factor(0) == 1.0 and schedule.factor(total - 1) == pytest.approx(final, abs=1e-15)
    close(our_lrs(schedule), torch_lrs(lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=total - 1, eta_min=final * BASE_LR), total))


@pytest.mark.parametrize("final", [0.0, 0.05])
def test_warmup_cosine_matches_linear_lr_then_cosine_annealing(final):
    schedule = LRSchedule("warmup_cosine", {"warmup_epochs": 2, "final_lr_factor": final}, 10, 10)
    total, warmup = 100, 20
    assert schedule.warmup_steps == warmup
    expected = [(s + 1) / warmup if s < warmup else cosine_closed(s, warmup, total, final)
                for s in range(total)]
    assert [schedule.factor(s) for s in range(total)] == pytest.approx(expected, rel=1e-15, abs=1e-15)
    assert schedule.factor(0) == 1 / 20 and schedule.factor(19) == 1.0 and schedule.factor(20) == 1.0
    close(our_lrs(schedule), torch_lrs(lambda opt: torch.optim.lr_scheduler.SequentialLR(
        opt, [warmup_scheduler(opt, warmup),
              torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - 1 - warmup,
                                                         eta_min=final * BASE_LR)],
        milestones=[warmup]), total))


def test_warmup_linear_matches_linear_lr_then_linear_lr():
    schedule = LRSchedule("warmup_linear", {"warmup_epochs": 1.5, "final_lr_factor": 0.0}, 4, 6)
    total, warmup = 24, 6
    expected = [(s + 1) / warmup if s < warmup else linear_closed(s, warmup, total, 0.0)
                for s in range(total)]
    assert [schedule.factor(s) for s in range(total)] == pytest.approx(expected, rel=1e-15, abs=1e-15)
    close(our_lrs(schedule), torch_lrs(lambda opt: torch.optim.lr_scheduler.SequentialLR(
        opt, [warmup_scheduler(opt, warmup),
              torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.0,
                                                total_iters=total - 1 - warmup)],
        milestones=[warmup]), total))


@pytest.mark.parametrize("name, decay_fraction, decay_steps", [("wsd", None, 20), ("trapezoidal", None, 10),
                                                                ("wsd", 0.3, 30)])
def test_warmup_stable_decay_and_trapezoidal(name, decay_fraction, decay_steps):
    params = {"warmup_epochs": 1, "decay_fraction": decay_fraction, "final_lr_factor": 0.1}
    schedule = LRSchedule(name, params, 10, 10)
    total, warmup = 100, 10
    start = total - decay_steps
    expected = [(s + 1) / warmup if s < warmup else 1.0 if s < start else linear_closed(s, start, total, 0.1)
                for s in range(total)]
    assert [schedule.factor(s) for s in range(total)] == pytest.approx(expected, rel=1e-15, abs=1e-15)
    assert schedule.factor(start - 1) == 1.0 and schedule.factor(total - 1) == pytest.approx(0.1)
    close(our_lrs(schedule), torch_lrs(lambda opt: torch.optim.lr_scheduler.SequentialLR(
        opt, [warmup_scheduler(opt, warmup),
              torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0),
              torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.1,
                                                total_iters=total - 1 - start)],
        milestones=[warmup, start]), total))


@pytest.mark.parametrize("restart_epochs, multiplier, final", [(10, 2, 0.0), (1.5, 1, 0.0), (2, 3, 0.2)])
def test_cosine_wr_matches_cosine_annealing_warm_restarts(restart_epochs, multiplier, final):
    params = {"restart_epochs": restart_epochs, "restart_multiplier": multiplier, "final_lr_factor": final}
    schedule = LRSchedule("cosine_wr", params, 4, 40)
    cycle = round(restart_epochs * 4)
    close(our_lrs(schedule), torch_lrs(lambda opt: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        opt, T_0=cycle, T_mult=multiplier, eta_min=final * BASE_LR), 160))


def test_cosine_wr_epoch_factors_are_the_crowded_valley_ones():
    """Published per-epoch factors of Crowded Valley's cosine_wr (mnist_vae, 50 epochs;
    ``training_params.lr_sched_factors`` of its result files: entry e-1 is epoch e)."""
    published = {1: 0.9755282581475768, 5: 0.5, 9: 0.024471741852423234, 10: 1.0,
                 11: 0.9938441702975689, 29: 0.00615582970243117, 30: 1.0,
                 31: 0.998458666866564, 49: 0.5392295478639225, 50: 0.5}
    factors = LRSchedule("cosine_wr", {}, 3, 50).epoch_factors()
    assert factors[0] == 1.0
    for epoch, value in published.items():
        assert factors[epoch] == pytest.approx(value, rel=1e-12, abs=1e-15), epoch


@pytest.mark.parametrize("pct_start, div_factor, final_div_factor", [(0.3, 25.0, 1e4), (0.25, 10.0, 100.0)])
def test_onecycle_matches_torch_one_cycle_lr(pct_start, div_factor, final_div_factor):
    params = {"pct_start": pct_start, "div_factor": div_factor, "final_div_factor": final_div_factor}
    schedule = LRSchedule("onecycle", params, 9, 7)
    total = 63
    assert schedule.factor(0) == pytest.approx(1 / div_factor)
    assert schedule.factor(total - 1) == pytest.approx(1 / (div_factor * final_div_factor))
    close(our_lrs(schedule), torch_lrs(lambda opt: torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=BASE_LR, total_steps=total, pct_start=pct_start, div_factor=div_factor,
        final_div_factor=final_div_factor, anneal_strategy="cos", cycle_momentum=False), total))


def test_step_has_the_numbers_of_the_deepobs_schedule_runner():
    """Per step, the factor of DeepOBS's per-epoch LambdaLR (its LearningRateScheduleRunner):
    from epoch lr_sched_epochs[i] on, lr · lr_sched_factors[i]."""
    def schedule_factor(epoch, epochs, factors):
        return ([1.0] + [f for e, f in zip(epochs, factors) if epoch >= e])[-1]

    epochs, factors = [2, 5], [0.1, 0.01]
    schedule = LRSchedule("step", {"lr_sched_epochs": epochs, "lr_sched_factors": factors}, 3, 7)
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=BASE_LR)
    per_epoch = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda epoch: schedule_factor(epoch, epochs, factors))
    expected = []
    for _ in range(7):
        expected += [optimizer.param_groups[0]["lr"]] * 3
        optimizer.step()
        per_epoch.step()
    close(our_lrs(schedule), expected)
    assert schedule.epoch_factors() == [1.0, 1.0, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01]
    assert LRSchedule("step", {}, 3, 2).epoch_factors() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("epochs, factors, message", [
    ([2, 1], [0.1, 0.1], "increasing"), ([0], [0.1], "increasing"), ([1, 2], [0.1], "same length"),
    ([1], [-0.5], "finite and >= 0"), ([1], None, "both"), ([3, 3], [1, 1], "increasing")])
def test_step_validation_keeps_deepobs_rules(epochs, factors, message):
    with pytest.raises(ConfigurationError, match=message):
        check_schedule("step", {"lr_sched_epochs": epochs, "lr_sched_factors": factors}, 10)


def test_constant_is_one_everywhere():
    schedule = LRSchedule("constant", None, 5, 3)
    assert {schedule.factor(s) for s in range(16)} == {1.0}
    assert schedule.epoch_factors() == [1.0] * 4


# ------------------------------------------------------------------ epoch factors
def test_epoch_factors_are_the_first_step_of_each_epoch_then_after_the_last():
    schedule = LRSchedule("warmup_cosine", {"warmup_epochs": 2}, 10, 10)
    factors = schedule.epoch_factors()
    assert len(factors) == 11
    assert factors == [schedule.factor(10 * e) for e in range(11)]
    assert factors[0] == 1 / 20 and factors[1] == 11 / 20 and factors[2] == 1.0
    assert factors[10] == 0.0  # after the last step: the minimum
    assert factors[5] == pytest.approx(0.5 * (1 + math.cos(math.pi * 30 / 79)))


def test_decays_stay_at_their_minimum_after_the_last_step():
    for name in ("cosine", "warmup_cosine", "warmup_linear", "wsd", "trapezoidal", "onecycle"):
        schedule = LRSchedule(name, {}, 4, 5)
        last = schedule.factor(schedule.total_steps - 1)
        assert schedule.factor(schedule.total_steps) == last == schedule.epoch_factors()[-1], name


def test_fractional_warmup_epochs_round_to_the_nearest_step():
    schedule = LRSchedule("warmup_cosine", {"warmup_epochs": 0.5}, 7, 3)
    assert schedule.warmup_steps == 4  # 3.5 steps: halves round up
    assert [schedule.factor(s) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert LRSchedule("warmup_linear", {"warmup_epochs": 0.25}, 10, 2).warmup_steps == 3  # 2.5
    assert LRSchedule("wsd", {"warmup_epochs": 0.01}, 10, 10).warmup_steps == 0  # no warmup step
    assert LRSchedule("wsd", {"warmup_epochs": 0.01}, 10, 10).factor(0) == 1.0


def test_default_warmup_is_a_tenth_of_the_run():
    assert check_schedule("warmup_cosine", {}, 30)["warmup_epochs"] == 3.0
    assert check_schedule("trapezoidal", {"warmup_epochs": None}, 5)["warmup_epochs"] == 0.5
    assert LRSchedule("warmup_linear", {}, 8, 5).warmup_steps == 4


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize("name, params, num_epochs, words", [
    ("cosin", {}, 10, ["'cosin'", "constant, step, cosine, warmup_cosine"]),
    ("warmup_cosine", {"warmup_epochs": 10}, 10, ["warmup_epochs 10", "shorter than the run"]),
    ("warmup_cosine", {"warmup_epochs": -1}, 10, ["warmup_epochs", ">= 0", "-1"]),
    ("cosine", {"final_lr_factor": -0.1}, 10, ["final_lr_factor", "[0, 1]", "-0.1"]),
    ("cosine", {"final_lr_factor": 1.5}, 10, ["final_lr_factor", "1.5"]),
    ("cosine", {"warmup_epochs": 2}, 10, ["'cosine'", "warmup_epochs", "final_lr_factor"]),
    ("constant", {"final_lr_factor": 0.1}, 10, ["'constant'", "final_lr_factor", "none"]),
    ("wsd", {"warmup_epochs": 9, "decay_fraction": 0.2}, 10, ["warmup_epochs 9", "fit in the run"]),
    ("wsd", {"decay_fraction": 0}, 10, ["decay_fraction", "(0, 1]"]),
    ("cosine_wr", {"restart_multiplier": 1.5}, 10, ["restart_multiplier", "integer", "1.5"]),
    ("cosine_wr", {"restart_multiplier": 0}, 10, ["restart_multiplier", ">= 1"]),
    ("cosine_wr", {"restart_epochs": 0}, 10, ["restart_epochs", "> 0"]),
    ("onecycle", {"pct_start": 1.0}, 10, ["pct_start", "(0, 1)"]),
    ("onecycle", {"div_factor": -2}, 10, ["div_factor", "> 0"]),
    ("cosine", {"final_lr_factor": "high"}, 10, ["final_lr_factor", "a number", "'high'"]),
    ("cosine", {"final_lr_factor": float("nan")}, 10, ["final_lr_factor", "finite"]),
    ("step", {"lr_sched_epochs": 3, "lr_sched_factors": [0.1]}, 10, ["lr_sched_epochs", "list"]),
    ("cosine", {}, -1, ["num_epochs", ">= 0"]),
])
def test_bad_schedules_get_one_line_errors_naming_the_value(name, params, num_epochs, words):
    with pytest.raises(ConfigurationError) as error:
        check_schedule(name, params, num_epochs)
    message = str(error.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_lrschedule_checks_step_level_constraints():
    with pytest.raises(ConfigurationError, match="pct_start \\* total steps > 1"):
        LRSchedule("onecycle", {}, 1, 3)  # 0.3 · 3 steps
    with pytest.raises(ConfigurationError, match="steps_per_epoch"):
        LRSchedule("cosine", {}, 0, 3)


def test_check_schedule_fills_defaults_and_ignores_other_schedules_absent_flags():
    flags = {param: None for param in all_schedule_parameters()}
    assert check_schedule("wsd", flags, 20) == {"warmup_epochs": 2.0, "decay_fraction": 0.2,
                                               "final_lr_factor": 0.0}
    assert check_schedule("onecycle", flags, 20) == {"pct_start": 0.3, "div_factor": 25.0,
                                                    "final_div_factor": 1e4}
    assert check_schedule("cosine_wr", {"restart_multiplier": 2.0}, 20)["restart_multiplier"] == 2
    assert check_schedule("constant", flags, 1) == {}


def test_parameters_of_every_schedule_share_one_meaning():
    union = all_schedule_parameters()
    for name in SCHEDULES:
        for param, spec in schedule_parameters(name).items():
            assert set(spec) >= {"type", "default", "help"}
            assert spec["type"] is union[param]["type"] and spec["help"] == union[param]["help"]
    assert schedule_parameters("wsd")["decay_fraction"]["default"] == 0.2
    assert schedule_parameters("trapezoidal")["decay_fraction"]["default"] == 0.1
    assert schedule_parameters("step")["lr_sched_epochs"]["nargs"] == "+"


# ------------------------------------------------------------------ application
def test_apply_scales_each_group_from_its_own_base_lr():
    schedule = LRSchedule("warmup_cosine", {"warmup_epochs": 1}, 4, 3)
    first, second = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.SGD([{"params": [first], "lr": 0.1}, {"params": [second], "lr": 0.01}], lr=0.5)
    for step in range(schedule.total_steps):
        factor = schedule.apply(optimizer.param_groups, step)
        assert factor == schedule.factor(step)
        assert optimizer.param_groups[0]["lr"] == 0.1 * factor
        assert optimizer.param_groups[1]["lr"] == 0.01 * factor
        assert [group["initial_lr"] for group in optimizer.param_groups] == [0.1, 0.01]
        optimizer.step()


def test_apply_fills_a_tensor_lr_in_place():
    schedule = LRSchedule("cosine", {}, 2, 2)
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=torch.tensor(0.01))
    rate = optimizer.param_groups[0]["lr"]
    schedule.apply(optimizer.param_groups, 2)
    assert optimizer.param_groups[0]["lr"] is rate
    assert optimizer.param_groups[0]["initial_lr"] == pytest.approx(0.01)
    assert rate.item() == pytest.approx(0.01 * schedule.factor(2))


def test_resume_from_an_optimizer_checkpoint_continues_the_same_rates():
    """The schedule is a function of the step: a restored optimizer continues exactly."""
    schedule = LRSchedule("onecycle", {}, 5, 4)

    def optimizer():
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)

    straight, lrs = optimizer(), []
    for step in range(schedule.total_steps):
        schedule.apply(straight.param_groups, step)
        lrs.append(straight.param_groups[0]["lr"])
    first = optimizer()
    for step in range(7):
        schedule.apply(first.param_groups, step)
    second = optimizer()
    second.load_state_dict(first.state_dict())
    resumed = LRSchedule("onecycle", {}, 5, 4)
    for step in range(7, schedule.total_steps):
        resumed.apply(second.param_groups, step)
        assert second.param_groups[0]["lr"] == lrs[step]


def test_describe_is_json_and_rebuilds_the_schedule():
    schedule = LRSchedule("step", {"lr_sched_epochs": (2,), "lr_sched_factors": [0.1]}, 4, 3)
    description = schedule.describe()
    assert description == {"lr_schedule": "step", "lr_sched_epochs": [2], "lr_sched_factors": [0.1]}
    assert json.loads(json.dumps(description)) == description
    for name in SCHEDULES:
        described = LRSchedule(name, {}, 10, 12).describe()
        json.dumps(described)
        rebuilt = LRSchedule(described.pop("lr_schedule"), described, 10, 12)
        assert rebuilt.epoch_factors() == LRSchedule(name, {}, 10, 12).epoch_factors()
