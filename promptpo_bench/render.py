"""The leaderboard's pages from its tables: Markdown (leaderboard/README.md) and a sortable HTML page
(leaderboard/index.html) whose style and script live in templates/leaderboard.html, and whose legend and
how-to text live in templates/*.md, so the page's words and look are edited without touching code."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from string import Template
from typing import Any


@dataclass
class Table:
    """A table both renderers share: cells are (text, sort key); the key is a number where the column is numeric."""

    title: str
    headers: list[str]
    rows: list[list[tuple[str, Any]]] = field(default_factory=list)
    anchor: str = ""


@lru_cache(maxsize=None)
def template(name: str) -> str:
    """A file of promptpo_bench/templates/."""
    return resources.files("promptpo_bench").joinpath("templates", name).read_text()


_MARKDOWN_CELL = str.maketrans({"\\": "\\\\", "|": "\\|", "*": "\\*", "_": "\\_", "`": "\\`", "<": "&lt;",
                                ">": "&gt;", "\n": " ", "\r": " "})


def markdown_cell(text: str) -> str:
    """`text` as plain text in a Markdown table cell: a submitted record's strings (a model name, flags) cannot
    end the cell, start a row, or make emphasis, code, HTML, a link or an image."""
    return text.translate(_MARKDOWN_CELL).replace("](", "]\\(")


def markdown_table(table: Table) -> str:
    lines = ["| " + " | ".join(map(markdown_cell, table.headers)) + " |", "|" + "---|" * len(table.headers)]
    lines += ["| " + " | ".join(markdown_cell(text) for text, _ in row) + " |" for row in table.rows]
    return "\n".join(lines)


def html_table(table: Table) -> str:
    head = "".join(f'<th onclick="sortTable(this)">{html.escape(h)}</th>' for h in table.headers)
    body = []
    for row in table.rows:
        cells = []
        for text, key in row:
            sort = "" if key is None else f' data-sort="{html.escape(str(key))}"'
            cells.append(f"<td{sort}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def markdown_to_html(text: str) -> str:
    """The few Markdown constructs of the templates' text (paragraphs, headings, code blocks, bold, code) as HTML."""
    out = []
    for block in text.strip().split("\n\n"):
        if block.startswith("```"):
            out.append("<pre>" + html.escape("\n".join(block.splitlines()[1:-1])) + "</pre>")
            continue
        if block.startswith("## "):
            out.append(f"<h2>{html.escape(block[3:])}</h2>")
            continue
        para = html.escape(block)
        para = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", para)
        para = re.sub(r"\*(.+?)\*", r"<i>\1</i>", para)
        out.append("<p>" + re.sub(r"`(.+?)`", r"<code>\1</code>", para) + "</p>")
    return "\n".join(out)


def pages(intro: str, sections: list[tuple[str, list[tuple[Table, str | None]]]]) -> tuple[str, str]:
    """The board's Markdown and HTML pages: the intro and legend, then per family its tables and images."""
    legend, how_to = template("legend.md"), template("how_to.md")
    md = ["# promptpo-bench leaderboard", "", intro, "", legend]
    body = ["<h1>promptpo-bench leaderboard</h1>", f"<p>{html.escape(intro)}</p>", markdown_to_html(legend)]
    for family, items in sections:
        md += [f"## {family}", ""]
        body.append(f"<h2>{html.escape(family)}</h2>")
        for table, image in items:
            if table.headers:
                md += [f"### {table.title}", "", markdown_table(table), ""]
                body += [f'<h3 id="{html.escape(table.anchor)}">{html.escape(table.title)}</h3>', html_table(table)]
            if image:
                md += [f"![{table.title}]({image})", ""]
                body.append(f'<p><img src="{image}" alt="{html.escape(table.title)}"></p>')
    md.append(how_to)
    body.append(markdown_to_html(how_to))
    return "\n".join(md), Template(template("leaderboard.html")).substitute(body="\n".join(body))
