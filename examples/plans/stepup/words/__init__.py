"""The words plan (examples/plans/stepup/words/plan.py)."""
