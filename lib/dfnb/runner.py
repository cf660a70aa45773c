"""Execute a chapter into ``results/<profile>/<chapter>/`` and record what ran.

Two halves that meet in one directory:

* **Outside the kernel** (``dfnb run CHAPTER --profile P -p key=value``, or
  :func:`execute`): reads the chapter's ``parameters`` cell, merges the profile
  (``chapters/profiles.yml``) and the ``-p`` overrides, rejects unknown or
  ill-typed parameters, refuses to overwrite a *different* earlier run, and
  executes the notebook with papermill.
* **Inside the kernel** (the chapter's second cell, ``run = dfnb.runner.start(...)``):
  seeds everything, writes ``params.json`` and ``manifest.json``, and gives the
  chapter ``run.metric`` / ``run.table`` / ``run.figure`` to record results.
  This half also works under plain papermill, so a reviewer who runs
  ``papermill chapters/00_tour.ipynb out.ipynb -p profile smoke`` gets the same
  record.  papermill writes ``out.ipynb`` before any cell runs, so a refused run has
  already replaced it: the kernel therefore keeps a copy of every finished run's
  executed notebook in the run directory (:func:`papermill_output`), and refuses a
  papermill output path inside the run directory.

A run directory holds::

    <chapter>.ipynb     executed notebook (written by ``dfnb run``; under plain papermill
                        a copy of papermill's output, taken when the kernel exits)
    params.json         every parameter the chapter ran with
    manifest.json       git SHA (+ dirty diff hash), package versions, seed, device,
                        compute (precision, DataLoader workers, world size, GPU name or
                        "none"), start/end time, wall seconds, peak memory, experiments
                        trained or loaded (``dfnb.experiments.used()``), real data sets
                        read and the face detector that ran (``dfnb.data.real.loaded()``)
    metrics.json        list of {name, value, labels...} records (this run's numbers)
    tables/*.csv        tables the chapter showed
    figures/*.png       figures the chapter showed

**On a GPU** (``dfnb run CHAPTER --precision bf16 --workers 8 --nproc 4``): ``--precision`` and
``--workers`` set ``$DFNB_PRECISION`` / ``$DFNB_NUM_WORKERS`` for the kernel, which every
``dfnb.engine.fit`` / ``evaluate`` of the chapter reads when not given them (plain papermill: set
the variables yourself); ``--nproc N`` runs the chapter in N kernels under torchrun
(:mod:`dfnb.launch`), every training data-parallel over them.

"Same run" means the same chapter, parameters, precision and code (git SHA and diff hash);
re-executing the same run replaces it, anything else raises
:class:`RunExistsError` unless ``force=True``, which first moves the old run to
``results/_archive/``.
"""
from __future__ import annotations

import ast
import datetime as _dt
import difflib
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROFILES = ("smoke", "default", "paper")
_TRACKED_PACKAGES = (
    "torch", "torchvision", "timm", "segment-anything", "numpy", "scipy", "scikit-learn",
    "scikit-image", "opencv-python-headless", "pandas", "matplotlib", "papermill", "ipywidgets",
    "myst-nb", "jupyter-book",
)


class ParameterError(ValueError):
    """A chapter parameter is unknown, ill-typed, or a profile does not exist."""


class RunExistsError(FileExistsError):
    """The results directory already holds a different run."""


# --------------------------------------------------------------------------- paths
def repo_root() -> Path:
    """The book's root: ``$DFNB_ROOT``, else the checkout holding this package, else the cwd."""
    if os.environ.get("DFNB_ROOT"):
        return Path(os.environ["DFNB_ROOT"]).resolve()
    here = Path(__file__).resolve().parents[2]
    if (here / "_config.yml").exists() and (here / "chapters").is_dir():
        return here
    return Path.cwd().resolve()


def chapters_dir() -> Path:
    return repo_root() / "chapters"


def list_chapters() -> list[str]:
    """Chapter names (notebook stems in ``chapters/``), sorted."""
    return sorted(p.stem for p in chapters_dir().glob("[0-9]*.ipynb"))


def find_chapter(name: str) -> Path:
    """Resolve ``name`` (a stem such as ``00_tour``, a unique prefix such as ``00``, or a path)."""
    p = Path(name)
    if p.suffix == ".ipynb" and p.exists():
        return p.resolve()
    chapters = list_chapters()
    if name in chapters:
        return chapters_dir() / f"{name}.ipynb"
    hits = [c for c in chapters if c.startswith(name)]
    if len(hits) == 1:
        return chapters_dir() / f"{hits[0]}.ipynb"
    if not hits:
        raise ParameterError(f"no chapter named {name!r}; chapters: {chapters}")
    raise ParameterError(f"chapter name {name!r} is ambiguous: {hits}")


def result_dir(chapter: str, profile: str) -> Path:
    return repo_root() / "results" / profile / chapter


