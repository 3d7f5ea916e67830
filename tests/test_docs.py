"""The README is the front door and docs/ holds the rest: size, links, layout, record schema, test command.
CPU, fast, no torch."""
from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

from bench import record

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def section(text: str, heading: str) -> str:
    """The body of a `## heading` section, up to the next `## `."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"README has no '## {heading}' section"
    return match.group(1)


def test_readme_is_at_most_10_kib():
    assert README.stat().st_size <= 10240, f"README.md is {README.stat().st_size} bytes (limit 10,240)"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page: Path):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # http(s), mailto, in-page anchors
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert not broken, f"{page.name}: links to missing files: {broken}"


def test_readme_links_every_doc():
    linked = {(README.parent / t).resolve() for t in LINK.findall(README.read_text())}
    assert not [d.name for d in DOCS if d.resolve() not in linked]


def layout_paths(block: str) -> set[str]:
    """Paths named by the indented tree in the Layout code block: `bench/` at indent 0, two spaces a level."""
    stack: list[str] = []
    paths = set()
    for line in block.splitlines():
        if not line.strip():
            continue
        indent = (len(line) - len(line.lstrip(" "))) // 2
        name = line.split()[0]
        stack = stack[:indent] + [name]
        paths.add("".join(stack).rstrip("/"))
    return paths


def test_layout_lists_every_module_and_nothing_else():
    """docs/layout.md (linked from the README's Layout section) names every module of the package."""
    assert "docs/layout.md" in section(README.read_text(), "Layout")
    block = re.search(r"```\n(bench/\n.*?)```", (ROOT / "docs" / "layout.md").read_text(), re.S)
    assert block, "docs/layout.md needs a ``` block starting with bench/"
    listed = layout_paths(block.group(1))
    tree = set()
    for path in (ROOT / "bench").rglob("*.py"):
        rel = path.relative_to(ROOT)
        # a package's __init__.py is its folder's line
        tree.add(rel.parent.as_posix() if rel.name == "__init__.py" else rel.as_posix())
    assert not sorted(tree - listed), f"modules missing from docs/layout.md: {sorted(tree - listed)}"
    assert not sorted(listed - tree), f"docs/layout.md names what does not exist: {sorted(listed - tree)}"


def test_readme_test_command_is_the_ci_command():
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("python3 -m venv")]
    assert len(ci) == 1
    assert f"```bash\n{ci[0]}\n```" in README.read_text()


def typed_dicts(root: type) -> dict[str, type]:
    """Every TypedDict reachable from `root` through its annotations (Optional, list, dict unwrapped)."""
    found: dict[str, type] = {}

    def visit(tp) -> None:
        if typing.is_typeddict(tp):
            if tp.__name__ not in found:
                found[tp.__name__] = tp
                for hint in typing.get_type_hints(tp).values():
                    visit(hint)
            return
        for arg in typing.get_args(tp):
            visit(arg)

    visit(root)
    return found


def documented_blocks(text: str) -> dict[str, set[str]]:
    """docs/record.md: each `## ... `Name`` heading with its table's first-column keys."""
    blocks: dict[str, set[str]] = {}
    for match in re.finditer(r"^## [^\n]*`(\w+)`\n(.*?)(?=^## |\Z)", text, re.S | re.M):
        blocks[match.group(1)] = set(re.findall(r"^\| `(\w+)` \|", match.group(2), re.M))
    return blocks


def test_record_doc_matches_the_typeddicts():
    schema = {name: set(typing.get_type_hints(tp)) for name, tp in typed_dicts(record.RunRecord).items()}
    documented = documented_blocks((ROOT / "docs" / "record.md").read_text())
    assert sorted(documented) == sorted(schema), "docs/record.md's blocks differ from bench/record.py's TypedDicts"
    for name, keys in schema.items():
        assert not sorted(keys - documented[name]), f"{name}: keys missing from docs/record.md"
        assert not sorted(documented[name] - keys), f"{name}: docs/record.md names keys {name} lacks"
