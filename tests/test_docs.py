"""The documentation site builds in mkdocs' strict mode, so a broken link or a page left out of the nav fails CI
(without --quiet: mkdocs 1.6 does not count the warnings it does not print)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(root: Path, site: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=root, env=env, capture_output=True, text=True)


def test_docs_build_strict(tmp_path: Path) -> None:
    result = build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "tasks" / "noiseworld" / "index.html").is_file()


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    with open(copy / "docs" / "cli.md", "a") as page:
        page.write("\nSee [the missing page](no-such-page.md).\n")
    result = build(copy, tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-page.md" in result.stdout + result.stderr


def test_readme_fits_on_a_screen() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def test_every_code_block_is_closed() -> None:
    """An unclosed ``` fence turns the rest of a page into code (mkdocs builds it without a warning)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    unclosed = [str(p.relative_to(ROOT)) for p in pages
                if sum(line.lstrip().startswith("```") for line in p.read_text().splitlines()) % 2]
    assert not unclosed, unclosed
