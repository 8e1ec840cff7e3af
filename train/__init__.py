"""The distillation recipe that produced the bundled weights (imports models from detector/, never the reverse)."""
