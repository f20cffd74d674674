"""What ``verify()`` reports: one :class:`Damage` per damaged thing, gathered in a :class:`VerifyReport`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Damage", "VerifyReport", "describe_error", "regular", "report_json"]


@dataclass(frozen=True)
class Damage:
    """One damaged thing: the file, the member inside it, the image and chunk (where known) and what is wrong."""

    file: str
    problem: str
    member: str | None = None
    image_id: str | None = None
    chunk_id: int | None = None

    def line(self) -> str:
        """One line for people: ``file [member] image ID chunk N: problem``."""
        where = [self.file]
        if self.member:
            where.append(f"[{self.member}]")
        if self.image_id is not None:
            where.append(f"image {self.image_id!r}")
        if self.chunk_id is not None:
            where.append(f"chunk {self.chunk_id}")
        return f"{' '.join(where)}: {self.problem}"


@dataclass
class VerifyReport:
    """What :func:`verify` found: ``damage`` (empty when clean) and counts of what it checked.

    ``unchecked`` counts chunks (or planes) stored without a checksum (written before
    ome-arrow-core wrote them): they were read, but damage to their bytes cannot be seen.
    """

    path: str
    kind: str
    damage: list[Damage] = field(default_factory=list)
    images: int = 0
    chunks: int = 0
    checksummed: int = 0
    unchecked: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is damaged."""
        return not self.damage

    def add(self, file: Path | str, problem: str, **where: Any) -> None:
        """Record damage to ``file``."""
        self.damage.append(Damage(str(file), problem, **where))

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-able data."""
        return {
            "path": self.path,
            "kind": self.kind,
            "ok": self.ok,
            "images": self.images,
            "chunks": self.chunks,
            "checksummed": self.checksummed,
            "unchecked": self.unchecked,
            "notes": self.notes,
            "damage": [asdict(d) for d in self.damage],
        }

    def lines(self) -> Iterator[str]:
        """The report for people: one line per damage, then a summary."""
        for d in self.damage:
            yield d.line()
        yield from self.notes
        counts = (
            f"{self.images} image(s), {self.chunks} chunk(s) read, {self.checksummed} matched their "
            f"checksum, {self.unchecked} stored without one"
        )
        yield f"{'ok' if self.ok else 'DAMAGED'}: {self.path} ({self.kind}): {counts}" + (
            "" if self.ok else f"; {len(self.damage)} problem(s)"
        )


def describe_error(exc: BaseException) -> str:
    """``Type: first line of the message`` of an exception, for a report line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def regular(report: VerifyReport, path: Path) -> bool:
    """True when ``path`` is a regular file; else it is reported (a FIFO or device is never opened: it could block)."""
    from .boundary import require_regular_file

    try:
        require_regular_file(path)
    except Exception as exc:
        report.add(path, f"cannot be checked: {describe_error(exc)}")
        return False
    return True


def report_json(report: VerifyReport) -> str:
    """The report as indented JSON text."""
    return json.dumps(report.to_json(), indent=2)
