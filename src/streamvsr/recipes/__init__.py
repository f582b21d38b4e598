"""streamvsr.recipes."""
