"""Tables that fit the terminal: one line per row, long values cut with `…`.

Rich wraps a cell over several lines when a table is wider than the terminal, which makes a
listing hard to read and to grep (at 80 columns, or in a pipe, where the width is 80). Here each
row stays one line: the columns marked `flex` give up width first (down to their `min_width`),
cut with an ellipsis; the full values are in the command's `show` view or its `--json`. No
borders, as `ps` or `kubectl get`: they would take the width the values need.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["Column", "FitTable", "console", "print_table"]

_GAP = 2  # spaces between two columns


def console() -> Console:
    """The console tables print to: the terminal's width, 80 in a pipe."""
    return Console()


@dataclass(frozen=True, slots=True)
class Column:
    """One column; `flex` ones are cut (with `…`) before any other when space runs out."""

    name: str
    flex: bool = False
    justify: Literal["left", "right"] = "left"
    min_width: int = 6  # a cut column still shows this much (the last cell is the ellipsis)


@dataclass
class FitTable:
    """Rows collected first, so each column's width is known before rendering."""

    title: str
    columns: Sequence[Column]
    show_header: bool = True
    rows: list[tuple[list[str], str | None]] = field(default_factory=list)

    def add_row(self, *cells: str, style: str | None = None) -> None:
        """Add one row (one string per column)."""
        self.rows.append(([" ".join(str(c).split()) for c in cells], style))

    @property
    def row_count(self) -> int:
        """How many rows were added."""
        return len(self.rows)

    def render(self, width: int) -> Table:
        """A rich Table no wider than `width`, every cell on one line."""
        room = width - _GAP * (len(self.columns) - 1)
        widths = _fit(self._natural(), self.columns, room)
        table = Table(
            title=self.title,
            show_header=self.show_header,
            title_justify="left",
            box=None,
            pad_edge=False,
            header_style="bold",
        )
        for column, size in zip(self.columns, widths, strict=True):
            table.add_column(
                column.name,
                justify=column.justify,
                no_wrap=True,
                overflow="ellipsis",
                min_width=size,
                max_width=size,
            )
        for cells, style in self.rows:
            # Text, not str: a value such as "[422]" is data, never rich markup.
            texts = [Text(_cut(cell, size)) for cell, size in zip(cells, widths, strict=True)]
            table.add_row(*texts, style=style)
        return table

    def _natural(self) -> list[int]:
        heads = [cell_len(c.name) if self.show_header else 1 for c in self.columns]
        for cells, _ in self.rows:
            heads = [max(h, cell_len(cell)) for h, cell in zip(heads, cells, strict=True)]
        return heads


def _fit(natural: list[int], columns: Sequence[Column], room: int) -> list[int]:
    """Column widths summing to at most `room`; flexible columns give up space first."""
    if sum(natural) <= room:
        return natural
    flexible = [i for i, c in enumerate(columns) if c.flex]
    fixed = sum(n for n, c in zip(natural, columns, strict=True) if not c.flex)
    floors = {i: min(natural[i], columns[i].min_width) for i in flexible}
    if not flexible or fixed + sum(floors.values()) > room:  # too narrow: all give way
        flexible, fixed = list(range(len(natural))), 0
        floors = {i: min(natural[i], columns[i].min_width) for i in flexible}
    return _share(list(natural), natural, floors, room - fixed)


def _share(widths: list[int], natural: list[int], floors: dict[int, int], left: int) -> list[int]:
    """Each flexible column gets its floor, then equal shares of the rest up to its need."""
    for i, floor in floors.items():
        widths[i] = floor
    left -= sum(floors.values())
    pending = sorted(floors, key=lambda i: natural[i] - floors[i])
    while pending and left > 0:
        share = left // len(pending)
        first = pending[0]
        need = natural[first] - floors[first]
        if need <= share:  # fits whole: its unused share goes to the others
            widths[first] += need
            left -= need
            pending.pop(0)
            continue
        for i in pending:
            widths[i] += share
        break
    return widths


def _cut(text: str, size: int) -> str:
    if cell_len(text) <= size:
        return text
    kept = ""
    for char in text:
        if cell_len(kept + char) > size - 1:
            break
        kept += char
    return kept + "…"


def print_table(table: FitTable, out: Console | None = None) -> None:
    """Print `table` fitted to the console's width."""
    out = out or console()
    out.print(table.render(out.width))
