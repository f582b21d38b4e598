"""streamvsr.train."""
