"""The ``>>>`` examples in the public modules run (those that need no framework)."""

import doctest

import pytest

import xconv
import xconv._quiet
import xconv.errors
import xconv.layouts
import xconv.padding
import xconv.weights
import xconv.zoo


@pytest.mark.parametrize(
    "module", [xconv, xconv.errors, xconv._quiet, xconv.layouts, xconv.padding, xconv.weights, xconv.zoo], ids=lambda m: m.__name__
)
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
