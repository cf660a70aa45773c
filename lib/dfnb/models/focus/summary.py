"""What chapter 20 shows of its results: tables beside the paper's, figures, and sentences from templates.

Tables: :func:`beside_paper` (this run's rows beside the paper's), :func:`roles`, :func:`split_sizes`,
:func:`table2_side_by_side`, :func:`table4_beside_paper`, :func:`table7_row`.
Figures (fonts >= 9 pt): :func:`map_grid`, :func:`tsne_figure`, :func:`sweep_figure`, :func:`loss_curves`,
:func:`ablation_figure`.
Sentences: one template per finding (``*_sentence``), each returning a Markdown bullet (or None when the
run has nothing to say on it); :func:`bullets` joins them.  A missing value is written ``(missing)``.
No training here (``protocol`` does that).
"""
from __future__ import annotations

import math

import numpy as np

#: the cross-domain synthetic sets and the real data set whose *role* each plays in the paper's tables
CROSS_ROLE = {"celebdf-syn": "CDF", "wdf-syn": "WDF", "dfdc-syn": "DFDC", "dfdcp-syn": "DFDCp"}
#: map sources by the paper's row names
PAPER_NAMES = {"ssim": "SSIM", "diff": "Pixel-wise", "diff@0.1": "Pixel-wise@0.1", "focus": "FoCus"}
#: dfnb.data.corruptions kinds by Table IV's column names (JPEG stands in for video compression)
KIND_NAMES = {"saturation": "Saturation", "contrast": "Contrast", "block": "Block", "noise": "Noise",
              "blur": "Blur", "pixelate": "Pixel", "jpeg": "Compress"}
FS = 9  # the smallest font of a figure


# ----------------------------------------------------------------------------- small words
def _missing(v) -> bool:
    try:
        return v is None or not math.isfinite(float(v))
    except (TypeError, ValueError):
        return True


def num(v, digits: int = 3) -> str:
    """``v`` with ``digits`` decimals, or ``(missing)`` for None / NaN."""
    return "(missing)" if _missing(v) else f"{float(v):.{digits}f}"


