"""bench.compare: the regression gate. Baseline vs candidate records matched by config hash, each metric
judged by its direction, a tolerance, the repeats' noise and whether its 95% interval excludes no change;
Markdown for a CI summary; exit 1 on a regression. Plus a history of CI runs (history.py) and trends over
commits (trend.py).

Reads JSON only: importing this package never imports torch.

    load.py     record files and folders, hardware id, match key
    shape.py    the types of the fields the gate reads (an odd-shaped record is bad input, not a crash)
    verdict.py  metrics, each record's figures with their 95% intervals, tolerances, the noise-aware rule
    match.py    baseline vs candidate cell by cell, the hardware check
    summary.py  the Markdown table
    history.py  the JSON Lines history store (why JSON Lines: its docstring)
    trend.py    per-metric trends over commits
    cli.py      the command line, exit status
"""
