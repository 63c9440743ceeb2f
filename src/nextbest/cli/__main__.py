"""``python -m nextbest.cli``: the ``nextbest`` command."""

from nextbest.cli import app

app(prog_name="nextbest")