# ---------------------------------------------------------------- the parameters cell
@dataclass(frozen=True)
class ParamSpec:
    """One assignment of a chapter's ``parameters`` cell."""

    name: str
    default: Any
    annotation: str | None  # e.g. "int", "str | None"
    help: str

    @property
    def types(self) -> tuple[type, ...] | None:
        """Accepted Python types (``None`` = anything)."""
        names = _annotation_names(self.annotation) if self.annotation else None
        if names is None:
            if self.default is None:
                return None
            names = {type(self.default).__name__}
        table = {"int": int, "float": float, "str": str, "bool": bool, "list": list,
                 "dict": dict, "tuple": tuple, "None": type(None), "NoneType": type(None)}
        unknown = names - set(table)
        if unknown:
            return None
        return tuple(table[n] for n in sorted(names))


def _annotation_names(annotation: str) -> set[str] | None:
    try:
        node = ast.parse(annotation, mode="eval").body
    except SyntaxError:
        return None

    def walk(n) -> set[str]:
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr):
            return walk(n.left) | walk(n.right)
        if isinstance(n, ast.Constant) and n.value is None:
            return {"None"}
        if isinstance(n, ast.Name):
            return {n.id}
        if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name):
            if n.value.id == "Optional":
                return walk(n.slice) | {"None"}
            if n.value.id == "Union":
                elts = n.slice.elts if isinstance(n.slice, ast.Tuple) else [n.slice]
                return set().union(*(walk(e) for e in elts))
            return {n.value.id}
        return {"?"}

    return walk(node)


def _source(cell) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def read_parameters(notebook: str | Path) -> dict[str, ParamSpec]:
    """Parse the cell tagged ``parameters`` of ``notebook`` into :class:`ParamSpec` s.

    Only top-level ``name = literal`` and ``name: type = literal`` assignments are
    allowed there, so that every parameter has a readable default, and ``from typing import ...``.
    """
    nb = json.loads(Path(notebook).read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"{notebook}: expected exactly one cell tagged 'parameters', found {len(cells)}")
    src = _source(cells[0])
    lines = src.splitlines()
    specs: dict[str, ParamSpec] = {}
    for node in ast.parse(src).body:
        if isinstance(node, ast.ImportFrom) and node.module == "typing":
            continue  # `from typing import Optional`: papermill lists Optional[str], not `str | None`
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, ann = node.targets[0].id, None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, ann = node.target.id, ast.unparse(node.annotation)
        else:
            raise ParameterError(f"{notebook}: the parameters cell may hold only assignments, line {node.lineno}")
        try:
            default = ast.literal_eval(node.value)
        except ValueError as e:
            raise ParameterError(f"{notebook}: parameter {name!r} needs a literal default") from e
        line = lines[node.lineno - 1]
        help_ = line.split("#", 1)[1].strip() if "#" in line else ""
        specs[name] = ParamSpec(name, default, ann, help_)
    return specs


