"""Fixtures shared by several test modules (none is autouse: a module opts in with ``pytestmark``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


def _pinned_threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread per test: for tiny tensors it is many times faster than two on a busy 2-core machine.

    Opt in per module with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    yield from _pinned_threads(1)


@pytest.fixture(scope="module")
def one_torch_thread_module() -> Iterator[None]:
    """:func:`one_torch_thread` for a whole module, set before its module-scoped fixtures are built."""
    yield from _pinned_threads(1)
