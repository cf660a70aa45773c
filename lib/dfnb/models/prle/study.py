"""The experiment loop of the PRLE chapter: train a detector (with or without a PRLE transform), test it.

- :func:`model_kwargs`    the keyword arguments a zoo name needs at an image size (F3-Net's DCT size)
- :func:`train_detector`  seeded init + ``dfnb.engine.fit`` (checkpoint selected on the validation split)
- :func:`test_detector`   ``dfnb.engine.evaluate`` on several named test sets -> detection reports
- :func:`by_method`       the samples of some manipulation families (Table III: train on real + one family)
- :func:`nested_zoos`     the growing zoos of Fig. 6: the first 1, 2, ..., D detectors, in zoo order

Tables II, III, VI and Fig. 6 are each a loop over these: the same detector, data and schedule,
only the training subset or the ``train_transform`` (which maps PRLE masks with) changes.
"""
from __future__ import annotations

import inspect
from typing import Mapping, Sequence

import torch

__all__ = ["model_kwargs", "train_detector", "test_detector", "by_method", "nested_zoos", "paper_gain",
           "table2_claims", "PAPER_TEST_SET", "PAPER_ARCH"]


def model_kwargs(name: str, size: int) -> dict:
    """``{"img_size": size}`` when the registered factory ``name`` has an ``img_size`` argument with a
    fixed default (a model built for one input size: F3-Net's DCT, a ViT's patch grid, toy_cnn), else ``{}``
    (CNNs whose ``img_size`` defaults to None take any size)."""
    from dfnb.registry import _REGISTRY, list_models

    if name not in list_models():
        raise KeyError(f"unknown model {name!r}; registered: {list_models()}")
    p = inspect.signature(_REGISTRY[name]).parameters.get("img_size")
    if p is None or p.default is None or p.default is inspect.Parameter.empty:
        return {}
    return {"img_size": int(size)}


def train_detector(name: str, train_set, val_set, *, epochs: int, batch_size: int, lr: float, seed: int,
                   size: int | None = None, transform=None, device: str = "cpu", progress: bool = False,
                   cache=True):
    """Build detector ``name`` from seed ``seed`` and fit it (``dfnb.engine.fit``, cosine AdamW), through the
    experiment cache (``dfnb.experiments.train_seeded``: a second identical call loads the trained model).

    size: the images' side, passed as ``img_size`` where the model needs it (:func:`model_kwargs`).
    transform: the engine's ``train_transform`` (e.g. a :class:`~dfnb.models.prle.PRLEAugment`, keyed by its
    ``cache_key()``) or None.  Returns ``(model, history)``; the model holds the best validation epoch's
    weights, in eval mode.
    """
    from dfnb import experiments

    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    exp = experiments.train_seeded(name, train_set, val_set, seed=seed, cache=cache, transform=transform,
                                   model_kwargs=model_kwargs(name, size) if size is not None else {},
                                   epochs=epochs, batch_size=batch_size, lr=lr, device=device, progress=progress)
    return exp.model.eval(), exp.history


def test_detector(model, test_sets: Mapping[str, object], *, batch_size: int = 64, device: str = "cpu",
                  progress: bool = False) -> dict[str, dict]:
    """``{test set name: dfnb.metrics.detection_report}`` (frame_auc, frame_acc, ... in [0, 1]) of ``model``
    on each named test set, in the mapping's order."""
    from dfnb import engine

    if not test_sets:
        raise ValueError("test_sets is empty")
    return {name: engine.evaluate(model, ds, batch_size=batch_size, device=device, progress=progress,
                                  return_masks=False)["detection"]
            for name, ds in test_sets.items()}


def _methods_of(dataset) -> list[str]:
    methods = getattr(dataset, "methods", None)
    if methods is not None:
        return list(methods)
    if isinstance(dataset, torch.utils.data.Subset):
        inner = _methods_of(dataset.dataset)
        return [inner[i] for i in dataset.indices]
    return [dataset[i]["method"] for i in range(len(dataset))]


