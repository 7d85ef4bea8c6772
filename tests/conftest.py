"""Test set-up: eight emulated CPU devices, so sharding is tested for real."""

import os

# Must happen before jax is imported anywhere.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest
from helpers import host, make_images, make_pipeline

__all__ = ["host", "make_images", "make_pipeline"]


@pytest.fixture
def small_pipeline():
    return make_pipeline()
