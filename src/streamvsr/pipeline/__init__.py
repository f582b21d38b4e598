"""streamvsr.pipeline."""
