"""Ostiary: a self-hosted, governed LLM gateway."""

__version__ = "0.1.0"
