"""The sweep's own process: command-line checks, the grid, the ledger, and starting each cell in a process
of its own (exec'd, forked, or torchrun). Imports no torch: the cells do."""
