"""Symbolic dimensions: polynomials in dimension names with rational coefficients.

`C*H*W`, `2*H`, `T - 1`, `H/2`, `C/G` and `(n + 1)//2` are all `Dim`s. A term is a coefficient
(an integer, or a `Fraction` after an exact division) times a monomial: a sorted tuple of atoms,
each a dimension name, a `Recip` (`1/G`, from an exact division by a name) or a `FloorDiv` (a
floor division that does not simplify). Two dimensions are equal when their normal forms are:
`2*H - H` is `H`, `(4*H)/4` is `H`, `G*(C/G)` is `C` and `(H + 2*1 - 3)//1 + 1` is `H`.

An exact division is valid only where it divides; `bpc.conditions` records that condition where
the division is written. `nonnegative` proves `d >= 0` for every size at least a lower bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Recip:
    """`1/name`: only ever multiplied by a multiple of `name` (a division that divides)."""

    name: str

    def __str__(self) -> str:
        return f"1/{self.name}"


@dataclass(frozen=True)
class FloorDiv:
    """`num // den` that does not simplify: `(n + 1)//2`."""

    num: Dim
    den: Dim

    def __str__(self) -> str:
        return f"{_paren(self.num)}//{_paren(self.den)}"


Atom = str | Recip | FloorDiv
Monomial = tuple[Atom, ...]  # sorted by `_atom_key`, with repetition for powers


def _atom_key(a: Atom) -> tuple:
    if a.__class__ is str:
        return (0, a)
    if a.__class__ is Recip:
        return (1, a.name)
    return (2, str(a))


def _mono_key(m: Monomial) -> tuple:
    return tuple(_atom_key(a) for a in m)


def _coef(c) -> int | Fraction:
    return c.numerator if c.__class__ is Fraction and c.denominator == 1 else c


def _times(m1: Monomial, m2: Monomial) -> Monomial:
    """The product of two monomials, a name cancelling its reciprocal."""
    if not m1 or not m2:
        return m1 or m2
    out = list(m1)
    for a in m2:
        inverse = Recip(a) if a.__class__ is str else a.name if a.__class__ is Recip else None
        if inverse is not None and inverse in out:
            out.remove(inverse)
        else:
            out.append(a)
    return tuple(sorted(out, key=_atom_key))


@dataclass(frozen=True)
class Dim:
    terms: tuple[tuple[Monomial, int | Fraction], ...]  # sorted, no zero coefficients

    @staticmethod
    def of(value: int | str | Dim) -> Dim:
        if isinstance(value, Dim):
            return value
        if isinstance(value, str):
            return Dim((((value,), 1),))
        return Dim((((), int(value)),)) if value else Dim(())

    @staticmethod
    def _make(acc: dict[Monomial, int | Fraction]) -> Dim:
        items = ((m, _coef(c)) for m, c in acc.items() if c)
        return Dim(tuple(sorted(items, key=lambda t: _mono_key(t[0]))))

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
        acc: dict[Monomial, int | Fraction] = {}
        for m1, c1 in self.terms:
            for m2, c2 in Dim.of(other).terms:
                m = _times(m1, m2)
                acc[m] = acc.get(m, 0) + c1 * c2
        return Dim._make(acc)

    __rmul__ = __mul__

    def exact_div(self, other: Dim | int) -> Dim:
        """`self / other`, valid where it divides: by a number or by one term (`C/G`).
        Raises ZeroDivisionError for 0 and ValueError for a sum (`x / (n + 1)`)."""
        other = Dim.of(other)
        if not other.terms:
            raise ZeroDivisionError("division by a zero dimension")
        if len(other.terms) > 1:
            raise ValueError(f"cannot divide by the sum {other}")
        ((m, c),) = other.terms
        if any(a.__class__ is not str for a in m):
            raise ValueError(f"cannot divide by {other}")
        inverse = tuple(sorted((Recip(a) for a in m), key=_atom_key))
        return self * Dim((((inverse), Fraction(1, c) if c != 1 else 1),))

    def floor_div(self, other: Dim | int) -> Dim:
        """`self // other` for a positive `other`: exact when the quotient is a polynomial with
        integer coefficients (`(4*H)//4` is `H`), else the whole-number part taken out
        (`(2*n + 1)//2` is `n`, `(2*n + 3)//2` is `n + 1`) and the rest kept as a `FloorDiv`."""
        other = Dim.of(other)
        if self.integral:
            try:
                q = self.exact_div(other)
            except ValueError:
                q = None
            if q is not None and q.integral:
                return q
        if not (other.is_const and other.value > 0 and self.integral):
            return Dim((((FloorDiv(self, other),), 1),))
        k = other.value
        whole = Dim(tuple((m, c // k) for m, c in self.terms))
        rest = self - whole * k  # every coefficient in 0..k-1
        if rest.is_const:
            return whole + rest.value // k
        return whole + Dim((((FloorDiv(rest, other),), 1),))

    @property
    def integral(self) -> bool:
        """True when every coefficient is an integer and no name is divided by: a whole number
        for all whole sizes."""
        return all(
            c.__class__ is int and all(a.__class__ is not Recip for a in m) for m, c in self.terms
        )

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
        out: set[str] = set()
        for m, _ in self.terms:
            for a in m:
                if a.__class__ is str:
                    out.add(a)
                elif a.__class__ is Recip:
                    out.add(a.name)
                else:
                    out |= a.num.symbols | a.den.symbols
        return frozenset(out)

    def subs(self, mapping: dict[str, Dim]) -> Dim:
        out = Dim(())
        for m, c in self.terms:
            term = Dim((((), c),))
            for a in m:
                term = term * _subs_atom(a, mapping)
            out = out + term
        return out

    def evaluate(self, sizes: dict[str, int]) -> int | Fraction:
        """The value for these sizes (a `Fraction` where a division does not divide)."""
        total: int | Fraction = 0
        for m, c in self.terms:
            for a in m:
                if a.__class__ is str:
                    c = c * sizes[a]
                elif a.__class__ is Recip:
                    c = Fraction(c, sizes[a.name]) if c.__class__ is int else c / sizes[a.name]
                else:
                    c = c * (_whole(a.num.evaluate(sizes)) // _whole(a.den.evaluate(sizes)))
            total += c
        return _coef(total) if total.__class__ is Fraction else total

    def over(self) -> tuple[Dim, Dim]:
        """`(num, den)` with `self == num / den`: both integral, `den` a positive monomial
        (`H/2` is `(H, 2)`, `C/G + 1` is `(C + G, G)`)."""
        scale = math.lcm(*(c.denominator for _, c in self.terms if c.__class__ is Fraction))
        den = Dim.of(scale)
        for name in sorted({a.name for m, _ in self.terms for a in m if a.__class__ is Recip}):
            power = max(m.count(Recip(name)) for m, _ in self.terms)
            for _ in range(power):
                den = den * name
        return self * den, den

    def render(self, name=lambda s: s, scale=" * ", div=" // ", floor=" // ") -> str:
        """A Python expression for this dimension, with `name` mapping symbols to variables;
        `scale` joins a coefficient to its symbols (`2 * n`; `2 n` in math notation), `div`
        writes an exact division (`H // 2`; `H/2` for people) and `floor` a floor division."""
        if not self.integral:
            num, den = self.over()
            top, bottom = num.render(name, scale, div, floor), den.render(name, scale, div, floor)
            top = f"({top})" if num.is_sum else top
            bottom = f"({bottom})" if den.is_product or den.is_sum else bottom
            return f"{top}{div}{bottom}"
        if not self.terms:
            return "0"
        folded = self._floor_folded()
        if folded is not None:
            return folded.render(name, scale, div, floor)
        parts = []
        for i, (m, c) in enumerate(sorted(self.terms, key=_term_order)):
            alone = len(m) == 1 and abs(c) == 1 and (c > 0 or i > 0)  # (`-a // 2` floors -a)
            text = " * ".join(_render_atom(a, name, scale, div, floor, alone) for a in m)
            if abs(c) != 1 or not m:
                text = str(abs(c)) + (scale + text if m else "")
            parts.append(("- " if c < 0 else "+ ") + text)
        out = " ".join(parts)
        return out[2:] if out.startswith("+ ") else "-" + out[2:]

    def _floor_folded(self) -> Dim | None:
        """The same size with the terms outside its one floor division moved inside (but a
        positive number), for people: `(H - K)//2 + 2` and `(K - 1)//2`, not the canonical
        `(H + K)//2 - K + 2` and `(K + 1)//2 - 1` (whose numerators have no negative
        coefficient); None where there is nothing to move."""
        floors = [(m, c) for m, c in self.terms if any(a.__class__ is FloorDiv for a in m)]
        if len(floors) != 1 or floors[0][1] != 1 or len(floors[0][0]) != 1:
            return None
        (f,), _ = floors[0]
        moved = [(m, c) for m, c in self.terms if (m and m != (f,)) or (not m and c < 0)]
        if (
            not moved
            or not f.den.is_const
            or any(not isinstance(a, str) for m, _ in moved for a in m)
        ):
            return None
        num = f.num + Dim(tuple(moved)) * f.den.value
        constant = self - Dim(tuple(moved)) - Dim((((f,), 1),))
        return Dim((((FloorDiv(num, f.den),), 1),)) + constant

    @property
    def is_sum(self) -> bool:
        """True when rendering needs parentheses inside a product."""
        if not self.integral or any(a.__class__ is FloorDiv for m, _ in self.terms for a in m):
            return True  # written with `//`: parenthesized wherever it is an operand
        return len(self.terms) > 1 or (len(self.terms) == 1 and self.terms[0][1] < 0)

    @property
    def is_product(self) -> bool:
        return len(self.terms) == 1 and (len(self.terms[0][0]) + (self.terms[0][1] != 1)) > 1

    def __str__(self) -> str:
        return self.render(scale="*", div="/", floor="//").replace(" * ", "*")

    def __repr__(self) -> str:
        return f"Dim({self})"


def _term_order(term) -> tuple:
    """Products of more symbols first, added terms before subtracted ones: `W - K + 3`."""
    m, c = term
    return (-len(m), bool(m) and c < 0, _mono_key(m))


def _whole(v) -> int:
    return v.numerator if v.__class__ is Fraction and v.denominator == 1 else v


def _subs_atom(a: Atom, mapping: dict[str, Dim]) -> Dim:
    if a.__class__ is str:
        return mapping.get(a, Dim.of(a))
    if a.__class__ is Recip:
        return Dim.of(1).exact_div(mapping.get(a.name, Dim.of(a.name)))
    return a.num.subs(mapping).floor_div(a.den.subs(mapping))


def _render_atom(a: Atom, name, scale: str, div: str, floor: str, alone: bool) -> str:
    if a.__class__ is str:
        return name(a)
    assert a.__class__ is FloorDiv, a  # a reciprocal is written by `render`, over a denominator
    num, den = (x.render(name, scale, div, floor) for x in (a.num, a.den))
    num = f"({num})" if a.num.is_sum else num
    den = f"({den})" if a.den.is_sum or a.den.is_product else den
    return f"{num}{floor}{den}" if alone else f"({num}{floor}{den})"


def _paren(d: Dim) -> str:
    return f"({d})" if d.is_sum or d.is_product else str(d)


Shape = tuple[Dim, ...]


def show_shape(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def product(dims) -> Dim:
    out = Dim.of(1)
    for d in dims:
        out = out * d
    return out


# ---------------------------------------------------------------------------------------------
# Signs: what holds for every size


def nonnegative(d: Dim, lower: dict[str, int] | None = None, default: int = 1) -> bool:
    """True when `d >= 0` for every size at least its lower bound (`lower`, else `default`):
    with the divisions cleared (by positive factors), every name written `lower + u`, `u >= 0`,
    and every floor division by its own lower bound plus `u`, no coefficient is negative.
    (`T - 1` is, for sizes of 1 and more; `T - 2` and `2 - T` may be either.)"""
    lower = lower or {}
    num, _ = d.over()
    shift: dict[str, Dim] = {}
    for s in num.symbols:
        shift[s] = Dim.of(s) + lower.get(s, default)
    floors: dict[FloorDiv, Dim] = {}
    for m, _ in num.terms:
        for a in m:
            if a.__class__ is FloorDiv and a not in floors:
                low = _lowest(a.num, lower, default)
                den = a.den if a.den.is_const else None
                if low is None or den is None or den.value <= 0:
                    return False
                floors[a] = Dim.of(low // den.value)
    total = Dim(())
    for m, c in num.terms:
        term = Dim.of(c)
        for a in m:
            if a.__class__ is FloorDiv:
                term = term * (floors[a] + Dim.of("_floor" + str(id(a))))
            else:
                term = term * shift[a]
        total = total + term
    return all(c >= 0 for _, c in total.terms)


def _lowest(d: Dim, lower: dict[str, int], default: int) -> int | None:
    """A lower bound of an integral `d` over the sizes, when one follows from the shift."""
    if not d.integral:  # (a reciprocal of a shifted name is no polynomial)
        return None
    try:
        shifted = d.subs({s: Dim.of(s) + lower.get(s, default) for s in d.symbols})
    except ValueError:  # a division by a name inside a floor division: `(a/b)//2`
        return None
    if any(m and c < 0 for m, c in shifted.terms) or not shifted.integral:
        return None
    if any(a.__class__ is FloorDiv for m, _ in shifted.terms for a in m):
        return None
    return dict(shifted.terms).get((), 0)


def negative(d: Dim, lower: dict[str, int] | None = None, default: int = 1) -> bool:
    """True when `d < 0` for every size at least its lower bound."""
    num, _ = d.over()
    return nonnegative(-num - 1, lower, default)
