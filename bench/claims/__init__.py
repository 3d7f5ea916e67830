"""Published fine-tuning claims, judged against bench's records: the registry (claims.yaml, read and checked by
registry.py), the verdict rule (verdict.py: holds, refuted, not established, not measured), each claim's
measured value (measured.py) and the stored estimates for cells nothing measured (estimates.py). Pure Python:
the report reads it without torch; only `python -m bench.claims.estimates` imports the estimator.
docs/claims.md."""
