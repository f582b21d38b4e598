"""streamvsr.eval."""
