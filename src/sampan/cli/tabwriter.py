"""Go's ``text/tabwriter`` as Docker configures it for tables: minwidth 10, tabwidth 1,
padding 3, pad with spaces, no flags.

A cell is text terminated by a tab; the text after a line's last tab is not aligned. A
column's width is the widest cell in a run of consecutive lines that have that column,
plus padding, and at least minwidth.
"""

from __future__ import annotations


def align(text: str, minwidth: int = 10, padding: int = 3) -> str:
    lines = text.split("\n")
    cells = [line.split("\t") for line in lines]
    widths: list[list[int]] = [[0] * (len(row) - 1) for row in cells]
    column = 0
    while True:
        found = False
        index = 0
        while index < len(cells):
            if len(cells[index]) - 1 > column:
                found = True
                start = index
                while index < len(cells) and len(cells[index]) - 1 > column:
                    index += 1
                width = max([minwidth] + [len(cells[i][column]) + padding
                                          for i in range(start, index)])
                for i in range(start, index):
                    widths[i][column] = width
            else:
                index += 1
        if not found:
            break
        column += 1
    out = []
    for row, row_widths in zip(cells, widths, strict=True):
        parts = [cell.ljust(width) for cell, width in zip(row, row_widths, strict=False)]
        parts.append(row[-1])
        out.append("".join(parts))
    return "\n".join(out)
