"""Entry points: the ``sharpeyes`` command line and what each command runs."""
