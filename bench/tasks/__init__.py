"""Tasks: where the batches come from and how a model is scored."""
