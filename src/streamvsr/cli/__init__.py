"""streamvsr.cli."""
