"""The equation -> function -> test rows of chapter ``focus`` (see :mod:`dfnb.papers.equations`)."""
from dfnb.papers.equations import Equation

ROWS: tuple[Equation, ...] = ()
