"""Build the HTML book from recorded runs: ``dfnb book --profile default``.

1. For each chapter, reuse ``results/<profile>/<chapter>/`` when it is a finished run of
   the same chapter source with the profile's parameters; otherwise execute it
   (``dfnb.runner.execute``), first moving a stale run to ``results/_archive/``.
   ``--rerun`` re-executes every chapter.  A page therefore always shows the git SHA
   of the code that produced its numbers (the chapter prints its ``Run``).
2. Stage the executed notebooks into ``book/chapters/`` (a build folder) and write
   the page of paper tables from ``dfnb.papers`` and the page of every chapter's verdicts
   (:func:`verdicts_page`, from the recorded claims tables).
3. ``jupyter-book build . -W --keep-going`` into ``_build/<profile>/``: any warning
   fails the build.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from dfnb import runner


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def toc_chapters(root: Path) -> list[str]:
    """Chapter stems named in ``_toc.yml`` (entries ``book/chapters/<stem>``)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    return [f.rsplit("/", 1)[1] for f in files if f.startswith("book/chapters/") and f.rsplit("/", 1)[1][:1].isdigit()]


def is_current(chapter: str, profile: str) -> tuple[bool, str]:
    """Whether the recorded run of ``chapter`` can be shown as is, and why not."""
    out = runner.result_dir(chapter, profile)
    mpath = out / "manifest.json"
    if not mpath.exists():
        return False, "no recorded run"
    m = json.loads(mpath.read_text())
    if m.get("status") != "finished" or not (out / f"{chapter}.ipynb").exists():
        return False, f"recorded run status is {m.get('status')!r}"
    nb = runner.chapters_dir() / f"{chapter}.ipynb"
    if m.get("chapter_sha256") != _sha(nb):
        return False, "the chapter notebook changed since the recorded run"
    want = runner._jsonable(runner.resolve_params(nb, profile))
    have = {k: v for k, v in m.get("params", {}).items() if k != "results_dir"}
    want = {k: v for k, v in want.items() if k != "results_dir"}
    if have != want:
        return False, "the profile's parameters changed"
    return True, f"recorded run {str(m.get('code', {}).get('sha'))[:10]} ({m.get('end')})"


def paper_tables_page() -> str:
    """Markdown page listing every transcribed table of the three papers."""
    from dfnb import papers

    lines = ["# The papers' numbers", "",
             "Every number on this page is transcribed from the papers (as data, in `lib/dfnb/papers/`); "
             "none of them was produced by this book. Chapters show them beside this book's own runs, "
             "always labelled *paper*.", ""]
    index = papers.list_tables()
    for paper, group in index.groupby("paper", sort=False):
        lines += [f"## {paper.upper()}", "", papers.PAPERS.get(paper, paper), ""]
        for _, row in group.iterrows():
            lines += [f"### {paper.upper()} {row['table']}: {row['caption']}", ""]
            if isinstance(row.get("notes"), str) and row["notes"]:
                lines += [f"*Note:* {row['notes']}", ""]
            if not isinstance(row.get("file"), str) or not row["file"]:
                lines += ["*Not transcribed: no numbers can be read in the text copy of the paper.*", ""]
                continue
            pv = papers.pivot(paper, row["table"])
            if pv.columns.nlevels > 1:
                pv.columns = [" · ".join(str(c) for c in col if str(c)) for col in pv.columns]
            if pv.index.nlevels > 1:
                pv.index = [" · ".join(str(c) for c in ix if str(c)) for ix in pv.index]
            lines += [pv.to_markdown(floatfmt=".2f"), ""]
    return "\n".join(lines)


def _title(chapter: str) -> str:
    """The first ``# `` heading of a chapter's notebook (its stem when it has none)."""
    for cell in json.loads(runner.find_chapter(chapter).read_text())["cells"]:
        for line in "".join(cell["source"]).splitlines():
            if cell["cell_type"] == "markdown" and line.startswith("# "):
                return line[2:].strip()
    return chapter


def _pm(x: float) -> str:
    return "-" if x != x else f"{x:+.2f}"


