"""The DADF chapter's experiment protocol: train one model, score it the way the paper's tables do.

- :func:`train_model`  seed, build (``create_model``), ``fit`` on train / select on val, time it
- :func:`acc_by_method` Table 2's ACC: real test faces + one manipulation at a time, and their mean
- :func:`scores`        one row of Tables 1/4/5/6: PBCA, IINC (per image, all faces), ACC (mean of
  :func:`acc_by_method`), AUC, EER, in percent
- :data:`ABLATIONS`, :func:`ablation_plan`  the models of the ablation Tables 4, 5, 6

Ablations (Section 4.5).  Table 4 starts from "Baseline (SAM)" (``sam_full_ft``: SAM fine-tuned end
to end) and adds the Multiscale Adapter (frozen encoder + adapters, no RGA) or RGA.  The paper's
"SAM + RGA" row adds RGA to its SAM baseline, so here it is the fully fine-tuned SAM with RGA and ``L_rec``
(``adapter=None, freeze_encoder=False``); with adapters the encoder is frozen, as in DADF.  Table 5
swaps the adapter for variants B / C / D (adapter.py), Table 6 computes ``L_rec`` on fake or on all
faces instead of real ones (rga.py).  Every table's reference row is DADF itself (key ``"dadf"``).

ACC per manipulation follows the paper's Table 2 (FF++ subsets DF, F2F, FS, NT): the real faces of the
test split together with the fakes of one manipulation, at threshold 0.5; "Average" is the plain mean
over the manipulations (the paper's "Average" column).  Tables 4 and 5 print one "ACC" per model; we
read it as that average (Table 4's SAM and DADF ACC equal Table 2's averages).
"""
from __future__ import annotations

import time
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
from torch import nn

from dfnb.engine import History, fit, seed_everything
from dfnb.registry import create_model

__all__ = ["ABLATIONS", "FFPP_FAMILIES", "FMLD_FAMILIES", "ablation_plan", "acc_by_method", "scores", "train_model"]

#: ffpp-syn manipulation -> the paper's Table 2 column.
FFPP_FAMILIES: dict[str, str] = {"deepfakes": "DF", "face2face": "F2F", "faceswap": "FS", "neuraltextures": "NT"}
#: fmld-syn manipulation -> short name (FMLD: hair / glasses attribute edits, entire synthesis).
FMLD_FAMILIES: dict[str, str] = {"attribute_hair": "Hair", "attribute_glasses": "Glasses", "synthesis": "Synthesis"}


#: ``{table: {key: (row label, registry name, model kwargs)}}``; labels of Tables 4 and 5 are the
#: paper's method names in ``dfnb.papers`` (Table 6 was not transcribed).
ABLATIONS: dict[str, dict[str, tuple[str, str, dict[str, Any]]]] = {
    "4": {"sam": ("SAM", "sam_full_ft", {}),
          "adapter_only": ("SAM + Multiscale Adapter", "dadf", {"rga": False}),
          "rga_only": ("SAM + RGA", "dadf", {"adapter": None, "freeze_encoder": False}),
          "dadf": ("SAM + Multiscale Adapter + RGA", "dadf", {})},
    "5": {"B": ("Multiscale Adapter-B", "dadf", {"adapter": "B"}),
          "C": ("Multiscale Adapter-C", "dadf", {"adapter": "C"}),
          "D": ("Multiscale Adapter-D", "dadf", {"adapter": "D"}),
          "dadf": ("Multiscale Adapter", "dadf", {})},
    "6": {"dadf": ("L_rec on real faces", "dadf", {}),
          "rec_fake": ("L_rec on fake faces", "dadf", {"rec_on": "fake"}),
          "rec_all": ("L_rec on all faces", "dadf", {"rec_on": "all"})},
}
_REFERENCES = {"4": ("sam", "dadf"), "5": ("dadf",), "6": ("dadf",)}


