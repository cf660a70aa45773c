"""Worked examples: the localization metrics on 4x4 masks, computed by :mod:`dfnb.metrics` and by hand."""
from __future__ import annotations

import numpy as np

__all__ = ["localization_cases"]


def _cases():
    g = np.zeros((4, 4))
    g[1:3, 1:3] = 1  # a 2x2 square
    # by hand, N = 16.  "shifted by one": I = 2, U = 6, |P| = |G| = 4 -> PBCA = 12/16,
    # IINC = (2 - 2/4 - 2/4) / (3 - 6/16) = 16/42.  "prediction empty": U = |G| = 4 -> IINC = 1/(3 - 4/16)
    return {
        "both empty": (np.zeros((4, 4)), np.zeros((4, 4)), 1.0, 0.0),
        "prediction empty": (np.zeros((4, 4)), g, 12 / 16, 4 / 11),
        "exact": (g.copy(), g, 1.0, 0.0),
        "shifted by one": (np.roll(g, 1, axis=1), g, 12 / 16, 16 / 42),
    }


def localization_cases():
    """DataFrame, one row per case (prediction P, truth G): PBCA and IINC from ``dfnb.metrics`` beside
    the values worked out by hand (in this module's source).  Raises AssertionError if they differ."""
    import pandas as pd

    from dfnb import metrics

    rows = {}
    for name, (p, g, pbca, iinc) in _cases().items():
        rows[name] = {"PBCA": metrics.pbca(p[None], g[None]), "PBCA by hand": pbca,
                      "IINC": metrics.iinc(p[None], g[None]), "IINC by hand": iinc}
    t = pd.DataFrame.from_dict(rows, orient="index").rename_axis("case")
    assert np.allclose(t["PBCA"], t["PBCA by hand"]) and np.allclose(t["IINC"], t["IINC by hand"]), t
    return t
