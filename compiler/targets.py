"""The targets of `bpc compile --target`: the printer that writes a module's code, by name.

A target is its printer class: the namespace its code calls, its imports, its helpers' and its
argument checks' templates, and how its code may work in the arrays it makes
(`NumPyPrinter.functional`). `numpy` is the default; `array-api` (`arrayapi.py`) takes the
arrays of any library of the array API standard and writes into an array only by `t += b`, of
one it made (which a library of immutable arrays, JAX, rebinds).
"""

from __future__ import annotations

from .arrayapi import ArrayApiPrinter
from .printer import NumPyPrinter

TARGETS: dict[str, type[NumPyPrinter]] = {"numpy": NumPyPrinter, "array-api": ArrayApiPrinter}
