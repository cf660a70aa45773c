"""Every equation a chapter implements, with the function that computes it and the test that checks it.

Each chapter opens (after its idea) with ``report.equation_table(<chapter key>)``: one row per
equation, typeset in LaTeX, naming the library function or method (full dotted name) and the test
(``tests/<file>.py::<test function>``).  ``tests/test_papers.py`` imports every function named here
and finds every test, so the table cannot point at something that is not there.

``number`` is the paper's equation number where it has one, or a short label (``"ACC"``, ``"(i)"``)
for an equation this book reconstructs from the paper's prose (said so in ``note``).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Equation", "EQUATIONS", "equations"]



@dataclass(frozen=True)
class Equation:
    number: str    # the paper's equation number, or a label for a reconstructed one
    latex: str     # the equation, LaTeX (no surrounding $)
    function: str  # dotted name of the function / method that computes it
    test: str      # tests/<file>.py::<test function> that checks it
    note: str = ""  # what the symbols are; "reconstructed from the prose" where the paper has no formula


_METRICS = (
    Equation("ACC", r"\mathrm{ACC}=\frac{1}{N}\sum_i [\,(p_i \ge 0.5) = y_i\,]", "dfnb.metrics.accuracy",
             "tests/test_metrics.py::test_detection_worked_example", "frame-level; p = P(fake)"),
    Equation("AUC", r"\mathrm{AUC}=P(p_{\text{fake}} > p_{\text{real}}) + \tfrac12 P(p_{\text{fake}} = p_{\text{real}})",
             "dfnb.metrics.auc", "tests/test_metrics.py::test_detection_against_sklearn",
             "a random fake against a random real"),
    Equation("EER", r"\mathrm{FPR}(t^*)=\mathrm{FNR}(t^*),\ \mathrm{EER}=\mathrm{FPR}(t^*)", "dfnb.metrics.eer",
             "tests/test_metrics.py::test_detection_worked_example"),
    Equation("PBCA", r"\mathrm{PBCA}=\frac{|P\cap G| + |\bar P\cap\bar G|}{N}", "dfnb.metrics.pbca",
             "tests/test_metrics.py::test_localization_hand_computed_3x3",
             "pixel-level accuracy of the binarised mask P against G, N pixels"),
    Equation("IINC", r"\mathrm{IINC}=\frac{2-|I|/|P|-|I|/|G|}{3-|U|/N}", "dfnb.metrics.iinc",
             "tests/test_metrics.py::test_localization_hand_computed_3x3",
             "I = P∩G, U = P∪G; 0 when both are empty, 1/(3-U/N) when one is; lower is better"),
    Equation("IoU", r"\mathrm{IoU}=\frac{|P\cap G|}{|P\cup G|}", "dfnb.metrics.iou",
             "tests/test_metrics.py::test_localization_hand_computed_3x3"),
)

def _tables() -> dict[str, tuple[Equation, ...]]:
    from dfnb.papers import equations_dadf, equations_focus, equations_micro_sam, equations_prle

    tables = {"metrics": _METRICS, "prle": equations_prle.ROWS, "focus": equations_focus.ROWS,
              "micro_sam": equations_micro_sam.ROWS, "dadf": equations_dadf.ROWS}
    return {k: v for k, v in tables.items() if v}




def equations(key: str) -> tuple[Equation, ...]:
    """The rows of chapter table ``key`` (``"metrics"``, ``"prle"``, ``"focus"``, ``"micro_sam"``, ``"dadf"``;
    each paper's rows live in ``dfnb/papers/equations_<key>.py``)."""
    try:
        return EQUATIONS[key]
    except KeyError:
        raise KeyError(f"no equation table {key!r}; known: {sorted(EQUATIONS)}") from None


EQUATIONS: dict[str, tuple[Equation, ...]] = _tables()