def parse_value(raw: str) -> Any:
    """A ``-p key=value`` value: a Python literal if it parses as one, else the string."""
    low = raw.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def validate(specs: dict[str, ParamSpec], overrides: dict[str, Any]) -> dict[str, Any]:
    """Defaults updated with ``overrides``; unknown names and wrong types are :class:`ParameterError`."""
    params = {k: s.default for k, s in specs.items()}
    for key, value in overrides.items():
        if key not in specs:
            close = difflib.get_close_matches(key, list(specs), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ParameterError(f"unknown parameter {key!r}{hint}; this chapter takes: {', '.join(specs)}")
        spec = specs[key]
        types = spec.types
        if types is not None:
            if float in types and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
            if not ok:
                want = " or ".join(t.__name__ for t in types)
                raise ParameterError(
                    f"parameter {key!r} must be {want}, got {type(value).__name__} {value!r}"
                    + (f" ({spec.help})" if spec.help else "")
                )
        params[key] = value
    for key, value in params.items():
        check_range(key, value)
    return params


# parameters whose name says what they count: each must be >= its minimum, whatever the chapter
_AT_LEAST = {"seed": 0, "n_videos": 1, "frames_per_video": 1, "size": 8, "steps": 1, "batch_size": 1, "epochs": 1,
             "n_seeds": 1, "calib_seeds": 1, "calib_videos": 1, "calib_epochs": 1, "calib_size": 8,
             "min_test_faces": 1, "threads": 1}
_RANGE_SUFFIXES = ("_epochs", "_steps", "_videos", "_batch_size", "_seeds")


def check_range(key: str, value: Any) -> None:
    """A :class:`ParameterError` (one line) for a count below its minimum (``epochs=0``, ``size=-1``,
    ``ablation_epochs=0``), a non-finite float, or a device that cannot run here (``device="gpu"``,
    ``cuda`` without a GPU)."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        raise ParameterError(f"parameter {key!r} must be a finite number, got {value!r}")
    low = _AT_LEAST.get(key, 1 if key.endswith(_RANGE_SUFFIXES) else None)
    if low is not None and isinstance(value, int) and not isinstance(value, bool) and value < low:
        raise ParameterError(f"parameter {key!r} must be >= {low}, got {value}")
    if key == "device" and isinstance(value, str):
        check_device(value)


def check_device(device: str) -> None:
    """``cpu``, ``cuda`` or ``cuda:N`` that this machine has; anything else is a :class:`ParameterError`."""
    import re as _re

    if device == "cpu":
        return
    m = _re.fullmatch(r"cuda(?::(\d+))?", device)
    if m is None:
        raise ParameterError(f"unknown device {device!r}; use cpu, cuda or cuda:N")
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n == 0:
        raise ParameterError(f"device {device!r} requested but this machine has no CUDA GPU; use device=cpu")
    if m.group(1) is not None and int(m.group(1)) >= n:
        raise ParameterError(f"device {device!r} requested but this machine has {n} GPU(s)")


def load_profiles(path: Path | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """``chapters/profiles.yml``: ``{chapter: {profile: {param: value}}}``; ``default`` = the notebook's own defaults."""
    import yaml

    path = path or chapters_dir() / "profiles.yml"
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    for chapter, profiles in data.items():
        for prof in profiles or {}:
            if prof not in PROFILES:
                raise ParameterError(f"{path}: chapter {chapter!r} has unknown profile {prof!r}; profiles: {PROFILES}")
    return data


def resolve_params(notebook: Path, profile: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Notebook defaults <- profile <- overrides, validated; ``profile`` is itself a parameter."""
    if profile not in PROFILES:
        raise ParameterError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    specs = read_parameters(notebook)
    if "profile" in (overrides or {}) and overrides["profile"] != profile:
        raise ParameterError(f"-p profile={overrides['profile']} contradicts --profile {profile}; pass the "
                             "profile once, as --profile")
    prof = (load_profiles().get(notebook.stem) or {}).get(profile) or {}
    merged = {**prof, **(overrides or {})}
    if "profile" in specs:
        merged.setdefault("profile", profile)
    return validate(specs, merged)


# ------------------------------------------------------------------- provenance
def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=repo_root(), capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def code_state() -> dict[str, Any]:
    """Git SHA, whether library/chapters differ from it, and a hash of that difference."""
    sha = _git("rev-parse", "HEAD")
    diff = _git("diff", "HEAD", "--", "lib", "chapters") or ""
    return {
        "sha": sha,
        "dirty": bool(diff),
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest()[:16] if diff else None,
    }


def package_versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("dfnb", *_TRACKED_PACKAGES):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_info(device: str = "cpu") -> dict[str, Any]:
    info: dict[str, Any] = {"requested": device, "platform": platform.platform(), "cpu_count": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda_available"] = torch.cuda.is_available()
        if str(device).startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    except ImportError:
        pass
    return info


def compute_info(device: str = "cpu") -> dict[str, Any]:
    """What ``dfnb.engine.fit`` / ``evaluate`` use in this process when a chapter leaves them the choice:
    ``precision`` and ``num_workers`` (``$DFNB_PRECISION`` / ``$DFNB_NUM_WORKERS``, else ``device``'s
    defaults), ``world_size`` (torchrun processes) and ``gpu`` (the GPU's name, or "none")."""
    from dfnb.engine.cost import gpu_name
    from dfnb.engine.loader import resolve_num_workers
    from dfnb.engine.precision import resolve_precision

    return {"precision": resolve_precision(None, device), "num_workers": resolve_num_workers(None, device),
            "world_size": int(os.environ.get("WORLD_SIZE", "1")), "gpu": gpu_name(device)}


def rel_path(path: Path) -> str:
    """``path`` relative to the book's root when inside it (no machine paths in the rendered book)."""
    try:
        return str(Path(path).resolve().relative_to(repo_root()))
    except ValueError:
        return str(path)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item") and getattr(x, "ndim", 1) == 0:
        return x.item()
    if isinstance(x, Path):
        return str(x)
    return x


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n")


# ------------------------------------------------------------------ overwrite guard
def check_no_overwrite(out_dir: Path, chapter: str, params: dict[str, Any], code: dict[str, Any] | None = None) -> None:
    """Raise :class:`RunExistsError` if ``out_dir`` holds anything but the same run (the precision
    ``$DFNB_PRECISION`` gives is part of it; a run recorded without one was fp32)."""
    # papermill writes the executed notebook before the kernel's start() runs: that alone is no earlier run
    if not out_dir.exists() or not [p for p in out_dir.iterdir() if p.name != f"{chapter}.ipynb"]:
        return
    mpath = out_dir / "manifest.json"
    if not mpath.exists():
        raise RunExistsError(f"{out_dir} is not empty and holds no manifest.json; refusing to write a run there")
    try:
        old = json.loads(mpath.read_text())
    except ValueError as e:
        raise RunExistsError(f"{mpath} is not valid JSON ({e}); move it away or pass --force to archive the run"
                             ) from None
    code = code or code_state()
    reasons = []
    if old.get("chapter") != chapter:
        reasons.append(f"chapter {old.get('chapter')!r} -> {chapter!r}")
    old_params = old.get("params", {})
    new_params = _jsonable(params)
    for k in sorted(set(old_params) | set(new_params)):
        if k == "results_dir":
            continue
        if old_params.get(k, "<absent>") != new_params.get(k, "<absent>"):
            reasons.append(f"{k}: {old_params.get(k, '<absent>')!r} -> {new_params.get(k, '<absent>')!r}")
    old_precision = (old.get("compute") or {}).get("precision", "fp32")
    new_precision = compute_info(str(params.get("device", "cpu")))["precision"]
    if old_precision != new_precision:
        reasons.append(f"precision: {old_precision!r} -> {new_precision!r}")
    old_code = old.get("code", {})
    if (old_code.get("sha"), old_code.get("diff_sha256")) != (code.get("sha"), code.get("diff_sha256")):
        reasons.append(f"code {old_code.get('sha')}/{old_code.get('diff_sha256')} -> {code.get('sha')}/{code.get('diff_sha256')}")
    if not reasons and old.get("status") != "finished":
        print(f"dfnb run: the earlier run in {out_dir} did not finish (status {old.get('status')!r}); "
              "replacing it", file=sys.stderr)
    if reasons:
        raise RunExistsError(
            f"{out_dir} holds a different run ({'; '.join(reasons)}). "
            "Use another output directory, or force (dfnb run --force) to move the old run to results/_archive/."
        )


def _archive_dest(out_dir: Path, suffix: str = "") -> Path:
    """A fresh ``results/_archive/<profile>/<chapter>/<time><suffix>`` path (never an existing one)."""
    stamp = _dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    base = repo_root() / "results" / "_archive" / out_dir.parent.name / out_dir.name
    dest, n = base / f"{stamp}{suffix}", 1
    while dest.exists():  # two archives in the same second sit side by side, never nested
        n += 1
        dest = base / f"{stamp}-{n}{suffix}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest


def archive(out_dir: Path) -> Path | None:
    """Move an earlier run (a folder holding a dfnb ``manifest.json``) to
    ``results/_archive/<profile>/<chapter>/<time>/``; return where.  Anything else at ``out_dir`` (a
    user's folder, a plain file) is a :class:`RunExistsError`: only a run is ever moved."""
    if not out_dir.exists():
        return None
    if not out_dir.is_dir() or not _is_run(out_dir):
        raise RunExistsError(f"{out_dir} is not a dfnb run (no readable manifest.json); refusing to move it")
    dest = _archive_dest(out_dir)
    shutil.move(str(out_dir), dest)
    return dest


def _is_run(folder: Path) -> bool:
    try:
        return "chapter" in json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return False


# ---------------------------------------------------------------- inside the kernel
class Run:
    """What a chapter records.  Create with :func:`start`; call :meth:`finish` last."""

    def __init__(self, chapter: str, params: dict[str, Any], out_dir: Path, glue: bool = True):
        self.chapter, self.params, self.dir, self._glue = chapter, params, out_dir, glue
        self.metrics: list[dict[str, Any]] = []
        self._t0 = time.time()
        self._executed: Path | None = None  # papermill's output notebook, under plain papermill
        self.manifest: dict[str, Any] = {
            "chapter": chapter,
            "profile": params.get("profile"),
            "params": _jsonable(params),
            "seed": params.get("seed"),
            "code": code_state(),
            "versions": package_versions(),
            "device": device_info(params.get("device", "cpu")),
            "compute": compute_info(str(params.get("device", "cpu"))),
            "start": _now(),
            "end": None,
            "status": "running",
        }
        _write_json(self.dir / "params.json", params)
        _write_json(self.dir / "manifest.json", self.manifest)

    # -- recording
    def metric(self, name: str, value: float, glue: str | None = None, *, dataset: str | None = None,
               split: str | None = None, model: str | None = None, seed: int | str | None = None,
               **labels: Any) -> float:
        """Record one number of this run.

        The record contract: every record in ``metrics.json`` has the keys ``name, value, dataset, split,
        model, seed`` (``None`` where one does not apply, e.g. a speed has no split), plus free labels
        (``variant``, ``table``, ...).  ``dataset`` names the data the number was measured on
        (``"ffpp-syn"``, ``"ffpp (real)"``); ``seed`` is the training seed of one model, or ``"mean"`` for
        a value aggregated over seeds (a separate record, with ``seeds`` listing them)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"metric name must be a non-empty string, got {name!r}")
        rec = {"name": name, "value": _jsonable(value), "dataset": dataset, "split": split, "model": model,
               "seed": _jsonable(seed), **{k: _jsonable(v) for k, v in labels.items()}}
        self.metrics.append(rec)
        _write_json(self.dir / "metrics.json", self.metrics)
        if glue:
            self.glue(glue, value)
        return value

    def glue(self, key: str, value: Any, display: bool = False) -> None:
        """``myst_nb.glue`` the value so book pages can cite it with ``{glue:}`key```."""
        if not self._glue:
            return
        from myst_nb import glue as _glue

        _glue(key, value, display=display)

    def table(self, name: str, df, index: bool = True, show: bool = True) -> None:
        """Write ``tables/<name>.csv`` and (``show``) display it under a caption naming that file.

        Every table a chapter computes is shown: ``tests/test_chapters.py`` checks that each CSV of a
        recorded run is named in its executed notebook.  ``show=False`` only where the same numbers
        are displayed another way (e.g. a claims table rendered as Markdown)."""
        (self.dir / "tables").mkdir(exist_ok=True)
        df.to_csv(self.dir / "tables" / f"{name}.csv", index=index)
        if show:
            from IPython.display import Markdown, display

            display(Markdown(f"<small>`tables/{name}.csv`</small>"), df if index else _no_index(df))

    def figure(self, name: str, fig, dpi: int = 110):
        """Write ``figures/<name>.png`` and return ``fig`` for display."""
        (self.dir / "figures").mkdir(exist_ok=True)
        fig.savefig(self.dir / "figures" / f"{name}.png", dpi=dpi, bbox_inches="tight")
        return fig

    def finish(self) -> "Run":
        """Write end time, wall seconds and peak memory into the manifest (``self.manifest``)."""
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.manifest.update(
            end=_now(),
            wall_seconds=round(time.time() - self._t0, 2),
            peak_rss_mb=round(peak_kb / 1024, 1),
            status="finished",
            n_metrics=len(self.metrics),
        )
        from dfnb.experiments import used  # lazily: the trained / cache-loaded experiments of this run

        self.manifest["experiments"] = used()
        from dfnb.data.real import loaded  # the real data sets read, and which face detector ran on them

        self.manifest["real_data"] = loaded()
        try:
            import torch

            if torch.cuda.is_available() and str(self.params.get("device", "cpu")).startswith("cuda"):
                from dfnb.engine.cost import cuda_peak_mib  # the peak before a cost probe reset it, too

                self.manifest["peak_cuda_mb"] = round(cuda_peak_mib(), 1)
        except ImportError:
            pass
        _write_json(self.dir / "manifest.json", self.manifest)
        if self._executed is not None:
            import atexit  # papermill saves the last cell's output, then shuts the kernel down

            atexit.register(_keep_executed, self._executed, self.dir.resolve() / f"{self.chapter}.ipynb")
        return self

    def __repr__(self) -> str:
        c = self.manifest["code"]
        done = self.manifest.get("wall_seconds")
        return (f"Run({self.chapter}, profile={self.params.get('profile')}, seed={self.params.get('seed')}, "
                f"git={str(c['sha'])[:10]}{'+dirty' if c['dirty'] else ''}, dir={rel_path(self.dir)}"
                + (f", {done:.0f} s, peak {self.manifest['peak_rss_mb']:.0f} MB" if done is not None else "") + ")")


def check_injected_parameters(chapter: str) -> dict[str, Any] | None:
    """Inside a kernel, validate the cells papermill injected (source starting ``# Parameters``).

    Plain ``papermill -p sede 1`` only warns about an unknown name and injects any type; here both are a
    :class:`ParameterError`, as with ``dfnb run``.  Returns the injected ``{name: value}``, or None
    outside IPython / when nothing was injected.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the kernel
        return
    ip = get_ipython()
    if ip is None:
        return None
    injected = [src for src in ip.user_ns.get("In", []) if src.lstrip().startswith("# Parameters")]
    if not injected:
        return None
    names = [t.id for src in injected for node in ast.parse(src).body if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name) and t.id not in _PAPERMILL_PATHS]
    validate(read_parameters(find_chapter(chapter)), {k: ip.user_ns[k] for k in names})
    return {k: ip.user_ns[k] for k in names}


_PAPERMILL_PATHS = ("PAPERMILL_INPUT_PATH", "PAPERMILL_OUTPUT_PATH")  # papermill --inject-paths


def papermill_output() -> Path | None:
    """Inside a kernel that the papermill command line started: the output notebook papermill writes.

    papermill's own ``PAPERMILL_OUTPUT_PATH`` (``--inject-output-path``) when injected, else the output
    argument of the parent process's command line (``/proc``, Linux), parsed by papermill's ``click``
    command.  None when it cannot be known: ``dfnb run`` or papermill's Python API (the parent is not the
    papermill command), output to stdout, a relative path under ``--cwd``, or no ``/proc``.
    """
    try:
        from IPython import get_ipython

        given = (get_ipython().user_ns if get_ipython() else {}).get("PAPERMILL_OUTPUT_PATH")
        ppid = os.getppid()
        if given is None:
            argv = Path(f"/proc/{ppid}/cmdline").read_bytes().decode().split("\0")[:-1]
            at = next(i for i, a in enumerate(argv[:3]) if Path(a).name == "papermill")
            from papermill.cli import papermill as command

            params = command.make_context("papermill", argv[at + 1:], resilient_parsing=True).params
            given = params.get("output_path")
            if given and not Path(given).is_absolute() and params.get("cwd"):
                return None  # papermill resolves it against the cwd it started in, which --cwd hides
        if not given or given == "-" or "{" in str(given):
            return None
        return (Path(os.readlink(f"/proc/{ppid}/cwd")) / given).resolve()
    except (OSError, StopIteration, ImportError, AttributeError, ValueError):
        return None


def _keep_executed(executed: Path, kept: Path) -> None:
    """At kernel exit, when papermill has saved every cell's output: copy its notebook to ``kept``."""
    tmp = kept.with_name(f".{kept.name}.tmp-{os.getpid()}")
    try:
        shutil.copyfile(executed, tmp)
        strip_progress(tmp)
        os.replace(tmp, kept)
    except (OSError, ValueError) as e:
        print(f"dfnb: could not keep a copy of {executed} in {kept.parent}: {e}", file=sys.stderr)


def _apply_profile(chapter: str, params: dict[str, Any], injected: dict[str, Any]) -> dict[str, Any]:
    """Under plain papermill, the values ``dfnb run`` would use: notebook defaults <- the profile's
    ``profiles.yml`` entry <- the injected ``-p`` values.  Parameters the profile sets and ``-p`` did not
    are written into the kernel's namespace (the chapter's later cells read them), so that ``papermill
    -p profile smoke`` and ``dfnb run --profile smoke`` run the same thing."""
    from IPython import get_ipython

    nb = find_chapter(chapter)
    profile = injected.get("profile", params.get("profile", "default"))
    want = resolve_params(nb, profile, {k: v for k, v in injected.items() if k not in ("profile", "results_dir")})
    ns = get_ipython().user_ns
    out = dict(params)
    for k, v in want.items():
        if k in out and k not in injected and out[k] != v:
            ns[k] = out[k] = v
    return out


def start(chapter: str, *, results_dir: str | None = None, **params: Any) -> Run:
    """Open the record of a chapter run (call it right after the parameters cell).

    ``params`` are the chapter's parameters (``profile`` and ``seed`` among them);
    ``results_dir=None`` means ``results/<profile>/<chapter>``.  Seeds Python,
    NumPy and torch with ``seed``.

    Under torchrun (``dfnb run --nproc``, :mod:`dfnb.launch`) the process of rank 0 records the run;
    the others record into ``$DFNB_RANK_SCRATCH`` (a scratch folder the launcher removes), and each
    process's ``device="cuda"`` is its own GPU (``cuda:LOCAL_RANK``).
    """
    injected = check_injected_parameters(chapter)
    if injected is not None:
        params = _apply_profile(chapter, params, injected)
    profile = params.get("profile", "default")
    out = Path(results_dir) if results_dir else result_dir(chapter, profile)
    rank = int(os.environ.get("RANK", "0"))
    if rank > 0:
        import tempfile

        out = Path(os.environ.get("DFNB_RANK_SCRATCH") or tempfile.mkdtemp(prefix=f"dfnb-rank{rank}-")) / chapter
        injected = None  # papermill's output and the earlier run are rank 0's to look after
    _use_local_gpu(str(params.get("device", "cpu")))
    executed = papermill_output() if injected is not None else None
    kept = out.resolve() / f"{chapter}.ipynb"
    if executed is not None and out.resolve() in executed.parents:
        raise ParameterError(f"papermill's output notebook {executed} is inside the run directory {out}, where a "
                             f"later papermill call would replace it unasked; write it elsewhere (the run keeps "
                             f"its own copy as {kept})")
    try:
        check_no_overwrite(out, chapter, params)
    except RunExistsError as e:
        if executed is None:
            raise
        where = f"the earlier run's executed notebook is {kept}" if kept.exists() else "the run directory holds none"
        raise RunExistsError(f"{e} papermill has already replaced {executed} with this refused run; {where}.") from None
    out.mkdir(parents=True, exist_ok=True)
    from dfnb.data.real import reset_loaded
    from dfnb.experiments import reset_used

    reset_used()
    reset_loaded()
    if "seed" in params:
        from dfnb.engine import seed_everything

        seed_everything(int(params["seed"]))
    set_threads(params.get("threads"))
    run = Run(chapter, params, out)
    run._executed = executed
    return run


def _use_local_gpu(device: str) -> None:
    """Under torchrun with ``device="cuda"``, make ``cuda`` mean this process's GPU, ``cuda:LOCAL_RANK``."""
    if device == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch

        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))


def set_threads(threads: int | None = None) -> int:
    """torch CPU threads: ``threads``, or when None (a chapter's default) every core of the machine,
    shared among the torchrun processes on it (``LOCAL_WORLD_SIZE``).  Returns the number set."""
    import torch

    share = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    n = max(1, (os.cpu_count() or 1) // share) if threads is None else int(threads)
    if n < 1:
        raise ParameterError(f"threads must be >= 1 or None, got {threads!r}")
    torch.set_num_threads(n)
    return n


def _no_index(df):
    """``df`` displayed without its (meaningless) integer index."""
    return df.style.hide(axis="index") if hasattr(df, "style") else df


# ---------------------------------------------------------------- outside the kernel
_TQDM = re.compile(r"\d+%\|.*\|\s*\d+/\d+|\d+/\d+ \[[\d:<?]+")


def strip_progress(notebook: str | Path) -> int:
    """Remove progress-bar outputs (tqdm widgets and tqdm text on stderr) from an executed notebook, in
    place; return how many were removed.  Recorded pages then carry no blank widget gaps; every other
    output (tables, figures, mask viewers) is kept."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    removed = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        keep = []
        for out in cell.outputs:
            data = out.get("data", {})
            text = data.get("text/plain", "") if "application/vnd.jupyter.widget-view+json" in data else (
                out.get("text", "") if out.get("name") == "stderr" else "")
            text = "".join(text) if isinstance(text, list) else text
            if text and _TQDM.search(text) and not text.startswith("VBox("):  # VBox: a mask viewer
                removed += 1
            else:
                keep.append(out)
        cell.outputs = keep
    if removed:
        nbformat.write(nb, str(notebook))
    return removed

def execute(
    chapter: str,
    profile: str = "default",
    overrides: dict[str, Any] | None = None,
    out_dir: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    kernel: str = "python3",
    precision: str | None = None,
    workers: int | None = None,
    nproc: int = 1,
) -> Path:
    """Validate, guard, and execute ``chapter`` with papermill; return the run directory.

    ``precision`` / ``workers``: ``$DFNB_PRECISION`` / ``$DFNB_NUM_WORKERS`` for the kernel (None:
    leave the environment as it is); ``nproc``: processes under torchrun (:mod:`dfnb.launch`).
    """
    nb_path = find_chapter(chapter)
    if "results_dir" in (overrides or {}):
        raise ParameterError("pass the output folder as --out (out_dir=), not as -p results_dir=")
    if out_dir is not None and not str(out_dir).strip():
        raise ParameterError("--out is empty; leave it out for results/<profile>/<chapter>, or name a folder")
    params = resolve_params(nb_path, profile, overrides)
    check_compute(params, precision, workers, nproc)
    with _compute_env(precision, workers):
        return _execute(nb_path, profile, params, out_dir, force, progress, kernel, nproc)


def check_compute(params: dict[str, Any], precision: str | None, workers: int | None, nproc: int) -> None:
    """A :class:`ParameterError` (one line) for ``--precision``, ``--workers`` or ``--nproc`` values that cannot run."""
    from dfnb.engine.loader import resolve_num_workers
    from dfnb.engine.precision import resolve_precision

    device = str(params.get("device", "cpu"))
    try:  # the flags, or the environment's $DFNB_PRECISION / $DFNB_NUM_WORKERS when not given
        resolve_precision(precision, device)
        resolve_num_workers(workers, device)
    except ValueError as e:
        raise ParameterError(str(e)) from None
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ParameterError(f"--nproc must be an integer >= 1, got {nproc!r}")
    if nproc > 1 and device.startswith("cuda"):
        import torch

        if device != "cuda":
            raise ParameterError(f"--nproc {nproc} puts each process on its own GPU: pass device=cuda, not {device}")
        if nproc > torch.cuda.device_count():
            raise ParameterError(f"--nproc {nproc} but this machine has {torch.cuda.device_count()} GPU(s)")
    if nproc > 1 and "batch_size" in params and isinstance(params["batch_size"], int) and params["batch_size"] % nproc:
        raise ParameterError(f"batch_size {params['batch_size']} (global) is not divisible by --nproc {nproc}")


class _compute_env:
    """Set ``$DFNB_PRECISION`` / ``$DFNB_NUM_WORKERS`` (the kernel inherits them) and restore them after."""

    def __init__(self, precision: str | None, workers: int | None):
        from dfnb.engine.loader import ENV as WORKERS
        from dfnb.engine.precision import ENV as PRECISION

        self.values = {PRECISION: precision, WORKERS: None if workers is None else str(workers)}

    def __enter__(self):
        self.before = {k: os.environ.get(k) for k in self.values}
        os.environ.update({k: v for k, v in self.values.items() if v is not None})

    def __exit__(self, *exc):
        for k, v in self.before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _execute(nb_path: Path, profile: str, params: dict[str, Any], out_dir, force: bool, progress: bool, kernel: str,
             nproc: int) -> Path:
    import papermill as pm

    name = nb_path.stem
    out = Path(out_dir).resolve() if out_dir else result_dir(name, profile)  # relative to where you are
    if out.exists() and not out.is_dir():
        raise RunExistsError(f"--out {out} is a file, not a folder")
    earlier = None  # the earlier run, set aside until this one has succeeded
    if force:
        moved = archive(out) if out.exists() else None
        if moved:
            print(f"dfnb run: moved the earlier run to {moved}", file=sys.stderr)
    else:
        check_no_overwrite(out, name, params)
        if out.exists() and any(out.iterdir()):
            earlier = out.with_name(f".{out.name}.earlier-{os.getpid()}")
            out.rename(earlier)
    out.mkdir(parents=True, exist_ok=True)
    if "results_dir" in read_parameters(nb_path):
        params["results_dir"] = rel_path(out)  # the kernel runs in the repo root; no machine path on the page
    t0 = time.time()
    executed = out / f"{name}.ipynb"
    error = None
    try:
        if nproc > 1:
            from dfnb.launch import execute_ranks

            execute_ranks(nb_path, executed, params, nproc, kernel=kernel, cwd=repo_root(), progress=progress)
        else:
            pm.execute_notebook(
                str(nb_path), str(executed), parameters=params, kernel_name=kernel,
                cwd=str(repo_root()), progress_bar=progress, log_output=False,
            )
    except pm.PapermillExecutionError as e:
        error = e
    except BaseException as e:  # SIGINT, a dead kernel (OOM): record it, put the earlier run back
        _close_failed(out, earlier, f"{type(e).__name__}: {e}", "interrupted")
        raise
    if executed.exists():
        strip_progress(executed)
    mpath = out / "manifest.json"
    manifest = json.loads(mpath.read_text()) if mpath.exists() else {"chapter": name, "params": _jsonable(params)}
    manifest["chapter_sha256"] = hashlib.sha256(nb_path.read_bytes()).hexdigest()[:16]
    manifest["runner"] = {
        "command": " ".join(sys.argv) if sys.argv and sys.argv[0].endswith("dfnb") else None,
        "executed_notebook": executed.name,
        "wall_seconds": round(time.time() - t0, 2),
        "kernel_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "papermill": pm.__version__,
        "nproc": nproc,
        "error": None if error is None else f"{error.ename}: {error.evalue}",
    }
    if error is not None:
        manifest["status"] = "failed"
    _write_json(mpath, manifest)
    if error is not None:
        _close_failed(out, earlier, manifest["runner"]["error"], "failed")
        raise error
    if earlier is not None:
        shutil.rmtree(earlier)  # the same run, replaced by this one now that it has succeeded
    return out


def _close_failed(out: Path, earlier: Path | None, why: str, status: str) -> None:
    """A run that did not finish: mark its manifest, move it to the archive if an earlier run was set
    aside (which goes back to ``out``), and say where everything is in one line."""
    mpath = out / "manifest.json"
    try:
        manifest = json.loads(mpath.read_text()) if mpath.exists() else {}
        if manifest.get("status") != "finished":
            manifest.update(status=status, error=why)
            _write_json(mpath, manifest)
    except (OSError, ValueError):
        pass
    if earlier is None:
        print(f"dfnb run: the run in {out} {status} ({why})", file=sys.stderr)
        return
    dest = _archive_dest(out, f"-{status}")
    shutil.move(str(out), dest)
    earlier.rename(out)
    print(f"dfnb run: {status} ({why}); the earlier run is back in {out}, this one is in {dest}",
          file=sys.stderr)


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="execute a chapter into results/<profile>/<chapter>/")
    p.add_argument("chapter", nargs="?", help="chapter name or prefix (e.g. 00_tour or 00); --list shows them")
    p.add_argument("--profile", default="default", choices=PROFILES)
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="override a parameter")
    p.add_argument("--out", default=None, help="run directory (default results/<profile>/<chapter>)")
    p.add_argument("--force", action="store_true", help="move a different earlier run to results/_archive/ first")
    p.add_argument("--list", action="store_true", help="list chapters and their parameters")
    p.add_argument("--precision", default=None, choices=("fp32", "bf16", "fp16"),
                   help="training / evaluation precision ($DFNB_PRECISION; default fp32 on CPU, bf16 on a GPU)")
    p.add_argument("--workers", type=int, default=None, metavar="K",
                   help="DataLoader workers ($DFNB_NUM_WORKERS; default 0 on CPU, min(8, cores) on a GPU)")
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="run the chapter in N processes under torchrun, its trainings data-parallel (one GPU each)")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    if args.list or not args.chapter:
        for ch in list_chapters():
            print(ch)
            for s in read_parameters(chapters_dir() / f"{ch}.ipynb").values():
                print(f"    {s.name} = {s.default!r}" + (f"    # {s.help}" if s.help else ""))
        return 0
    overrides = {}
    for kv in args.param:
        if "=" not in kv:
            raise ParameterError(f"-p expects KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        overrides[k.strip()] = parse_value(v)
    from papermill.exceptions import PapermillExecutionError

    try:
        out = execute(args.chapter, args.profile, overrides, out_dir=args.out, force=args.force,
                      precision=args.precision, workers=args.workers, nproc=args.nproc)
    except PapermillExecutionError as e:  # the line above (_close_failed) named the error and the run
        if getattr(args, "debug", False):
            raise
        print(f"dfnb run: error: the chapter stopped in cell [{e.exec_count}]; its traceback is in the executed "
              "notebook (dfnb --debug run ... prints it here)", file=sys.stderr)
        return 1
    print(out)
    return 0
