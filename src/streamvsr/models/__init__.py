"""streamvsr.models."""
