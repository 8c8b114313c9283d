"""pipeline-plumber: the Data Engineer subagent for Claude Code, built from a knowledge base."""

__version__ = "0.1.0"
