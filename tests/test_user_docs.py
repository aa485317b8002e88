"""What a user reads speaks of the software: no development-process wording, no paths of the machines the
project is developed on, and every relative link resolves where the file is read.

User-facing: README, LICENSE, docs/, the NNI configs, the study configs, the search spaces and their sources, the
benchmark scripts, the notebooks, the results READMEs, the Makefile and packaging files, and the trial's ``--help``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mat.cli import build_parser
from mat.spec.methods import METHOD_ARGS
from tests.helpers import REPO

PATTERNS = ("README.md", "LICENSE", "Makefile", "setup.cfg", "pyproject.toml", "docs/**/*.md", "nni_configs/*.yml",
            "search_spaces/*", "studies/*.yml", "benchmarks/*", "notebooks/*.ipynb",
            "results/**/README.md")
FORBIDDEN = {
    "development-process wording": (r"\bthis wave\b", r"\bwas lent\b", r"\blent to\b", r"\bthe lent\b",
                                    r"\bthis project's\b", r"\bthis 2-core\b", r"\bthe 2-core machine\b",
                                    r"(?<!ssh )\bsessions?\b", r"\bissues? \d+", r"\(issue\b", r"\bthe budget went\b",
                                    r"\bhelpers?\b(?!\.py)"),
    "a path of the development machines": (r"\.\./shared\b", r"/work/", r"\bshared/data\b"),
}
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def user_files() -> list[Path]:
    files = {p for pattern in PATTERNS for p in REPO.glob(pattern) if p.is_file()}
    return sorted(files)


def user_texts() -> list[tuple[str, str]]:
    texts = [(str(p.relative_to(REPO)), p.read_text(encoding="utf-8", errors="replace")) for p in user_files()]
    texts += [(f"mat_trial.py --method {m} --help", build_parser(m).format_help()) for m in METHOD_ARGS]
    return texts


def test_the_user_facing_files_are_found() -> None:
    names = {str(p.relative_to(REPO)) for p in user_files()}
    assert {"README.md", "LICENSE", "docs/nni.md", "docs/speed.md", "results/components/README.md", "Makefile",
            "nni_configs/quickstart.yml", "benchmarks/real_sst2.sh", "search_spaces/SOURCES.md"} <= names


@pytest.mark.parametrize("kind", sorted(FORBIDDEN))
def test_no_development_process_wording_in_user_facing_text(kind: str) -> None:
    hits = [f"{name}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}"
            for name, text in user_texts() for pattern in FORBIDDEN[kind]
            for m in re.finditer(pattern, text, flags=re.IGNORECASE)]
    assert hits == [], f"{kind}: " + "; ".join(hits)


def test_the_check_finds_what_it_looks_for() -> None:
    samples = ["Unreleased (this wave): x", "no GPU was lent", "on this 2-core CPU machine", "the session of 30 Nov",
               "across sessions", "issue 13", "(issue 14, item 5)", "MAT_DATA_DIR=../shared/data"]
    for sample in samples:
        assert any(re.search(p, sample, flags=re.IGNORECASE) for ps in FORBIDDEN.values() for p in ps), sample
    for fine in ("trials start through `bash -c` in an SSH session", "tests/helpers.py", "a 2-core CPU"):
        assert not any(re.search(p, fine, flags=re.IGNORECASE) for ps in FORBIDDEN.values() for p in ps), fine


def anchors(markdown: str) -> set[str]:
    """The heading anchors GitHub makes: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", markdown, flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("path", [p for p in user_files() if p.suffix == ".md"], ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves_from_the_file_that_has_it(path: Path) -> None:
    broken = []
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", target):
            continue  # a URL
        file, _, anchor = target.partition("#")
        dest = path.parent / file if file else path
        if not dest.exists() or (anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text(encoding="utf-8"))):
            broken.append(target)
    assert broken == [], f"{path.relative_to(REPO)}: links that resolve to nothing: {broken}"


def test_the_anchor_rule_is_githubs() -> None:
    assert anchors("## Flag names from run_glue and from the authors' release\n## Result: which part of MAT acts\n") == {
        "flag-names-from-run_glue-and-from-the-authors-release", "result-which-part-of-mat-acts"}


def test_the_license_is_mit_as_the_package_says() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "the mat-harness authors" in text
    assert re.search(r"^license = MIT$", (REPO / "setup.cfg").read_text(), flags=re.M)


def test_the_readme_cites_the_paper_as_its_first_page_names_it() -> None:
    readme = (REPO / "README.md").read_text()
    paper = REPO.parent / "shared" / "paper" / "MAT-paper.txt"
    title = "MAT: Mixed-Strategy Game of Adversarial Training in Fine-tuning"
    if paper.is_file():
        first = paper.read_text(encoding="utf-8")[:400]
        assert title in first and "Zhehua Zhong" in first and "Tianyi Chen" in first and "Zhen Wang" in first
    bibtex = readme.split("```bibtex\n")[1].split("```")[0]
    assert "{{MAT}: Mixed-Strategy Game of Adversarial Training in Fine-tuning}" in bibtex
    assert "author    = {Zhong, Zhehua and Chen, Tianyi and Wang, Zhen}" in bibtex
    assert "doi       = {10.24963/ijcai.2023/520}" in bibtex
    assert readme.index("## The paper") < readme.index("## Result") < readme.index("## Quickstart")
