"""Fixtures of the learned reconstruction tests."""

from __future__ import annotations

import pytest
from lr_cases import make_case

from petspect.learned_recon.cases import ReconCase


@pytest.fixture(scope="module")
def small_case() -> ReconCase:
    return make_case()
