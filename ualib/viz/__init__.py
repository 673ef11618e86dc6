"""Figures: the book's plotting style and helpers (:mod:`ualib.viz.plotting`) and the interactive
explorer (:mod:`ualib.viz.explorer`). Import the submodules; matplotlib loads only then."""
