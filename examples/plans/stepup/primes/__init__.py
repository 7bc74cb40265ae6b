"""The primes plan (examples/plans/stepup/primes/plan.py)."""
