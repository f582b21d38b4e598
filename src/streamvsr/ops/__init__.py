"""streamvsr.ops."""
