"""Oracle evaluation rules for more operations, one module per family.

Each module defines `RULES`: op name -> `rule(node, args, sizes)` returning the value, written
with `autograd.numpy` from the operation's textbook definition. `tests/oracle.py` merges them.
"""

from __future__ import annotations

import importlib
import pkgutil

RULES: dict = {}
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    RULES.update(importlib.import_module(f"{__name__}.{_info.name}").RULES)
