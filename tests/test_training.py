import numpy as np
import pytest
import torch

from sklearn_resnet.training import schedule_factor, seeded


def test_cosine_schedule_warms_up_then_decays_to_zero():
    total = 200
    factors = [schedule_factor("cosine", step, total) for step in range(total + 1)]
    warmup = 10
    assert factors[0] == pytest.approx(1 / warmup)
    assert factors[warmup - 1] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[warmup:], factors[warmup + 1 :], strict=False))
    assert factors[-1] == pytest.approx(0.0, abs=1e-12)


def test_step_schedule_divides_by_ten_at_half_and_three_quarters():
    assert schedule_factor("step", 49, 100) == 1.0
    assert schedule_factor("step", 50, 100) == pytest.approx(0.1)
    assert schedule_factor("step", 75, 100) == pytest.approx(0.01)


def test_constant_schedule():
    assert {schedule_factor("constant", s, 10) for s in range(10)} == {1.0}


def test_seeded_is_reproducible_and_restores_the_global_rng():
    before = torch.get_rng_state()
    numpy_before = np.random.get_state()[1].copy()
    with seeded(7, "cpu"):
        first = torch.rand(3)
    with seeded(7, "cpu"):
        second = torch.rand(3)
    assert torch.equal(first, second)
    assert torch.equal(torch.get_rng_state(), before)
    assert np.array_equal(np.random.get_state()[1], numpy_before)


def test_cosine_schedule_never_exceeds_the_base_rate_and_peaks_right_after_warmup():
    total = 200  # warm-up of 10 steps
    factors = [schedule_factor("cosine", step, total) for step in range(total + 1)]
    assert max(factors) <= 1.0
    assert factors[10] == pytest.approx(1.0)  # first step of the decay: cos(0)


@pytest.mark.parametrize(("total", "first"), [(29, 1.0), (30, 0.5), (39, 0.5)])
def test_warmup_is_five_percent_of_the_steps_rounded(total, first):
    # docs/training-recipe.md: "a fit of fewer than 30 steps starts at the full rate"
    assert schedule_factor("cosine", 0, total) == pytest.approx(first)