def count(n: int, word: str) -> str:
    """``1 variant``, ``3 variants``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def names(items) -> str:
    """```a`, `b``` or ``none``."""
    items = list(items)
    return ", ".join(f"`{i}`" for i in items) if items else "none"


def bullets(lines) -> str:
    """Markdown list of the lines that are not None; a line starting with two spaces stays a sub-item."""
    return "\n".join(l if l.startswith("  - ") else f"- {l}" for l in lines if l)


# ----------------------------------------------------------------------------- tables
def roles(dataset: str, in_domain: str, cross) -> dict:
    """This run's column -> (paper test set, metric): the in-domain ACC / AUC pair, then the role of each
    cross-domain set (``CROSS_ROLE``; sets without a role are left out)."""
    cols = {f"{dataset} ACC": (in_domain, "ACC"), f"{dataset} AUC": (in_domain, "AUC")}
    cols.update({name: (CROSS_ROLE[name], "AUC") for name in cross if name in CROSS_ROLE})
    return cols


def beside_paper(ours, paper: dict, columns: dict, ours_label: str):
    """This run's rows beside the paper's, one table (values in %, as the paper prints them).

    ``ours``: DataFrame, index = method (the paper's names where it has the row), columns = this run's
    measures as fractions in [0, 1].  ``paper``: {label: the paper's DataFrame, index = method, columns =
    (test_set, metric) as ``dfnb.papers.pivot`` gives them}.  ``columns``: {our column: (paper test_set,
    metric)}, the pairing of the two (a role, not an equivalence: name the data sets in the labels).
    Returns a DataFrame indexed by (method, source) with source = ``ours_label`` or a paper label, columns
    ``"<our column> | <paper test_set> <metric>"``; a paper row is given only for the methods in ``ours``
    and a cell the paper lacks is NaN.
    """
    import pandas as pd

    missing = [c for c in columns if c not in ours.columns]
    if missing:
        raise KeyError(f"columns {missing} are not in this run's table (it has {list(ours.columns)})")
    heads = {c: f"{c} | {t} {m}" for c, (t, m) in columns.items()}
    rows = {}
    for method in ours.index:
        rows[(method, ours_label)] = {heads[c]: 100 * float(ours.loc[method, c]) for c in columns}
        for label, df in paper.items():
            if method in df.index:
                rows[(method, label)] = {heads[c]: (float(df.loc[method, key]) if key in df.columns
                                                    else float("nan")) for c, key in columns.items()}
    out = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=list(heads.values()))
    out.index = pd.MultiIndex.from_tuples(out.index, names=["method", "source"])
    return out.round(2)


def split_sizes(sets: dict):
    """``{name: split}`` -> DataFrame with the number of faces and of fakes of each split."""
    import pandas as pd

    return pd.DataFrame({name: {"faces": len(ds), "fake": int(sum(int(ds[i]["label"]) for i in range(len(ds))))}
                         for name, ds in sets.items()}).T


def table2_side_by_side(ev_auc, sources, cross, paper_t2, train_set: str = "FF++ (HQ)"):
    """Table II: this run's cross-domain evaluator AUC (%) per map source beside the paper's (trained on
    ``train_set``), columns ``<set> (ours)`` and ``<role> (paper, HQ)`` where the paper has the source."""
    import pandas as pd

    p2 = paper_t2.xs(train_set, level="train_set").droplevel("metric", axis=1)
    side = []
    for s in sources:
        row = {"map source": s}
        for name in cross:
            row[f"{name} (ours)"] = round(100 * ev_auc.loc[s, name], 2)
            if s in PAPER_NAMES and CROSS_ROLE.get(name) in p2.columns:
                row[f"{CROSS_ROLE[name]} (paper, HQ)"] = p2.loc[PAPER_NAMES[s], CROSS_ROLE[name]]
        side.append(row)
    return pd.DataFrame(side).set_index("map source")


def table4_beside_paper(rob, paper_row, dataset: str):
    """Table IV: this run's frame AUC (%) per corruption (mean over levels) beside the paper's FoCus row,
    both with the change from the clean AUC (the comparable quantity when the clean levels differ).

    rob: ``protocol.corruption_auc`` (rows = kinds and ``clean``, a ``mean`` column, fractions);
    paper_row: the paper's values (%) indexed by its column names (``Clean``, ``Saturation``, ...,
    ``Average``).  Kinds the run left out are left out.
    """
    import pandas as pd

    ours = {"Clean": 100 * rob.loc["clean", "mean"]}
    ours.update({KIND_NAMES[k]: 100 * rob.loc[k, "mean"] for k in rob.index if k in KIND_NAMES})
    kinds = [k for k in ours if k != "Clean"]
    if kinds:
        ours["Average"] = float(np.mean([ours[k] for k in kinds]))
    paper = pd.Series(paper_row, dtype=float).reindex(list(ours))
    t = pd.DataFrame({f"this run, {dataset} test: AUC (%)": pd.Series(ours)})
    t["this run: change from clean"] = t.iloc[:, 0] - ours["Clean"]
    t["paper (test data not stated): AUC (%)"] = paper
    t["paper: change from clean"] = paper - paper.get("Clean", float("nan"))
    return t.round(2)


def table7_row(t7, dataset: str):
    """Table VII's FoCus row of this run: ``t7`` (rows = test sets, columns ``ACC, AUC``) -> one row
    ``FoCus`` with ``<dataset> ACC``, ``<dataset> AUC`` and the AUC of every other set (fractions)."""
    import pandas as pd

    row = {f"{dataset} ACC": t7.loc[dataset, "ACC"], f"{dataset} AUC": t7.loc[dataset, "AUC"]}
    row.update({n: t7.loc[n, "AUC"] for n in t7.index if n != dataset})
    return pd.DataFrame({"FoCus": row}).T


# ----------------------------------------------------------------------------- figures
def _as_rows(x) -> np.ndarray:
    """A tensor / array of N images -> (N, H, W, 3) RGB or (N, H, W) map, float, on the CPU."""
    a = x.detach().float().cpu().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float32)
    if a.ndim == 4 and a.shape[1] == 3:
        return a.transpose(0, 2, 3, 1).clip(0, 1)
    if a.ndim == 4 and a.shape[1] == 1:
        return a[:, 0]
    if a.ndim == 3 or (a.ndim == 4 and a.shape[-1] == 3):
        return a
    raise ValueError(f"expected N images (N, 3, H, W), (N, 1, H, W), (N, H, W) or (N, H, W, 3); got {a.shape}")


def map_grid(rows: dict, titles, cell: float = 1.6, cmap: str = "magma"):
    """A grid of faces: one row per entry of ``rows`` (``{name: N images or maps}``), one column per face
    (``titles``, N strings).  RGB rows are drawn as they are, maps with ``cmap`` on [0, 1]."""
    import matplotlib.pyplot as plt

    arrs = {k: _as_rows(v) for k, v in rows.items()}
    n = len(titles)
    if any(len(a) != n for a in arrs.values()):
        raise ValueError(f"every row needs {n} images: {[len(a) for a in arrs.values()]}")
    fig, axes = plt.subplots(len(arrs), n, figsize=(cell * n + 1.2, cell * len(arrs)), squeeze=False)
    for r, (name, a) in enumerate(arrs.items()):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(a[c], cmap=None if a.ndim == 4 else cmap, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=FS, rotation=0, ha="right", va="center")
    for c, t in enumerate(titles):
        axes[0, c].set_title(t, fontsize=FS)
    fig.tight_layout()
    return fig


def tsne_figure(emb, families, order, title: str):
    """2-D embedding ``emb`` (N, 2), one colour per family of ``order`` present (real: circles, fakes:
    triangles), legend and title at >= 9 pt."""
    import matplotlib.pyplot as plt

    families = np.asarray(families)
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    for m in order:
        sel = families == m
        if sel.any():
            ax.scatter(emb[sel, 0], emb[sel, 1], s=14, label=m, marker="o" if m == "real" else "^", alpha=0.8)
    ax.legend(fontsize=FS)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=FS + 1)
    fig.tight_layout()
    return fig


def sweep_figure(table, xlabel: str, title: str, log2: bool = False):
    """One panel per column of ``table`` against its index (the swept value), at most three a row; AUC
    panels on [0, 1]; a log axis for K (``log2``) or for values spanning a factor >= 10."""
    import matplotlib.pyplot as plt

    cols = list(table.columns)
    ncol = min(3, len(cols))
    nrow = -(-len(cols) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.8 * nrow), squeeze=False)
    for ax in axes.flat[len(cols):]:
        ax.set_visible(False)
    x = np.asarray(table.index, dtype=float)
    for ax, col in zip(axes.flat, cols):
        ax.plot(x, table[col].to_numpy(float), marker="o")
        if log2 or (len(x) > 1 and x.min() > 0 and x.max() / x.min() >= 10):
            ax.set_xscale("log", base=2 if log2 else 10)
        ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.minorticks_off()
        if "AUC" in str(col):
            ax.set_ylim(0, 1)
        ax.set_title(str(col), fontsize=FS)
        ax.set_xlabel(xlabel, fontsize=FS)
        ax.tick_params(labelsize=FS)
    fig.suptitle(title, fontsize=FS + 1)
    fig.tight_layout()
    return fig


def loss_curves(histories: dict, columns: dict, title: str):
    """One panel per loss (``columns = {history column: panel title}``), one line per entry of
    ``histories = {label: History.to_frame()}``, against the epoch."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 2.9), squeeze=False)
    for ax, (col, name) in zip(axes[0], columns.items()):
        for label, h in histories.items():
            ax.plot(h["epoch"], h[col], marker=".", label=label)
        ax.set_title(name, fontsize=FS)
        ax.set_xlabel("epoch", fontsize=FS)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=FS)
        ax.legend(fontsize=FS)
    fig.suptitle(title, fontsize=FS + 1)
    fig.tight_layout()
    return fig


