"""bench.report: records in, a report out (Markdown, self-contained HTML, figures, CSV). Imports no torch.

    python -m bench.report results/<experiment> [more dirs] [--out reports/<name>]

load.py reads and flattens records (a corrupt or foreign file is skipped with a warning naming it),
groups.py splits them by hardware and labels the cells, tables.py / quality_tables.py / fit.py build the
tables, figures.py draws, render_md.py / render_html.py write, build.py puts it together atomically.
"""
