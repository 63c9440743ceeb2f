"""Models: one per module behind one interface (``fit`` -> self, ``predict`` -> frame)."""
