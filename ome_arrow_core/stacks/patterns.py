"""Bio-Formats file patterns: ``E99_C<111,222>_ZS<000-021>.tif`` names one file per (c, z).

Each ``<...>`` group lists the values one axis takes, separated by commas: plain values
(``<DAPI,GFP>``), numeric ranges ``a-b`` with an optional step ``a-b:s`` (zero padded to the
width of ``a`` when ``a`` and ``b`` have the same number of digits, as Bio-Formats pads:
``<000-021>`` gives ``000``..``021``, ``<1-10>`` gives ``1``..``10``), and single-letter
ranges (``<A-H>``). The letters right before a group name its axis (case-insensitive):
see :data:`AXIS_WORDS`. A series word (``s``, ``sp``, ``series``) or any other word names no
axis of one image; :func:`group_axes` then needs the axes given explicitly.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ArgumentError

__all__ = [
    "AXIS_WORDS",
    "SERIES_WORDS",
    "Group",
    "Pattern",
    "is_pattern",
    "parse_pattern",
    "group_axes",
    "expand_values",
]

#: Words that name an axis when they end right before a ``<...>`` group (as Bio-Formats guesses axes).
AXIS_WORDS: dict[str, frozenset[str]] = {
    "C": frozenset({"c", "ch", "channel", "w", "wavelength"}),
    "T": frozenset({"t", "tl", "tp", "time", "timepoint"}),
    "Z": frozenset({"z", "zs", "sec", "fp", "focal", "focalplane"}),
}
#: Bio-Formats' series words: separate images there, so no axis of one image here.
SERIES_WORDS: frozenset[str] = frozenset({"s", "sp", "series"})

_GROUP = re.compile(r"<([^<>]*)>")
_NUM_RANGE = re.compile(r"^(\d+)-(\d+)(?::(\d+))?$")
_ALPHA_RANGE = re.compile(r"^([A-Za-z])-([A-Za-z])(?::(\d+))?$")
_WORD = re.compile(r"([A-Za-z]+)$")


@dataclass(frozen=True)
class Group:
    """One ``<...>`` group: the text inside it, the word before it and the values it expands to."""

    spec: str
    word: str
    values: tuple[str, ...]

    @property
    def guessed_axis(self) -> str | None:
        """T, C or Z when :attr:`word` names that axis, else None."""
        low = self.word.lower()
        return next((ax for ax, words in AXIS_WORDS.items() if low in words), None)

    @property
    def numeric(self) -> bool:
        """True when every value is a number (so the values are positions, not names)."""
        return all(v.isdigit() for v in self.values)


@dataclass(frozen=True)
class Pattern:
    """A parsed pattern: literal ``pieces`` around its ``groups`` (one more piece than groups)."""

    text: str
    pieces: tuple[str, ...]
    groups: tuple[Group, ...]

    def name(self, values: Sequence[str]) -> str:
        """The file name for one value of each group."""
        return "".join(p + v for p, v in zip(self.pieces, values)) + self.pieces[-1]

    def names(self) -> list[tuple[tuple[int, ...], str]]:
        """Every (position in each group, file name), the last group varying fastest."""
        ranges = [range(len(g.values)) for g in self.groups]
        return [(pos, self.name([g.values[i] for g, i in zip(self.groups, pos)])) for pos in itertools.product(*ranges)]


def is_pattern(text: str) -> bool:
    """True when ``text`` holds a ``<...>`` group."""
    return bool(_GROUP.search(text))


def _bad(pattern: str, what: str) -> ArgumentError:
    return ArgumentError(f"file pattern {pattern!r}: {what}")


def _range(pattern: str, lo: str, hi: str, step_text: str | None, numeric: bool) -> list[str]:
    step = int(step_text) if step_text else 1
    if step < 1:
        raise _bad(pattern, f"the step of range <{lo}-{hi}:{step_text}> must be at least 1")
    if not numeric and lo.isupper() != hi.isupper():
        raise _bad(pattern, f"the letter range <{lo}-{hi}> mixes upper and lower case")
    a, b = (int(lo), int(hi)) if numeric else (ord(lo), ord(hi))
    if b < a:
        raise _bad(pattern, f"the range <{lo}-{hi}> runs backwards; write it as <{hi}-{lo}>")
    if not numeric:
        return [chr(v) for v in range(a, b + 1, step)]
    width = len(lo) if len(lo) == len(hi) else 0
    return [str(v).zfill(width) for v in range(a, b + 1, step)]


def expand_values(spec: str, pattern: str = "") -> tuple[str, ...]:
    """The values a group's text ``spec`` lists, in order (lists, ``a-b[:s]`` and ``A-H`` ranges)."""
    out: list[str] = []
    for item in spec.split(","):
        item = item.strip()
        num, alpha = _NUM_RANGE.match(item), _ALPHA_RANGE.match(item)
        if num:
            out += _range(pattern, num.group(1), num.group(2), num.group(3), True)
        elif alpha:
            out += _range(pattern, alpha.group(1), alpha.group(2), alpha.group(3), False)
        elif item and not any(ch in item for ch in "/\\"):
            out.append(item)
        else:
            raise _bad(
                pattern,
                f"group <{spec}> has an empty or path-like value {item!r}; "
                "list values as <a,b,c> or ranges as <000-021>",
            )
    twice = sorted({v for v in out if out.count(v) > 1})
    if twice:
        raise _bad(pattern, f"group <{spec}> lists {twice} more than once; each value names one position")
    return tuple(out)


