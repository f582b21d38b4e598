"""streamvsr.media."""
