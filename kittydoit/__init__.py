"""kittydoit: run AI coding agents over a spec-kitty feature, with doit as the engine."""

__version__ = "0.1.0"