def parse_pattern(text: str) -> Pattern:
    """Parse ``text``; ArgumentError for an unclosed ``<``, a stray ``>``, an empty group or a bad range."""
    pieces: list[str] = []
    groups: list[Group] = []
    last = 0
    for m in _GROUP.finditer(text):
        piece = text[last : m.start()]
        if "<" in piece or ">" in piece:
            raise _bad(text, "has an unmatched '<' or '>'")
        word = _WORD.search(piece)
        groups.append(Group(m.group(1), word.group(1) if word else "", expand_values(m.group(1), text)))
        pieces.append(piece)
        last = m.end()
    tail = text[last:]
    if "<" in tail or ">" in tail:
        raise _bad(text, "has an unmatched '<' or '>'")
    if not groups:
        raise _bad(text, "has no <...> group")
    return Pattern(text, (*pieces, tail), tuple(groups))


def group_axes(pattern: Pattern, dim_order: str | None = None) -> str:
    """The stacking axis of each group: ``dim_order`` (one letter of T, C, Z per group, in order) or the
    axis the word before each group names; ArgumentError when a word names none and no ``dim_order`` is given."""
    if dim_order is not None:
        axes = dim_order.upper()
        if len(axes) != len(pattern.groups):
            raise _bad(
                pattern.text,
                f"dim_order={dim_order!r} names {len(axes)} axes but the pattern has "
                f"{len(pattern.groups)} <...> groups; give one axis per group, in order",
            )
    else:
        guessed = [g.guessed_axis for g in pattern.groups]
        for i, (g, ax) in enumerate(zip(pattern.groups, guessed)):
            if ax is None:
                kind = (
                    "a series word (Bio-Formats opens series as separate images)"
                    if g.word.lower() in SERIES_WORDS
                    else "no axis"
                )
                known = "; ".join(f"{a}: {', '.join(sorted(w))}" for a, w in AXIS_WORDS.items())
                raise _bad(
                    pattern.text,
                    f"group {i + 1} <{g.spec}> follows {g.word or 'no letters'!r}, which names "
                    f"{kind}; words that name an axis are {known}. Pass dim_order= with "
                    "one axis (T, C or Z) per group, e.g. dim_order='TZ'",
                )
        axes = "".join(a for a in guessed if a)
    bad = sorted(set(axes) - set("TCZ"))
    if bad:
        raise _bad(pattern.text, f"groups stack along T, C or Z only, not {''.join(bad)!r}")
    if len(set(axes)) != len(axes):
        raise _bad(
            pattern.text,
            f"two groups map to the same axis ({axes!r}); each axis takes one group (pass dim_order= to name them)",
        )
    return axes