def by_method(dataset, methods: Sequence[str]) -> torch.utils.data.Subset:
    """The samples of ``dataset`` whose ``method`` is in ``methods`` (e.g. ``["real", "deepfakes"]``),
    in their original order, as a ``torch.utils.data.Subset``.  A method that the data set does not
    hold is a ``ValueError`` naming the ones it has."""
    have = _methods_of(dataset)
    methods = list(methods)
    if not methods:
        raise ValueError("methods is empty")
    missing = [m for m in methods if m not in set(have)]
    if missing:
        raise ValueError(f"the data set has no samples of {missing}; it has {sorted(set(have))}")
    wanted = set(methods)
    return torch.utils.data.Subset(dataset, [i for i, m in enumerate(have) if m in wanted])


def nested_zoos(detectors: Sequence[str]) -> list[list[str]]:
    """Fig. 6's zoos: ``[d0], [d0, d1], ..., [d0, ..., dD-1]`` (detectors added in the given order)."""
    detectors = list(detectors)
    if not detectors:
        raise ValueError("no detectors")
    if len(set(detectors)) != len(detectors):
        raise ValueError(f"duplicate detectors in {detectors}")
    return [detectors[:k] for k in range(1, len(detectors) + 1)]


# the paper's test set whose role each synthetic (or real) test set plays in Table II
PAPER_TEST_SET = {"dfdc-syn": "DFDC", "dfo-syn": "DF-1.0", "celebdf-syn": "Celeb-DF",
                  "dfdc (real)": "DFDC", "dfo (real)": "DF-1.0", "celebdf (real)": "Celeb-DF"}
PAPER_ARCH = {"efficientnet_lite0": "EfficientNet", "efficientnet_b4": "EfficientNet", "resnet50": "ResNet-50",
              "xception": "Xception", "vgg16": "VGG", "f3net": "F3-Net"}


def paper_gain(arch: str, test_set: str) -> float:
    """PRLE Table II (the paper's numbers): AUC of ``arch + PRLE`` minus ``arch`` on ``test_set`` (points);
    ``test_set="Average"`` for the paper's cross-dataset average."""
    from dfnb import papers

    return (papers.paper_value("prle", "II", method=f"{arch} + PRLE", metric="AUC", test_set=test_set)
            - papers.paper_value("prle", "II", method=arch, metric="AUC", test_set=test_set))


def table2_claims(per_seed, detector: str, in_domain: str, variant: str = "+ PRLE", reference: str = "baseline"):
    """Claims-table rows (``dfnb.stats.claim_row``) of Table II for one detector: PRLE raises the cross-domain
    mean AUC, and the AUC on each cross-domain set, paired by training seed.

    per_seed: one row per (variant, "train seed", "test set") with "AUC" in points; the seeds present for
    both ``reference`` and ``variant`` are paired (a single seed gives an ``inconclusive`` row)."""
    from dfnb import stats

    arch = PAPER_ARCH.get(detector)
    if arch is None:
        raise ValueError(f"no Table II architecture for {detector!r}; known: {sorted(PAPER_ARCH)}")
    auc = per_seed.pivot_table(index="train seed", columns=["variant", "test set"], values="AUC")
    sets = [t for t in auc[reference].columns if t in PAPER_TEST_SET and t != in_domain]
    both = auc[[reference, variant]].dropna().index
    ref, var = auc.loc[both, reference], auc.loc[both, variant]
    rows = [stats.claim_row(f"PRLE raises the cross-domain mean AUC of {arch} (here {detector})", "II",
                            paper_gain(arch, "Average"), ref[sets].mean(axis=1), var[sets].mean(axis=1),
                            dataset=f"{in_domain} -> " + ", ".join(sets), metric="frame AUC (points)")]
    for t in sets:
        rows.append(stats.claim_row(f"PRLE raises {arch}'s AUC on {PAPER_TEST_SET[t]} (here {t})", "II",
                                    paper_gain(arch, PAPER_TEST_SET[t]), ref[t], var[t],
                                    dataset=f"{in_domain} -> {t}", metric="frame AUC (points)"))
    return rows
