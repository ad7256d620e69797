"""The ``landscape`` command line (typer): thin commands over the library."""