def ablation_figure(table, paper, column: str, dataset: str, paper_dataset: str, title: str):
    """Bars of this run's ``column`` (%, one value per variant: no interval with one seed) with the
    paper's value per variant (``paper``: Series in %, NaN or absent where it has none) as diamonds."""
    from dfnb import report

    mean = 100 * table[column].to_numpy(float)
    nan = np.full(len(mean), np.nan)
    p = [float(paper.get(i, np.nan)) for i in table.index]
    fig = report.bar_chart_with_ci(list(table.index), mean, nan, nan, paper=p, title=title,
                                   xlabel=f"AUC (%): this run on {dataset} test, paper on {paper_dataset}")
    ax = fig.axes[0]
    ax.set_xlim(0, 100)
    ax.legend(fontsize=FS, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, never on them
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- sentences
def detector_sentence(t7, dataset: str) -> str:
    """FoCus's own head as a detector, in-domain and across domains."""
    cd = ", ".join(f"`{k}` {num(t7.loc[k, 'AUC'])}" for k in t7.index if k != dataset)
    return (f"**FoCus as a detector** (its CL head): frame AUC {num(t7.loc[dataset, 'AUC'])} on "
            f"`{dataset}` test" + (f"; across domains {cd}." if cd else "."))


def localization_sentence(direct, dataset: str) -> str:
    """FoCus's fused map against the exact masks, beside the face-hull floor and the other sources
    present (sources the run left out are not named)."""
    get = lambda s, k="pixel_auc_fake": direct.loc[s, k] if s in direct.index else float("nan")  # noqa: E731
    fo, hull = get("focus"), get("face hull (prior)")
    if _missing(fo) or _missing(hull):
        verdict = "cannot be compared with the face-hull prior (a value is missing)"
    elif fo > hull + 0.02:
        verdict = f"beats the face-hull prior ({num(hull)})"
    else:
        verdict = f"does **not** beat the face-hull prior ({num(hull)}): it marks the face, not the forgery"
    others = [f"{label} {num(get(s))}" for s, label in (("diff", "the pixel difference"), ("ssim", "SSIM"),
                                                       ("gradcam", "Grad-CAM of the RGB branch"))
              if s in direct.index]
    iou = [f"{s} {num(get(s, 'iou_fake'))}" for s in ("focus", "diff@0.1") if s in direct.index]
    return (f"**Do FoCus maps localize?** Fused-map pixel AUC on the fakes of `{dataset}` test: {num(fo)}; it "
            f"{verdict}" + (f". Other sources: {', '.join(others)}" if others else "")
            + (f". IoU at 0.5: {', '.join(iou)}." if iou else "."))


def substitution_sentence(sob) -> str:
    """What the CL block's substitution mask does (collapsed or mixed; inside vs outside the true masks)."""
    sf, sin, sout = sob["all test faces"], sob["fakes, inside the true mask"], sob["fakes, outside the true mask"]
    if sf > 0.9:
        cl = "the CL block has **collapsed onto Sobel tokens** (almost every position keeps its Sobel token)"
    elif sf < 0.1:
        cl = "the CL block has **collapsed onto RGB tokens** (almost no Sobel token survives)"
    else:
        cl = "the CL block mixes the two modalities"
    if _missing(sin) or _missing(sout):
        where = ("; the inside / outside comparison is missing (no token position of a fake lies on that side "
                 "of its mask).")
    elif abs(sin - sout) > 0.1:
        where = (f"; inside the true masks of fakes {num(sin)}, outside {num(sout)}, but every true mask lies on "
                 "the face, so this may only separate face from background.")
    else:
        where = (f"; inside the true masks of fakes {num(sin)}, outside {num(sout)}, so S does not single out "
                 "the manipulated region.")
    return f"**Substitution mask:** {num(sf)} of the test token positions keep the Sobel token: {cl}" + where


def _within(d, se) -> str:
    if _missing(d) or _missing(se):
        return "not comparable with the standard error (a value is missing)"
    return "within" if abs(d) < 2 * se else "beyond"


def evaluator_sentences(ev_auc, boot_se, taus, dataset: str, n_ranked: int) -> list[str]:
    """The evaluator protocol: spread of in-domain AUC over map sources against the bootstrap SE, the best
    sources, chance-level cross-domain AUCs, and the agreement with the direct ranking (Kendall tau)."""
    col = ev_auc[dataset]
    spread, se = col.max() - col.min(), boot_se[dataset].mean()
    has_cross = "cross-domain mean" in ev_auc and ev_auc["cross-domain mean"].notna().any()
    w = _within(spread, se)
    verdict = (" The spread is within about two standard errors: at this scale the protocol cannot separate "
               "the sources." if w == "within" else " The spread exceeds two standard errors."
               if w == "beyond" else "")
    lines = [f"**Evaluator protocol:** in-domain AUC ranges over {num(col.min())} to {num(col.max())} across "
             f"map sources (spread {num(spread)}, bootstrap SE of one AUC about {num(se)}); best in-domain "
             f"`{col.idxmax()}`" + (f", best cross-domain mean `{ev_auc['cross-domain mean'].idxmax()}`."
                                    if has_cross else ".") + verdict]
    if has_cross and ev_auc["cross-domain mean"].max() < 0.6:
        lines.append(f"  - Cross-domain AUCs stay near chance (mean over sets at most "
                     f"{num(ev_auc['cross-domain mean'].max())}), so rankings by cross-domain AUC are rankings of "
                     "noise here.")
    for name, t in taus.iterrows():
        if not _missing(t["kendall_tau"]):
            lines.append(f"  - Kendall τ between the direct ranking and *{name}*: {t['kendall_tau']:.2f} "
                         f"(p = {num(t['p_value'], 2)}, {count(n_ranked, 'source')}).")
    return lines


def scale_sentence(auc, vit_depth: int) -> str | None:
    """A warning when FoCus barely detects (AUC < 0.65): the scale is the first limit."""
    if _missing(auc) or auc >= 0.65:
        return None
    return (f"**Scale, not the method, is the first limit here:** a randomly initialised "
            f"{vit_depth}-block ViT trained on a few hundred faces barely detects (an ACC equal to the "
            "share of fakes means it predicts *fake* for everything); the paper's ImageNet ViT-S on ~100k FF++ "
            "frames is a different regime.")


def _verb(d, it: bool = False) -> str:
    if _missing(d):
        return "change it by a missing amount" if it else "change by a missing amount"
    return ("raise" if d > 0 else "lower" if d < 0 else "leave unchanged") if not it else \
        ("raise it" if d > 0 else "lower it" if d < 0 else "leave it unchanged")


def pcl_sentence(t3, paper_t3, dataset: str, se, fake_share) -> str | None:
    """Table III: the PCL-style detector with FoCus maps instead of its original ones, here and in the
    paper (PCL on FF++ HQ), and a note when its ACC is that of a one-label guess."""
    if "FoCus" not in t3.index or len(t3) < 2:
        return None
    o = [n for n in t3.index if n != "FoCus"][0]
    a, b = t3.loc["FoCus", f"{dataset} AUC"], t3.loc[o, f"{dataset} AUC"]
    d_in = a - b
    txt = (f"**PCL-style detector (Table III analogue):** supervised by FoCus maps instead of its original "
           f"`{o}` maps, in-domain AUC {num(a)} vs {num(b)} ({num(d_in) if _missing(d_in) else f'{d_in:+.3f}'}, "
           f"{_within(d_in, se)} two bootstrap standard errors of one AUC, about {num(se)} each)")
    if "cross-domain mean" in t3 and t3["cross-domain mean"].notna().all():
        xa, xb = t3.loc["FoCus", "cross-domain mean"], t3.loc[o, "cross-domain mean"]
        txt += f"; cross-domain mean {num(xa)} vs {num(xb)} ({xa - xb:+.3f})"
    pp = paper_t3.xs("FF++ (HQ)", level="train_set")
    if o in pp.index and "FoCus" in pp.index:
        dp = pp.loc["FoCus", ("FF++", "AUC")] - pp.loc[o, ("FF++", "AUC")]
        txt += (f". In the paper (PCL on FF++ HQ) FoCus maps {_verb(dp)} the in-domain AUC; here they "
                f"{_verb(d_in, it=True)} on `{dataset}`")
    one = [n for n in t3.index if not _missing(fake_share)
           and min(abs(t3.loc[n, f"{dataset} ACC"] - fake_share), abs(t3.loc[n, f"{dataset} ACC"] - (1 - fake_share)))
           < 1e-6]
    if one:
        txt += (f". Its in-domain ACC with {names(one)} maps equals the share of one class in the test set "
                f"({num(fake_share)} fake): at threshold 0.5 it gives every face the same label, so only its AUC "
                "ranks anything here")
    return txt + "."


def modalities_sentence(t5, paper_t5, dataset: str, epochs: int, se, sobel_name: str = "RGB + Sobel (FoCus)"):
    """Table V: the best second modality by the evaluator and by the exact masks, against the paper."""
    if not len(t5):
        return None
    best_ev, best_px = t5[f"{dataset} AUC"].idxmax(), t5["direct pixel AUC (fakes)"].idxmax()
    txt = (f"**Modalities (Table V analogue, {count(len(t5), 'variant')}, trained for {count(epochs, 'epoch')} "
           f"each):** by the evaluator's in-domain AUC the best is `{best_ev}` "
           f"({num(t5.loc[best_ev, f'{dataset} AUC'])})")
    if "cross-domain mean" in t5 and t5["cross-domain mean"].notna().any():
        txt += f", by its cross-domain mean `{t5['cross-domain mean'].idxmax()}`"
    txt += (f", by the direct pixel AUC against the exact masks `{best_px}` "
            f"({num(t5.loc[best_px, 'direct pixel AUC (fakes)'])}).")
    if sobel_name in t5.index and len(t5) > 1:
        p5 = paper_t5[("FF++ (LQ)", "AUC")]
        txt += (f" +Sobel is {'' if best_ev == sobel_name else '**not** '}the best modality by the evaluator on "
                f"this run and {'' if best_px == sobel_name else '**not** '}the best by the exact masks (the "
                f"paper's best in-domain: `{p5.idxmax()}`).")
        spread = t5[f"{dataset} AUC"].max() - t5[f"{dataset} AUC"].min()
        txt += (f" The in-domain AUC spread over modalities, {num(spread)}, is {_within(spread, se)} about two "
                "standard errors.")
    return txt


def modules_sentence(t6, paper_t6, dataset: str) -> str | None:
    """Table VI: each module ablation and CAM source relative to FoCus's own maps, here and in the paper."""
    if len(t6) < 2 or "FoCus" not in t6.index:
        return None
    p6 = paper_t6[("FF++ (LQ)", "AUC")]
    ref_a, ref_p = t6.loc["FoCus", f"{dataset} AUC"], t6.loc["FoCus", "direct pixel AUC (fakes)"]
    rest = [r for r in t6.index if r != "FoCus"]
    parts = [f"`{r}` {t6.loc[r, f'{dataset} AUC'] - ref_a:+.3f} (pixel AUC "
             f"{t6.loc[r, 'direct pixel AUC (fakes)'] - ref_p:+.3f})" for r in rest]
    below = [r for r in rest if t6.loc[r, f"{dataset} AUC"] < ref_a]
    in_paper = [r for r in rest if r in p6.index]
    paper_below = [r for r in in_paper if p6[r] < p6["FoCus"]]
    return (f"**Modules and CAM maps (Table VI analogue):** evaluator in-domain AUC relative to FoCus's own maps "
            f"({num(ref_a)}; direct pixel AUC {num(ref_p)}): {', '.join(parts)}. Below FoCus on this run: "
            f"{len(below)} of {len(rest)} ({names(below)}); in the paper: {len(paper_below)} of {len(in_paper)}.")


def ablation_tau_sentence(tau, p, n: int) -> str | None:
    """Agreement of the evaluator and the exact masks over the ablation map sources (None when tau is missing)."""
    if _missing(tau):
        return None
    agree = "agree." if tau >= 0.5 else "do not agree." if tau <= 0 else "agree only weakly."
    weak = " With so few sources and this p-value, that is no evidence either way." if not p <= 0.1 else ""
    return (f"  - Evaluator vs exact masks over the {count(n, 'ablation map source')}: Kendall τ = {tau:.2f} "
            f"(p = {num(p, 2)}); the two rankings {agree}{weak}")


def k_sweep_sentence(k_sweep) -> str | None:
    """Fig. 10 analogue: range and best K of the head AUC and of the fused-map pixel AUC."""
    if not len(k_sweep):
        return None
    kh, kp = k_sweep["FoCus-head AUC"], k_sweep["fused-map pixel AUC (fakes)"]
    return (f"**K sweep** (K in {list(k_sweep.index)}): head AUC {num(kh.min())} to {num(kh.max())} (best K = "
            f"{kh.idxmax()}), fused-map pixel AUC {num(kp.min())} to {num(kp.max())} (best K = {kp.idxmax()}). "
            "The paper's Fig. 10 (not transcribed) has gains flattening above K = 32.")


def lambda_sweep_sentence(lam_sweep, epochs: int) -> str | None:
    """Fig. 11 analogue: where the losses end lowest and the head AUC is best, over lambda."""
    if not len(lam_sweep):
        return None
    t = lam_sweep
    return (f"**λ sweep** (λ in {[float(v) for v in t.index]}): after {count(epochs, 'epoch')} the lowest L_cls "
            f"is at λ = {t['final train L_cls'].idxmin():g}, the lowest L_loc at λ = "
            f"{t['final train L_loc'].idxmin():g}; head AUC {num(t['FoCus-head AUC'].min())} to "
            f"{num(t['FoCus-head AUC'].max())} (best at λ = {t['FoCus-head AUC'].idxmax():g}). The paper's "
            "Fig. 11 (loss curves, not transcribed) picks λ = 0.1.")


def features_sentence(sep) -> str:
    """What the fused features separate (1-NN accuracy against a constant guess); identities only when
    ``sep`` has an ``identity`` row (they are known)."""
    fa, fs = sep.loc["family (real + 4)", "1-NN accuracy"], sep.loc["family (real + 4)", "majority share"]
    ra, rs = sep.loc["real vs fake", "1-NN accuracy"], sep.loc["real vs fake", "majority share"]
    txt = (f"**Fused features** (Section 13): leave-one-out 1-NN accuracy of the family label {num(fa)} "
           f"(constant guess {num(fs)}), of real vs fake {num(ra)} (constant guess {num(rs)}): the features "
           + ("separate the families well beyond a constant guess" if fa > fs + 0.1 else
              "barely separate the families (whatever the t-SNE picture suggests)"))
    if "identity" in sep.index:
        ia, is_ = sep.loc["identity", "1-NN accuracy"], sep.loc["identity", "majority share"]
        txt += (f"; the nearest neighbour has the same identity {num(ia)} of the time (constant guess "
                f"{num(is_)}), so the clusters are " + ("faces of one person rather than one forgery family"
                                                        if ia > fa + 0.1 else "not identity clusters either"))
    return txt + "."
