"""A local Azure Functions host for the Python v2 programming model: ``python -m devhost`` (see __main__)."""
