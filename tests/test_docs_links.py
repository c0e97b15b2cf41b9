"""The README is a short front door, and every relative link in it and in docs/ resolves.

Reads Markdown only (no project imports): links and images written ``[text](target)``,
``![alt](target)`` or ``[label]: target``, outside code fences and code spans. A target with a
scheme (``https:``, ``mailto:``) is not checked; any other must name an existing file or folder,
relative to the Markdown file; a ``#anchor`` must name a heading of the target (GitHub's slugs).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARKDOWN = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 200

_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def _prose_lines(text: str, *, code_spans: bool = False) -> list[tuple[int, str]]:
    """(line number, line) outside code fences; code spans blanked out unless kept."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line if code_spans else _CODE_SPAN.sub("", line)))
    return lines


def _links(path: Path) -> list[tuple[int, str]]:
    found = []
    for number, line in _prose_lines(path.read_text(encoding="utf-8")):
        found += [(number, m.group(1)) for m in _INLINE.finditer(line)]
        reference = _REFERENCE.match(line)
        if reference:
            found.append((number, reference.group(1)))
    return found


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: rendered text, lower case, punctuation dropped."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[`*]", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in _prose_lines(path.read_text(encoding="utf-8"), code_spans=True):
        match = _HEADING.match(line)
        if not match:
            continue
        slug = _slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _broken(path: Path) -> list[str]:
    broken = []
    for number, target in _links(path):
        if _SCHEME.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}:{number}: {target}"
        if not resolved.exists():
            broken.append(f"{where} (no file {resolved.relative_to(ROOT)})")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{where} (no heading with anchor #{anchor} in {resolved.name})")
    return broken


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path: Path) -> None:
    broken = _broken(path)
    assert not broken, "broken links (fix the target or the heading):\n" + "\n".join(broken)


def test_docs_folder_holds_the_guides_the_readme_maps() -> None:
    linked = {target.partition("#")[0] for _, target in _links(README)}
    guides = {f"docs/{p.name}" for p in MARKDOWN if p.parent.name == "docs"}
    assert guides <= linked, f"guides missing from the README's map: {sorted(guides - linked)}"


def test_readme_is_at_most_200_lines() -> None:
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines, at most {README_MAX_LINES}: move guides to docs/ and "
        "measurements to docs/benchmarks.md"
    )


def test_link_checker_sees_inline_image_and_reference_links(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title `x`\n\n[a](other.md#title-x) ![img](pic.png)\n[b]: ref.md\n"
        "`[not](a-link.md)`\n```\n[not](either.md)\n```\n[web](https://example.org)\n",
        encoding="utf-8",
    )
    assert [target for _, target in _links(page)] == [
        "other.md#title-x",
        "pic.png",
        "ref.md",
        "https://example.org",
    ]
    assert _anchors(page) == {"title-x"}
    assert _slug("GPU check: `scripts/gpu_check.sh`") == "gpu-check-scriptsgpu_checksh"
    assert _slug("2026-11-30: export predict against ptycho_torch.infer") == (
        "2026-11-30-export-predict-against-ptycho_torchinfer"
    )
