"""Entry points: the ``exosphere`` CLI, the lazy code location, the dev server, the demo."""
