"""The ``geo-segment`` command line (installed as ``geo_segment.cli``): a thin typer shell over the library."""
