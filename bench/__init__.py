"""kittydoit's benchmarks: ``python -m bench`` (see __main__.py and README.md, "Benchmarks")."""
