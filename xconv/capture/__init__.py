"""Front ends shared by ``compare`` and both translations.

- :mod:`xconv.capture.torch_graph`: a PyTorch module exported with ``torch.export``
  (non-strict, functionalised), its nodes with their module paths and source lines, and a
  node-by-node run that keeps the values asked for.
- :mod:`xconv.capture.torch_hooks`: where export fails, the hook capture's watch on the torch
  calls between modules (a Keras activation or Add with no module of its own in the port).
"""

from __future__ import annotations
