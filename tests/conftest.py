import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None


def has_keras() -> bool:
    """Keras importable; imported the way xconv imports it, so TensorFlow's start-up lines stay hidden."""
    from xconv._optional import require
    from xconv.errors import MissingDependencyError

    try:
        require("keras")
    except MissingDependencyError:
        return False
    return True


needs_keras = pytest.mark.skipif(not has_keras(), reason="needs Keras 3 (pip install 'xconv[tf]')")
needs_cuda = pytest.mark.skipif(torch is None or not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="session")
def twins():
    """Cache of (keras, torch) zoo twins with transferred weights, keyed by (name, dtype)."""
    from xconv import transfer_weights, zoo

    cache = {}

    def get(name, dtype="float32"):
        if (name, dtype) not in cache:
            k = zoo.build(name, "keras", seed=1, dtype=dtype, random_biases=True)
            t = zoo.build(name, "torch", seed=1, dtype=dtype)
            transfer_weights(k, t)
            cache[name, dtype] = (k, t)
        return cache[name, dtype]

    return get


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
