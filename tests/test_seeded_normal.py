"""The seeded normal stream is exactly specified (C++ and Python must agree bit for bit)."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.seeded_normal import seeded_normal, splitmix64_words


def test_splitmix64_known_answers():
    # Published SplitMix64 outputs for seed 1234567 (the reference C implementation's test vector).
    assert [int(w) for w in splitmix64_words(1234567, 0, 3)] == [
        6457827717110365317,
        3203168211198807973,
        9817491932198370423,
    ]


def test_words_are_counter_based():
    assert np.array_equal(splitmix64_words(9, 5, 4), splitmix64_words(9, 0, 9)[5:])


def test_first_normals_by_hand():
    w = splitmix64_words(42, 0, 2)
    u = ((w >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
    expected = np.float32(np.sqrt(-2 * np.log(u[0])) * np.cos(2 * np.pi * u[1]))
    assert seeded_normal(42, 1)[0, 0] == expected


def test_vectors_are_slices_of_one_stream():
    four = seeded_normal(3, 16, count=4)
    assert four.shape == (4, 16) and four.dtype == np.float32
    assert np.array_equal(seeded_normal(3, 16, count=2, first=2), four[2:])
    assert np.array_equal(seeded_normal(3, 64)[0], four.ravel())


def test_distribution_is_standard_normal():
    x = seeded_normal(0, 512, count=64).ravel()
    assert abs(x.mean()) < 0.02 and abs(x.std() - 1.0) < 0.02
    assert not np.array_equal(seeded_normal(0, 512), seeded_normal(1, 512))


@pytest.mark.parametrize("seed", [-1, 2**64])
def test_seed_range(seed):
    with pytest.raises(ValueError):
        seeded_normal(seed, 4)


def test_largest_seed_works():
    assert np.isfinite(seeded_normal(2**64 - 1, 8)).all()
