"""Symbolic dimensions: polynomials with integer coefficients over dimension names.

`C*H*W`, `2*H` and `T - 1` are all `Dim`s. Two dimensions are equal when their normal forms are,
which is all that shape checking needs: `n` and `m` are different dimensions, `H + H` is `2*H`.
"""

from __future__ import annotations

from dataclasses import dataclass

Monomial = tuple[str, ...]  # sorted symbol names, with repetition for powers


@dataclass(frozen=True)
class Dim:
    terms: tuple[tuple[Monomial, int], ...]  # sorted, no zero coefficients

    @staticmethod
    def of(value: int | str | Dim) -> Dim:
        if isinstance(value, Dim):
            return value
        if isinstance(value, str):
            return Dim((((value,), 1),))
        return Dim((((), int(value)),)) if value else Dim(())

    @staticmethod
    def _make(acc: dict[Monomial, int]) -> Dim:
        return Dim(tuple(sorted((m, c) for m, c in acc.items() if c)))

    def __add__(self, other: Dim | int) -> Dim:
        acc = dict(self.terms)
        for m, c in Dim.of(other).terms:
            acc[m] = acc.get(m, 0) + c
        return Dim._make(acc)

    __radd__ = __add__

    def __neg__(self) -> Dim:
        return Dim(tuple((m, -c) for m, c in self.terms))

    def __sub__(self, other: Dim | int) -> Dim:
        return self + -Dim.of(other)

    def __rsub__(self, other: Dim | int) -> Dim:
        return Dim.of(other) - self

    def __mul__(self, other: Dim | int) -> Dim:
        acc: dict[Monomial, int] = {}
        for m1, c1 in self.terms:
            for m2, c2 in Dim.of(other).terms:
                m = tuple(sorted(m1 + m2))
                acc[m] = acc.get(m, 0) + c1 * c2
        return Dim._make(acc)

    __rmul__ = __mul__

    @property
    def is_const(self) -> bool:
        return all(not m for m, _ in self.terms)

    @property
    def value(self) -> int:
        """The integer value of a constant dimension."""
        assert self.is_const, self
        return self.terms[0][1] if self.terms else 0

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(s for m, _ in self.terms for s in m)

    def subs(self, mapping: dict[str, Dim]) -> Dim:
        out = Dim(())
        for m, c in self.terms:
            term = Dim.of(c)
            for s in m:
                term = term * mapping.get(s, Dim.of(s))
            out = out + term
        return out

    def render(self, name=lambda s: s, scale: str = " * ") -> str:
        """A Python expression for this dimension, with `name` mapping symbols to variables;
        `scale` joins a coefficient to its symbols (`2 * n`; `2 n` in math notation)."""
        if not self.terms:
            return "0"
        parts = []
        for m, c in sorted(self.terms, key=lambda t: (-len(t[0]), t[0])):
            text = " * ".join(name(s) for s in m)
            if abs(c) != 1 or not m:
                text = str(abs(c)) + (scale + text if m else "")
            parts.append(("- " if c < 0 else "+ ") + text)
        out = " ".join(parts)
        return out[2:] if out.startswith("+ ") else "-" + out[2:]

    @property
    def is_sum(self) -> bool:
        """True when rendering needs parentheses inside a product."""
        return len(self.terms) > 1 or (len(self.terms) == 1 and self.terms[0][1] < 0)

    @property
    def is_product(self) -> bool:
        return len(self.terms) == 1 and (len(self.terms[0][0]) + (self.terms[0][1] != 1)) > 1

    def __str__(self) -> str:
        return self.render().replace(" * ", "*")

    def __repr__(self) -> str:
        return f"Dim({self})"


Shape = tuple[Dim, ...]


def show_shape(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def product(dims) -> Dim:
    out = Dim.of(1)
    for d in dims:
        out = out * d
    return out
