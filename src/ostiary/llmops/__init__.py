"""LLMOps: the prompt registry (and, later, releases, evaluations and red-team runs)."""
