"""Step schedules: both readings of n steps, FFE n*, spec strings and the paper's NFE table."""

from __future__ import annotations

import pytest

from harness.diffusion.schedules import StepSchedule
from harness.errors import ConfigError

# docs/references.md#the-asd-paper: 21 latent frames = 7 chunks; each chunk costs its steps + 1 cache pass.
PAPER_NFE_7_CHUNKS = {"4": 35, "2": 21, "2*": 23, "1": 14, "1*": 17}


@pytest.mark.parametrize("spec, nfe", sorted(PAPER_NFE_7_CHUNKS.items()))
def test_nfe_for_seven_chunks_matches_the_paper(spec, nfe):
    schedule = StepSchedule.from_spec(spec)
    assert schedule.nfe(7) == nfe
    assert schedule.label == spec


def test_ffe_steps_per_chunk():
    schedule = StepSchedule.from_spec("1*")
    assert [schedule.steps_for_chunk(i) for i in range(7)] == [4, 1, 1, 1, 1, 1, 1]
    assert schedule.timesteps_for_chunk(0) == pytest.approx([1000, 937.5, 2500 / 3, 625])
    assert schedule.timesteps_for_chunk(3) == [1000.0]


def test_two_readings_of_two_steps():
    prefix = StepSchedule.uniform(2, reading="prefix")
    skip = StepSchedule.uniform(2, reading="skip")
    assert prefix.raw_steps_for_chunk(0) == (1000.0, 750.0)
    assert skip.raw_steps_for_chunk(0) == (1000.0, 500.0)
    assert prefix.timesteps_for_chunk(1) == pytest.approx([1000.0, 937.5])
    assert skip.timesteps_for_chunk(1) == pytest.approx([1000.0, 2500 / 3])
    assert prefix.label == skip.label == "2"
    assert skip.spec == "[1000,500]"


def test_explicit_list_spec_and_round_trip():
    schedule = StepSchedule.from_spec("[1000, 500]")
    assert schedule.raw_steps_for_chunk(5) == (1000.0, 500.0)
    assert schedule.label == "2" and not schedule.is_ffe
    again = StepSchedule.from_spec(schedule.spec)
    assert again == schedule
    ffe = StepSchedule.from_spec("[1000,500]*")
    assert ffe.label == "2*" and ffe.raw_steps_for_chunk(0) == (1000.0, 750.0, 500.0, 250.0)
    assert StepSchedule.from_spec("2*", reading="skip").raw_steps_for_chunk(1) == (1000.0, 500.0)


def test_skip_reading_of_every_count():
    assert [StepSchedule.uniform(n, reading="skip").steps for n in (1, 3, 4)] == [
        (1000.0,),
        (1000.0, 750.0, 500.0),
        (1000.0, 750.0, 500.0, 250.0),
    ]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("5", "between 1 and 4"),
        ("0", "between 1 and 4"),
        ("two", "not a step count"),
        ("[500,1000]", "decreasing"),
        ("[1000,0]", "outside"),
    ],
)
def test_bad_specs_give_clear_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        StepSchedule.from_spec(spec)


def test_unknown_reading():
    with pytest.raises(ConfigError, match="reading 'middle'"):
        StepSchedule.uniform(2, reading="middle")
