"""The plans that examples/plans/plan.py runs (a package so that tools tell them apart)."""