def ablation_plan(variants: Sequence[str]) -> dict[str, list[str]]:
    """``{table: [keys]}``: each table that one of ``variants`` belongs to, with its reference rows.

    ``variants``: keys of :data:`ABLATIONS` other than the references (``"adapter_only"``,
    ``"rga_only"``, ``"B"``, ``"C"``, ``"D"``, ``"rec_fake"``, ``"rec_all"``).  Table 4 always gets
    ``"sam"`` and ``"dadf"``, Tables 5 and 6 ``"dadf"``; rows keep the order of :data:`ABLATIONS`.
    Tables without a requested variant are left out.
    """
    if isinstance(variants, str):
        raise TypeError(f"variants must be a list of names, got the string {variants!r}")
    known = [k for t in ABLATIONS for k in ABLATIONS[t] if k not in _REFERENCES[t]]
    bad = [v for v in variants if v not in known]
    if bad:
        raise ValueError(f"unknown ablation variants {bad}; choose from {known}")
    plan = {}
    for t, rows in ABLATIONS.items():
        if any(v in rows for v in variants):
            plan[t] = [k for k in rows if k in variants or k in _REFERENCES[t]]
    return plan


def acc_by_method(methods: Sequence[str], probs, labels, families: Mapping[str, str],
                  threshold: float = 0.5) -> dict[str, float]:
    """ACC (%) on the real faces plus one manipulation at a time, and ``"Average"`` over the manipulations.

    Args:
        methods: (N,) method name of each face (``"real"`` for real faces).
        probs: (N,) P(fake); labels: (N,) 1 = fake.
        families: ``{method: column name}`` of the manipulations to report, in order.
    Returns ``{column: ACC}`` for each family, then ``"Average"``.
    """
    meth = np.asarray(methods, dtype=object)
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if not (len(meth) == len(p) == len(y)):
        raise ValueError(f"methods, probs and labels must have the same length, got {len(meth)}, {len(p)}, {len(y)}")
    if not families:
        raise ValueError("families must name at least one manipulation")
    if not (meth == "real").any():
        raise ValueError("acc_by_method: no real faces (method 'real') in the data")
    pred = p >= threshold
    out: dict[str, float] = {}
    for m, col in families.items():
        if not (meth == m).any():
            raise ValueError(f"acc_by_method: no faces of manipulation {m!r}; present: {sorted(set(meth))}")
        sel = (meth == "real") | (meth == m)
        out[col] = 100.0 * float((pred[sel] == (y[sel] == 1)).mean())
    out["Average"] = float(np.mean([out[c] for c in families.values()]))
    return out


def scores(report: Mapping[str, Any], methods: Sequence[str], families: Mapping[str, str]) -> dict[str, float]:
    """``{"PBCA", "IINC", "ACC", "AUC", "EER"}`` in percent from an :func:`dfnb.engine.evaluate` report.

    PBCA / IINC: per image over all test faces (``localization["pbca_all"]``, ``["iinc_all"]``); ACC: the
    ``"Average"`` of :func:`acc_by_method`; AUC / EER: frame level.  ``methods`` as in :func:`acc_by_method`.
    """
    loc, det = report.get("localization"), report["detection"]
    if loc is None:
        raise ValueError("scores: the report has no localization (the model predicts no masks)")
    acc = acc_by_method(methods, report["probs"], report["labels"], families)
    return {"PBCA": 100.0 * float(loc["pbca_all"]), "IINC": 100.0 * float(loc["iinc_all"]), "ACC": acc["Average"],
            "AUC": 100.0 * float(det["frame_auc"]), "EER": 100.0 * float(det["frame_eer"])}


def train_model(name: str, train_set, val_set, *, epochs: int, batch_size: int, lr: float, seed: int,
                device: str = "cpu", progress: bool = True, **model_kwargs: Any) -> tuple[nn.Module, History, float]:
    """Seed, build ``create_model(name, device=device, **model_kwargs)``, train, time.

    The chapter's protocol for every model: ``seed_everything(seed)`` before the model is built (same
    initialisation of the shared parts), AdamW + cosine decay (``fit``'s defaults), best epoch by
    validation AUC restored, nothing written to disk.  Returns ``(model, history, train seconds)``.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    seed_everything(seed)
    with warnings.catch_warnings():
        # the chapter says which SAM it starts from; every other warning still shows
        warnings.filterwarnings("ignore", message="micro-SAM is randomly initialised")
        m = create_model(name, device=device, **model_kwargs)
        t0 = time.perf_counter()
        hist = fit(m, train_set, val_set, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
                   out_dir=None, progress=progress)
    return m, hist, time.perf_counter() - t0