def verdicts_page(profile: str, chapters=None) -> str:
    """Markdown page: every chapter's claims as its recorded run (``results/<profile>/<chapter>/``) judged
    them, read from ``tables/claims.csv`` (:data:`dfnb.stats.CLAIM_COLUMNS`): an overview of the verdicts
    per chapter with the run's git SHA, then each chapter's claims with the paper's effect, ours with its
    95 % interval, the number of seeds and the data set.  A chapter without a recorded claims table is
    listed as such, never left out."""
    import pandas as pd

    from dfnb.stats import VERDICTS

    chapters = runner.list_chapters() if chapters is None else list(chapters)
    head = ["# Verdicts: what each chapter decided", "",
            f"Every claim of every chapter as its recorded run on the *{profile}* profile judged it: *reproduced* "
            "when the 95 % interval of our paired effect over the training seeds excludes 0 on the claim's side, "
            "*not reproduced* when it excludes 0 on the other side, *inconclusive* otherwise or with fewer than 3 "
            "seeds, *not run* when the run did not train what the claim needs. Effects are in points, as each "
            "claim's metric column defines them; the claim's side is the sign of the paper's effect (*paper*), "
            "or + where it shows \"-\" (a chapter's own hypothesis, or no number in the paper). Each number was "
            "measured on the named data set (a synthetic benchmark unless it says *real*), never on the paper's.",
            ""]
    overview = ["| chapter | " + " | ".join(VERDICTS) + " | not run | run |",
                "|---|" + "---|" * (len(VERDICTS) + 2)]
    sections = []
    for ch in chapters:
        out = runner.result_dir(ch, profile)
        path = out / "tables" / "claims.csv"
        name = _title(ch)
        title = name.replace("|", "\\|")  # in a table cell
        if not path.exists():
            overview.append(f"| {title} | " + " | ".join("-" for _ in VERDICTS) + " | - | no claims table |")
            continue
        c = pd.read_csv(path)
        ran = c["n_seeds"] > 0
        m = out / "manifest.json"
        sha = json.loads(m.read_text()).get("code", {}).get("sha") if m.exists() else None
        run = f"`{str(sha)[:7]}`" if sha else "no manifest"
        counts = [str(int((ran & (c["verdict"] == v)).sum())) for v in VERDICTS]
        overview.append(f"| {title} | " + " | ".join(counts) + f" | {int((~ran).sum())} | {run} |")
        rows = ["| claim | paper | ours [95 % interval] | seeds | verdict | data set |", "|---|---|---|---|---|---|"]
        for _, r in c.iterrows():
            ours = (f"{_pm(r.our_effect)} [{_pm(r.ci_low)}, {_pm(r.ci_high)}]" if r.ci_low == r.ci_low
                    else _pm(r.our_effect))
            verdict = r.verdict if r.n_seeds > 0 else "not run"
            cells = [str(r.claim), _pm(r.paper_effect), ours, str(int(r.n_seeds)), verdict, str(r.dataset)]
            rows.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
        sections += [f"## {name}", "", *rows, ""]
    return "\n".join(head + overview + [""] + sections)


def build(profile: str = "default", rerun: bool = False, html: bool = True, progress: bool = True) -> Path:
    """Execute what is missing or stale, stage, and build; return the HTML folder."""
    root = runner.repo_root()
    chapters = runner.list_chapters()
    listed = toc_chapters(root)
    if sorted(listed) != chapters:
        raise runner.ParameterError(f"_toc.yml lists chapters {listed} but chapters/ holds {chapters}")
    if not (root / "_static" / "vendor" / "embed-amd.js").exists():
        raise FileNotFoundError("_static/vendor/ is missing the widget JavaScript: run `make vendor` (scripts/vendor_js.sh)")
    stage = root / "book" / "chapters"
    stage.mkdir(parents=True, exist_ok=True)
    for ch in chapters:
        ok, why = is_current(ch, profile)
        if rerun or not ok:
            print(f"dfnb book: executing {ch} on profile {profile!r} ({'--rerun' if rerun else why})", file=sys.stderr)
            runner.execute(ch, profile, force=True, progress=progress)
        else:
            print(f"dfnb book: {ch}: {why}", file=sys.stderr)
        shutil.copy2(runner.result_dir(ch, profile) / f"{ch}.ipynb", stage / f"{ch}.ipynb")
    (stage / "paper_tables.md").write_text(paper_tables_page())
    (stage / "verdicts.md").write_text(verdicts_page(profile, chapters))
    out = root / "_build" / profile
    if html:
        exe = Path(sys.executable).with_name("jupyter-book")
        cmd = [str(exe), "build", str(root), "--path-output", str(out), "-W", "--keep-going", "-q"]
        r = subprocess.run(cmd, cwd=root)
        if r.returncode != 0:
            raise RuntimeError(f"jupyter-book build failed (exit {r.returncode}); see the warnings above")
    return out / "_build" / "html"


def add_parser(sub) -> None:
    p = sub.add_parser("book", help="execute stale chapters and build the HTML book")
    p.add_argument("--profile", default="default", choices=runner.PROFILES)
    p.add_argument("--rerun", action="store_true", help="re-execute every chapter")
    p.add_argument("--no-html", action="store_true", help="execute and stage only")
    p.set_defaults(func=lambda a: print(build(a.profile, a.rerun, not a.no_html)) or 0)
